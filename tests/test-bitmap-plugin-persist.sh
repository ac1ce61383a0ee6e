#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The nbdkit plugin with loopback=cbt: nbdkit 1.32 offers plugins
# base:allocation only, so the plugin cannot serve qemu:dirty-bitmap,
# but it tracks every write, zero and trim of every connection and
# keeps the same tracking file, which the daemon then serves exactly;
# after SIGKILL of nbdkit the daemon loads it entirely dirty.
source ./functions.sh
set -e
set -x

requires_frontend plugin
requires qemu-io --version
requires nbdinfo --version
make_tmpdir
img="$tmp/disk.img"
truncate -s 16M "$img"

start_frontend plugin "$tmp/plugin.pid" "$tmp/plugin.sock" \
    loopback cbt=4k,fd="$img" blk cache=16m
uri=$(frontend_uri)
qemu-io -f raw -c 'write 8k 4k' "$uri" > /dev/null &
a=$!
qemu-io -f raw -c 'write -z 1M 8k' "$uri" > /dev/null &
b=$!
qemu-io -f raw -c 'discard 2M 4k' -c 'write 3145000 1000' "$uri" > /dev/null
wait $a
wait $b
nbdinfo --list --content "$uri" > "$tmp/list.txt"
grep -q 'base:allocation' "$tmp/list.txt"
grep -q 'qemu:dirty-bitmap' "$tmp/list.txt" &&
    fail "nbdkit 1.32 cannot offer qemu:dirty-bitmap; the plugin must not claim it"
stop_frontend
test -s "$img.cbt"

start_server_unix loopback cbt=4k,fd="$img" blk cache=16m
nbdinfo --map=qemu:dirty-bitmap:live "$(nbd_uri lo0)" |
    awk '{print $1, $2, $3}' > "$tmp/got"
cat > "$tmp/expected" <<'MAP'
0 8192 0
8192 4096 1
12288 1036288 0
1048576 8192 1
1056768 1040384 0
2097152 4096 1
2101248 1040384 0
3141632 8192 1
3149824 13627392 0
MAP
diff -u "$tmp/expected" "$tmp/got"
stop_server

# SIGKILL of nbdkit: the daemon loads the file as entirely dirty.
start_frontend plugin "$tmp/plugin.pid" "$tmp/plugin.sock" \
    loopback cbt=4k,fd="$img" blk cache=16m
kill -KILL "$frontend_pid"
wait_frontend_exit
: > "$tmp/server.log"
start_server_unix loopback cbt=4k,fd="$img" blk cache=16m
test "$(nbdinfo --map=qemu:dirty-bitmap:live "$(nbd_uri lo0)" | awk '{print $1, $2, $3}')" = \
    "0 16777216 1"
grep -q 'did not stop cleanly' "$tmp/server.log"
stop_server
