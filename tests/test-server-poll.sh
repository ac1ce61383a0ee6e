#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --poll: after input a loop polls for more instead of sleeping, but
# only for a while: once the clients are idle, so is the daemon (it
# must not burn a CPU).  --poll 0 never polls; bad values are refused.
source ./functions.sh
set -e
set -x

requires qemu-io --version
make_tmpdir
truncate -s 16M "$tmp/disk.img"

cpu_ticks () { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for poll in 50 100000 0; do
    start_server_unix --poll "$poll" loopback fd="$tmp/disk.img"
    qemu-io -f raw "$(nbd_uri lo0)" -c 'write -P 0x11 0 1M' \
        -c 'read -P 0x11 0 1M' > "$tmp/out"
    if grep -q 'Pattern verification failed' "$tmp/out"; then
        fail "qemu-io read back the wrong data"
    fi
    # 100 ms after the last request, 2 s of idleness: at most 0.1 s of
    # CPU.  A loop that kept polling would use the whole 2 s.
    sleep 0.2
    a=$(cpu_ticks "$server_pid")
    sleep 2
    b=$(cpu_ticks "$server_pid")
    ticks=$(( b - a ))
    echo "--poll $poll: $ticks ticks of CPU while idle"
    test "$ticks" -le 10
    stop_server
done

for bad in -1 x 1.5 ""; do
    expect_fail_with "poll" nbd-loopback -f -U "$tmp/sock2" --poll "$bad" \
        loopback fd="$tmp/disk.img"
done
