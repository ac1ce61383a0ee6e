#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Without -v, a write-back at shutdown that takes more than a second
# shows its progress (bytes left, rate) once a second when stderr is a
# terminal, so the user at it does not think the server hangs; a short
# one shows nothing, and neither does a long one into a file or pipe.
# The terminal is script(1)'s pty; the disk is made slow by the
# fault-injection shim (every host write 300 ms late), and the dirty
# blocks are apart so that the write-back cannot merge them.
source ./functions.sh
source "$(dirname "$0")/fault-functions.sh"
set -e
set -x

requires_faultinject daemon
requires script --version
make_tmpdir
f="$tmp/disk.img"
truncate -s 4M "$f"
asan=$(asan_runtime_of "$(command -v nbd-loopback)")

# serve_on_tty OUT SLOW: the server on script's terminal, its
# terminal's output in OUT; SLOW = 1 makes every host write slow.
serve_on_tty ()
{
    local out=$1
    rm -f "$tmp/pid" "$tmp/sock"
    if [ "$2" = 1 ]; then
        printf 'write slow ms=300\n' > "$tmp/faults"
    else
        : > "$tmp/faults"
    fi
    # script runs its command through $SHELL -c: quote the words.
    script -qfec "$(printf '%q ' env LD_PRELOAD="${asan:+$asan:}$faultinject_so" \
        FAULTINJECT_FILE="$f" FAULTINJECT_CONTROL="$tmp/faults" \
        nbd-loopback -f -P "$tmp/pid" -U "$tmp/sock" \
        loopback fd="$f" blk commit=medium,delwri=60)" /dev/null \
        > "$out" 2>&1 < /dev/null &
    script_pid=$!
    cleanup_fn kill_pid $script_pid
    wait_for 30 test -s "$tmp/pid"
    server_pid=$(cat "$tmp/pid")
}

# Eight dirty blocks, 8 KiB apart: eight host writes at shutdown.
dirty_it ()
{
    client-frontend-io "nbd+unix:///lo0?socket=$tmp/sock" \
        write 0 4k 0x11 write 8k 4k 0x12 write 16k 4k 0x13 \
        write 24k 4k 0x14 write 32k 4k 0x15 write 40k 4k 0x16 \
        write 48k 4k 0x17 write 56k 4k 0x18 \
        file-is "$f" 0 4k 0
}

# stop_it: SIGTERM, and wait for the write-back; sets $secs.
stop_it ()
{
    SECONDS=0
    kill -TERM "$server_pid"
    server_pid=$script_pid      # script exits with the server's status
    wait_server_exit
    secs=$SECONDS
    test "$server_status" -eq 0 ||
        fail "the server exited with status $server_status"
}

check_file ()
{
    qemu-io -f raw -r "$f" -c 'read -P 0x11 0 4k' -c 'read -P 0x18 56k 4k' \
        -c 'read -P 0 60k 4k' | grep -q 'read 4096/4096'
    if qemu-io -f raw -r "$f" -c 'read -P 0x11 0 4k' -c 'read -P 0x18 56k 4k' |
       grep -q 'Pattern verification failed'; then
        fail "the write-back did not reach the file"
    fi
}
requires qemu-io --version

# A slow write-back on a terminal: progress every second.
serve_on_tty "$tmp/slow.out" 1
dirty_it
stop_it
cat "$tmp/slow.out"
check_file
test "$secs" -ge 2 || fail "the write-back took under 2 s: not slow enough"
progress='^nbd-loopback: writing back: [0-9]+ bytes left, [0-9.]+ MiB/s'
lines=$(tr -d '\r' < "$tmp/slow.out" | grep -Ec "$progress") || :
echo "figures: write-back took ${secs} s, $lines progress lines"
test "$lines" -ge 1 || fail "no progress on the terminal"
test "$lines" -le "$secs" || fail "$lines progress lines in $secs s"
tr -d '\r' < "$tmp/slow.out" |
    grep -Eq '^nbd-loopback: writing back: done, 32768 bytes in [0-9.]+ s, 0 bytes left' ||
    fail "no final progress line"

# A quick one on a terminal: nothing.
truncate -s 0 "$f"; truncate -s 4M "$f"
serve_on_tty "$tmp/quick.out" 0
dirty_it
stop_it
cat "$tmp/quick.out"
check_file
if grep -q 'writing back' "$tmp/quick.out"; then
    fail "a write-back under a second showed progress"
fi

# A slow one, stderr into a file: nothing either.
truncate -s 0 "$f"; truncate -s 4M "$f"
start_fault_frontend daemon "$f" loopback fd="$f" blk commit=medium,delwri=60
set_faults 'write slow ms=300'
server_pid=$frontend_pid
client-frontend-io "$uri" write 0 4k 0x11 write 8k 4k 0x12 write 16k 4k 0x13 \
    write 24k 4k 0x14 write 32k 4k 0x15 write 40k 4k 0x16 \
    write 48k 4k 0x17 write 56k 4k 0x18
SECONDS=0
kill -TERM "$frontend_pid"
wait_frontend_exit
secs=$SECONDS
test "$frontend_status" -eq 0
cat "$tmp/server.log"
check_file
test "$secs" -ge 2 || fail "the write-back took under 2 s: not slow enough"
if grep -q 'writing back' "$tmp/server.log"; then
    fail "progress written to a file without -v"
fi
