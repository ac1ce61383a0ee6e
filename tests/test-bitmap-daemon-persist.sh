#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The dirty bitmaps' sidecar file (IMAGE.cbt, or in cbtdir=): exact
# after SIGTERM (live and frozen alike); entirely dirty, with a
# warning, after SIGKILL or when the image changed while the server
# was down; a corrupt or truncated sidecar is a clear error, is moved
# aside and tracking starts over entirely dirty; a sidecar that cannot
# be written turns tracking off and the export still serves.
source ./functions.sh
set -e
set -x

requires qemu-io --version
requires nbdinfo --version
make_tmpdir
img="$tmp/disk.img"
truncate -s 16M "$img"
args=(--control "$tmp/ctl" loopback cbt,fd="$img" blk cache=16m)
uri () { echo "nbd+unix:///lo0?socket=$sock"; }
map () { nbdinfo --map=qemu:dirty-bitmap:$1 "$(uri)" | awk '{print $1, $2, $3}'; }
all_dirty="0 16777216 1"

start_server_unix "${args[@]}"
qemu-io -f raw -c 'write 1M 4k' "$(uri)" > /dev/null
nbd-loopback ctl "$tmp/ctl" checkpoint lo0 c1
qemu-io -f raw -c 'write 5M 100' "$(uri)" > /dev/null
map c1 > "$tmp/c1.before"
map live > "$tmp/live.before"
test "$(sed -n 2p "$tmp/c1.before")" = "1048576 65536 1"
test "$(sed -n 2p "$tmp/live.before")" = "5242880 65536 1"

# SIGTERM: exact.
stop_server
start_server_unix "${args[@]}"
map c1 | diff -u "$tmp/c1.before" -
map live | diff -u "$tmp/live.before" -
grep -q 'entirely dirty' "$tmp/server.log" && fail "a clean stop loaded as dirty"

# SIGKILL: every bitmap entirely dirty, with a warning.
crash_server
start_server_unix "${args[@]}"
test "$(map c1)" = "$all_dirty"
test "$(map live)" = "$all_dirty"
grep -q 'did not stop cleanly: every bitmap is loaded as entirely dirty' \
    "$tmp/server.log"

# Exact again after a clean stop with a new checkpoint.
nbd-loopback ctl "$tmp/ctl" checkpoint lo0 c2
stop_server
start_server_unix "${args[@]}"
test "$(map live)" = "0 16777216 0"
stop_server

# The image changed while nobody tracked it: all dirty.
: > "$tmp/server.log"
printf x | dd of="$img" bs=1 seek=12345 conv=notrunc status=none
touch -d '2001-01-01' "$img"
start_server_unix "${args[@]}"
test "$(map live)" = "$all_dirty"
grep -q 'the image changed while nobody tracked it' "$tmp/server.log"
stop_server

# Corrupt: a clear error, moved aside, the export serves, all dirty.
: > "$tmp/server.log"
printf 'XXXXXXXX' |
    dd of="$img.cbt" bs=1 seek=$(( $(stat -c %s "$img.cbt") - 8 )) \
       conv=notrunc status=none
start_server_unix "${args[@]}"
grep -q "disk.img.cbt: checksum mismatch (corrupt or truncated); moved to .*disk.img.cbt.corrupt" \
    "$tmp/server.log"
test -f "$img.cbt.corrupt"
test "$(map live)" = "$all_dirty"
qemu-io -f raw -c 'read 0 4k' "$(uri)" > /dev/null
stop_server

# Truncated, and not a sidecar at all.
for bad in truncate garbage; do
    : > "$tmp/server.log"
    rm -f "$img.cbt.corrupt"
    case $bad in
    truncate) truncate -s 30 "$img.cbt" ;;
    garbage) echo "hello" > "$img.cbt" ;;
    esac
    start_server_unix "${args[@]}"
    grep -Eq "(truncated|not a changed-block tracking file); moved to" "$tmp/server.log"
    test "$(map live)" = "$all_dirty"
    stop_server
done

# A directory that does not exist: tracking off, the export serves.
: > "$tmp/server.log"
start_server_unix loopback cbt,cbtdir="$tmp/nosuch",fd="$img" blk cache=16m
grep -q "changed-block tracking is off: its file $tmp/nosuch/disk.img.cbt cannot be written" \
    "$tmp/server.log"
nbdinfo --list --content "$(uri)" > "$tmp/list.txt"
grep -q 'qemu:dirty-bitmap' "$tmp/list.txt" && fail "tracking should be off"
qemu-io -f raw -c 'write 0 4k' "$(uri)" > /dev/null
stop_server

