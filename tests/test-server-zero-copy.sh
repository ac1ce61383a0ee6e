#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Reads of 64 KiB and more that the cache holds are sent straight from
# its blocks (zero_copy_reads in the statistics).  They must return
# exactly the data, the newest after a write or a zero, while other
# clients stream enough to evict everything else; a client that never
# reads its replies may hold at most a quarter of the cache, and once
# it is cut off, zero-copy reads resume.  With a cache too small for a
# 1 MiB read's pins, those reads are copied instead and still right.
#
# How many reads go without a copy depends on how many replies are
# still unsent (their pins count against the budget), which depends on
# the machine's load when many requests are in flight.  So the counts
# are checked on reads made one at a time, where nothing else pins and
# every read the cache holds must go without a copy; the parallel
# reads check the data.
source ./functions.sh
set -e
set -x

requires python3 --version
requires qemu-io --version
requires nbdcopy --version
test -x ./hostile-client || skip "hostile-client was not built"
make_tmpdir
head -c 48M /dev/urandom > "$tmp/data"
cp "$tmp/data" "$tmp/disk.img"

field ()
{
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
e = [x for x in d["exports"] if x["name"] == sys.argv[2]][0]
print(json.dumps(e[sys.argv[3]]))' "$tmp/stats.json" "$1" "$2"
}
stats ()
{
    : > "$tmp/stats.json"
    kill -USR1 "$server_pid"
    wait_for 10 python3 -m json.tool "$tmp/stats.json"
}

start_server_unix --stats-file "$tmp/stats.json" --stall-timeout 2 \
    loopback fd="$tmp/disk.img" blk cache=64m,delwri=60
uri=$(nbd_uri lo0)

# one_at_a_time OUT: the export in 1 MiB reads, one request in flight.
one_at_a_time ()
{
    nbdcopy --connections=1 --requests=1 --request-size=1048576 "$uri" - > "$1"
}

# Twice: the second pass is served from the cache, without a copy:
# each of its 48 reads.
nbdcopy --request-size=1048576 "$uri" - > "$tmp/out1"
cmp "$tmp/data" "$tmp/out1"
stats
zc=$(field lo0 zero_copy_reads)
one_at_a_time "$tmp/out2"
cmp "$tmp/data" "$tmp/out2"
stats
test "$(field lo0 zero_copy_reads)" -ge $((zc + 48)) ||
    fail "reads of cached data were copied: $(field lo0 zero_copy_reads) after $zc"
zc=$(field lo0 zero_copy_reads)

# Newest data: a write and a zero replace what zero-copy reads return,
# while nbdcopy streams the whole export on another connection.
nbdcopy --request-size=262144 "$uri" - > "$tmp/out3" &
copy_pid=$!
cleanup_fn kill_pid "$copy_pid"
qemu-io -f raw "$uri" \
    -c 'read -v 0 4k' \
    -c 'read 0 1M' -c 'write -P 0x55 0 1M' -c 'read -P 0x55 0 1M' \
    -c 'read -P 0x55 4096 512k' \
    -c 'write -z 8M 1M' -c 'read -P 0 8M 1M' \
    -c 'write -P 0xa7 16M 65536' -c 'read -P 0xa7 16M 65536' > "$tmp/qemu-io.out"
grep -q 'read 1048576/1048576 bytes' "$tmp/qemu-io.out"
if grep -q 'Pattern verification failed' "$tmp/qemu-io.out"; then
    fail "qemu-io read back the wrong data"
fi
wait "$copy_pid"
# What no write touched came through the concurrent copy unchanged.
cmp <(tail -c +$((17 * 1024 * 1024 + 1)) "$tmp/data") \
    <(tail -c +$((17 * 1024 * 1024 + 1)) "$tmp/out3")
stats
test "$(field lo0 zero_copy_reads)" -gt "$zc"
nbdcopy --request-size=1048576 "$uri" - > "$tmp/out3"

# A client that pipelines 1 MiB reads and never reads a reply: the
# others are still served (copied once it holds its share), and after
# it is cut off the cache sends without copying again.
./hostile-client stop-reading "$tmp/sock" lo0 30 > "$tmp/hostile.out" &
hostile_pid=$!
cleanup_fn kill_pid "$hostile_pid"
nbdcopy --request-size=1048576 "$uri" - > "$tmp/out4"
cmp "$tmp/out3" "$tmp/out4"
wait "$hostile_pid"
cat "$tmp/hostile.out"
# Once the server has dropped it (at once, or when it notices), its
# pins are gone and a read goes without a copy again.
for (( i = 0; i < 30; ++i )); do
    stats
    zc=$(field lo0 zero_copy_reads)
    qemu-io -f raw "$uri" -c 'read 0 1M' > "$tmp/qemu-io.out"
    stats
    test "$(field lo0 zero_copy_reads)" -gt "$zc" && break
    sleep 1
done
test "$i" -lt 30 || fail "zero-copy reads did not resume after the client was cut off"
one_at_a_time "$tmp/out5"
cmp "$tmp/out3" "$tmp/out5"
stats
test "$(field lo0 zero_copy_reads)" -ge $((zc + 1 + 48)) ||
    fail "reads of cached data were copied after the client was cut off"
stop_server

# Everything went back to the host file intact.
cmp "$tmp/out5" "$tmp/disk.img"

# A cache whose quarter cannot pin a 1 MiB read: copied, still right;
# 256 KiB reads fit and go without a copy.
start_server_unix --stats-file "$tmp/stats.json" \
    loopback fd="$tmp/disk.img" blk cache=2m,delwri=60
qemu-io -f raw "$uri" -c 'write -P 0x33 0 1M' \
    -c 'read -P 0x33 0 1M' -c 'read -P 0x33 0 1M' > "$tmp/qemu-io.out"
if grep -q 'Pattern verification failed' "$tmp/qemu-io.out"; then
    fail "qemu-io read back the wrong data"
fi
stats
test "$(field lo0 zero_copy_reads)" = 0
test "$(field lo0 hits)" -ge 512
qemu-io -f raw "$uri" -c 'read -P 0x33 0 256k' -c 'read -P 0x33 256k 256k' \
    > "$tmp/qemu-io.out"
if grep -q 'Pattern verification failed' "$tmp/qemu-io.out"; then
    fail "qemu-io read back the wrong data"
fi
stats
test "$(field lo0 zero_copy_reads)" = 2
stop_server
