#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --stats-file: valid JSON at start-up, on SIGUSR1 and at exit, whose
# figures move with I/O (requests, bytes, hits, dirty bytes, write-backs,
# flushes and their latency); SIGUSR1 also logs them, with the hit
# ratio and dirty bytes, and a relative path still works once the
# daemon has detached (it changes directory to /).
source ./functions.sh
set -e
set -x

requires python3 --version
requires qemu-io --version
test -x ./client-raw || skip "client-raw was not built"
make_tmpdir
truncate -s 16M "$tmp/disk.img"

json () { python3 -m json.tool "$tmp/stats.json" > /dev/null; }
# field EXPORT KEY: a figure of an export, from the file.
field ()
{
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
e = [x for x in d["exports"] if x["name"] == sys.argv[2]][0]
print(json.dumps(e[sys.argv[3]]))' "$tmp/stats.json" "$1" "$2"
}
event ()
{
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["event"])' \
        "$tmp/stats.json"
}

# Detached (no -f), with a relative path.
cd "$tmp"
nbd-loopback -U "$tmp/sock" -P "$tmp/pid" --stats-file stats.json \
    loopback fd="$tmp/disk.img" blk delwri=60,ramdisk=1m
server_pid=$(cat "$tmp/pid")
cleanup_fn kill_pid "$server_pid"
cd - >/dev/null

# Written before the pidfile: the start-up figures, all zero.
json
test "$(event)" = start
test "$(field lo0 requests)" = 0
test "$(field lo0 hit_ratio)" = null
test "$(field lo0 flush_latency_mean_ms)" = null
test "$(field ram0 size)" = 1048576

# Write 1 MiB (stays dirty: delwri=60), read it twice (hits), flush
# through a second connection, and ask a bad read (an error).
uri="nbd+unix:///lo0?socket=$tmp/sock"
qemu-io -f raw "$uri" -c 'write -P 0x55 0 1M' -c 'read -P 0x55 0 1M' \
    -c 'read -P 0x55 0 1M'
kill -USR1 "$server_pid"
usr1 () { json && test "$(event)" = SIGUSR1; }
wait_for 10 usr1
cat "$tmp/stats.json"
test "$(field lo0 write_bytes)" = 1048576
test "$(field lo0 read_bytes)" = 2097152
test "$(field lo0 requests)" -ge 3
test "$(field lo0 hits)" -gt 0
python3 -c "assert 0 < $(field lo0 hit_ratio) <= 1"

# A write past the end (which real clients refuse to send): an error
# reply, counted.
./client-raw "$tmp/sock" write-past-end
qemu-io -f raw "$uri" -c 'flush'
: > "$tmp/stats.json"
kill -USR1 "$server_pid"
wait_for 10 usr1
test "$(field lo0 dirty_bytes)" = 0
test "$(field lo0 writebacks)" -gt 0
test "$(field lo0 writeback_bytes)" -ge 1048576
test "$(field lo0 flushes)" -ge 1
python3 -c "assert $(field lo0 flush_latency_mean_ms) >= 0"
test "$(field lo0 writeback_errors)" = 0
test "$(field lo0 errors)" -ge 1

# At exit: the final figures (the exit write-back counts as a flush).
kill -TERM "$server_pid"
# (Detached, it is not our child: exited, it stays a zombie until
# init reaps it.)
gone () { ! kill -0 "$server_pid" ||
          [ "$(sed 's/.*) //' "/proc/$server_pid/stat" | cut -d' ' -f1)" = Z ]; }
wait_for 60 gone
json
test "$(event)" = exit
test "$(field lo0 write_requests)" -ge 1
test "$(field lo0 dirty_bytes)" = 0
# No temporary files left next to it.
test "$(ls "$tmp" | grep -c '^stats\.json')" -eq 1

# A stats file that cannot be written stops start-up, saying why.
expect_fail_with 'stats-file.*(directory|writable)' \
    nbd-loopback -U "$tmp/sock2" --stats-file "$tmp/no/such/dir/s.json" \
    loopback fd="$tmp/disk.img"