# cbtdir= elsewhere: the sidecar goes there.
mkdir "$tmp/bitmaps"
start_server_unix loopback cbt,cbtdir="$tmp/bitmaps",fd="$img" blk cache=16m
qemu-io -f raw -c 'write 2M 4k' "$(uri)" > /dev/null
stop_server
test -s "$tmp/bitmaps/disk.img.cbt"

# The tracking file cannot be written any more (its directory moved
# away): checkpoint, delete and merge fail, say why and change nothing.
start_server_unix --control "$tmp/ctl" loopback cbt,cbtdir="$tmp/bitmaps",fd="$img" \
    blk cache=16m
nbd-loopback ctl "$tmp/ctl" checkpoint lo0 k1
qemu-io -f raw -c 'write 3M 4k' "$(uri)" > /dev/null
nbd-loopback ctl "$tmp/ctl" list > "$tmp/list.before"
mv "$tmp/bitmaps" "$tmp/bitmaps.away"
expect_fail_with "tracking file cannot be written.*nothing changed" \
    nbd-loopback ctl "$tmp/ctl" checkpoint lo0 k2
expect_fail_with "tracking file cannot be written" nbd-loopback ctl "$tmp/ctl" delete lo0 k1
expect_fail_with "tracking file cannot be written" nbd-loopback ctl "$tmp/ctl" merge lo0 k1 live
expect_fail_with "tracking file cannot be written" nbd-loopback ctl "$tmp/ctl" merge lo0 k3 live
nbd-loopback ctl "$tmp/ctl" list | diff -u "$tmp/list.before" -
test "$(map live | sed -n 2p)" = "3145728 65536 1"
test "$(map k1 | sed -n 2p)" = "2097152 65536 1"
mv "$tmp/bitmaps.away" "$tmp/bitmaps"
nbd-loopback ctl "$tmp/ctl" checkpoint lo0 k2
stop_server

# Someone else writes the image while it is served (denyno): once the
# cache notices (rmvto=), every block counts as changed.
rm -f "$img.cbt"
start_server_unix loopback denyno,cbt,fd="$img" blk cache=16m,rmvto=1
qemu-io -f raw -c 'read 0 4k' "$(uri)" > /dev/null
test "$(map live)" = "0 16777216 0"
printf y | dd of="$img" bs=1 seek=777 conv=notrunc status=none
touch -d '2002-02-02' "$img"
sleep 1.5                       # rmvto=1: idle for longer than that
qemu-io -f raw -c 'read 0 4k' "$(uri)" > /dev/null
test "$(map live)" = "$all_dirty"
grep -q 'changed behind our back.*every block counts as changed' "$tmp/server.log"
stop_server

# A detached daemon (it changes to /) with relative paths keeps the
# tracking file beside the image.
rm -f "$img.cbt"
(cd "$tmp" && nbd-loopback -P "$tmp/detached.pid" -U "$tmp/detached.sock" \
    loopback cbt,fd=disk.img)
detached=$(cat "$tmp/detached.pid")
cleanup_fn kill_pid "$detached"
test -s "$img.cbt"
kill_pid "$detached"

# No permission: the tracking file's directory is not writable by the
# server.  As root, run it as nobody (user=: the file is first written
# before the privileges go); otherwise a read-only directory.  Then
# checkpoints fail and change nothing, the export serves, and the next
# start (the final write failed too) loads the bitmaps entirely dirty.
mkdir "$tmp/ro-bitmaps"
if [ "$(id -u)" -eq 0 ] && ! id nobody > /dev/null 2>&1; then
    echo "$0: the no-permission case needs the user nobody when run as root"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$tmp" "$tmp/ro-bitmaps"
    chmod 666 "$img"
    who=user=nobody,
else
    who=
fi
start_server_unix --control "$tmp/ctl" \
    loopback ${who}cbt,cbtdir="$tmp/ro-bitmaps",fd="$img" blk cache=16m
[ -n "$who" ] || chmod 555 "$tmp/ro-bitmaps"
expect_fail_with "tracking file cannot be written.*nothing changed" \
    nbd-loopback ctl "$tmp/ctl" checkpoint lo0 p1
test "$(nbd-loopback ctl "$tmp/ctl" list)" = "lo0 live 0"
qemu-io -f raw -c 'write 0 4k' "$(uri)" > /dev/null
grep -q "creating $tmp/ro-bitmaps/disk.img.cbt.tmp: Permission denied" "$tmp/server.log"
stop_server
chmod 755 "$tmp/ro-bitmaps"
: > "$tmp/server.log"
start_server_unix loopback cbt,cbtdir="$tmp/ro-bitmaps",fd="$img" blk cache=16m
test "$(map live)" = "$all_dirty"
grep -q 'did not stop cleanly' "$tmp/server.log"
stop_server
