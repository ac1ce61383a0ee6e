#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Input held inside OpenSSL is not lost: a TLS client sends 160 MiB of
# WRITEs without reading a reply, so the daemon stops reading (over
# its 64 MiB limit) with TLS records read but not yet consumed, which
# make no socket readable; when it resumes it must serve them anyway.
# Every write is acknowledged, reads back over TLS, and is in the host
# file.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
source "$abs_top_srcdir/tests/fault-functions.sh"
set -e
set -x

tls_setup -x 160M

# commit=high, one worker, and a host file whose writes and syncs each
# take 2 ms (the fault-injection shim's "slow"): replies lag far behind
# the client, so the daemon must stop reading.
test -f "$faultinject_so" || skip "the shim was not built ($faultinject_so)"
printf 'write,sync slow\n' > "$tmp/faults"
asan=$(asan_runtime_of "$(command -v nbd-loopback)")
LD_PRELOAD="${asan:+$asan:}$faultinject_so" FAULTINJECT_FILE="$tmp/disk.img" \
FAULTINJECT_CONTROL="$tmp/faults" \
    start_server_unix -v --tls=require --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img" blk commit=high,thread=1
./client-tls-raw "$sock" pipeline
if ! grep -q 'reading paused' "$tmp/server.log"; then
    # Timing: this run the daemon kept up and never held input back.
    stop_server
    skip "the daemon never stopped reading this time (it kept up with the client), so the held-input path was not exercised"
fi
stop_server
# Each 8 bytes hold their own offset, big-endian.
word () { od -A n -t x8 --endian=big -j "$1" -N 8 "$tmp/disk.img" | tr -d ' '; }
for off in 8 $(( 17 * 4194304 + 4096 )) $(( 160 * 1048576 - 8 )); do
    test "$(word $off)" = "$(printf '%016x' $off)"
done
