#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Changed-block tracking (loopback cbt) as the NBD metadata context
# qemu:dirty-bitmap:live: four qemu-io clients at once write aligned
# and unaligned data, zero and trim; nbdinfo --map and qemu 7.2's
# x-dirty-bitmap (qemu-img map --image-opts) then report exactly the
# 64 KiB granules touched, base:allocation still works beside it, and
# the host file holds what was written.
source ./functions.sh
set -e
set -x

requires qemu-io --version
requires qemu-img --version
requires nbdinfo --version
requires jq --version
make_tmpdir
truncate -s 64M "$tmp/disk.img"
cp "$tmp/disk.img" "$tmp/expected.img"
start_server_unix loopback blksz=512,cbt,fd="$tmp/disk.img" blk cache=16m
uri=$(nbd_uri lo0)

# One list of commands per connection; none overlaps another.
c1=(-c 'write -P 0x11 0 4k' -c 'write -P 0x12 192k 64k')
c2=(-c 'write -P 0x21 5000 100' -c 'write -P 0x22 3145718 20')
c3=(-c 'write -z 8M 1M' -c 'write -z 20972032 512')
c4=(-c 'discard 30M 64k' -c 'discard 41947136 4096')
pids=()
for c in c1 c2 c3 c4; do
    declare -n cmds=$c
    qemu-io -f raw "${cmds[@]}" "$uri" > "$tmp/$c.log" 2>&1 &
    pids+=($!)
    qemu-io -f raw "${cmds[@]}" "$tmp/expected.img" > /dev/null
done
for p in "${pids[@]}"; do wait "$p"; done
cat "$tmp"/c?.log

# Granules (64 KiB): 0 (two writes), 3, 47-48 (a write across the
# boundary at 3 MiB), 128-143 (zero of 8 MiB..9 MiB), 320 (zero at
# 20 MiB + 512), 480 (trim at 30 MiB), 640 (trim at 40 MiB + 4 KiB).
cat > "$tmp/expected.map" <<'MAP'
0 65536 1
65536 131072 0
196608 65536 1
262144 2818048 0
3080192 131072 1
3211264 5177344 0
8388608 1048576 1
9437184 11534336 0
20971520 65536 1
21037056 10420224 0
31457280 65536 1
31522816 10420224 0
41943040 65536 1
42008576 25100288 0
MAP
nbdinfo --map=qemu:dirty-bitmap:live "$uri" > "$tmp/map.txt"
cat "$tmp/map.txt"
awk '{print $1, $2, $3}' "$tmp/map.txt" > "$tmp/got.map"
diff -u "$tmp/expected.map" "$tmp/got.map"

# qemu 7.2 reads the bitmap through x-dirty-bitmap, where dirty shows
# as "data": false.
qemu-img map --output=json --image-opts \
    "driver=nbd,server.type=unix,server.path=$sock,export=lo0,x-dirty-bitmap=qemu:dirty-bitmap:live" \
    > "$tmp/qemu.json"
jq -r '.[] | "\(.start) \(.length) \(if .data then 0 else 1 end)"' \
    "$tmp/qemu.json" > "$tmp/qemu.map"
diff -u "$tmp/expected.map" "$tmp/qemu.map"

# base:allocation beside it, and both listed.
nbdinfo --map "$uri" | grep -q data
nbdinfo --list --content "$uri" > "$tmp/list.txt"
grep -q 'base:allocation' "$tmp/list.txt"
grep -q 'qemu:dirty-bitmap:live' "$tmp/list.txt"

stop_server
cmp "$tmp/disk.img" "$tmp/expected.img"
test -s "$tmp/disk.img.cbt"
