#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A block device target (a loop device): its size comes from
# BLKGETSIZE64 and its probed block size is the logical sector size
# (512, or 4096 with losetup --sector-size 4096); data and zeroes
# written through it reach the backing file; denywr opens it O_EXCL,
# so a second exclusive opener (another denywr holder, mkfs) fails
# while the lock bytes alone would have allowed it.
source ./functions.sh
set -e
set -x

requires_root
requires losetup --version
make_tmpdir

# attach FILE [LOSETUP ARGS...]: sets $dev to a new loop device on
# FILE, detached at exit.  (Not in a subshell: cleanup_fn must run here.)
attach ()
{
    local f=$1
    shift
    dev=$(losetup -f --show "$@" "$f" 2>"$tmp/losetup.err") ||
        skip "losetup cannot attach a loop device here: $(cat "$tmp/losetup.err")"
    cleanup_fn losetup -d "$dev"
}

truncate -s 64M "$tmp/disk.img"
attach "$tmp/disk.img"
test -b "$dev"

hold-device --no-wait denyno:"$dev" > "$tmp/out"
cat "$tmp/out"
grep -q "^lo0 size=67108864 host_size=67108864 blksz=512 probed_blksz=512 io=xtype block=1 readonly=0$" "$tmp/out"

# Data and zeroes through the block device land in the backing file.
head -c 100000 /dev/urandom > "$tmp/data"
hold-device write async,denyno:"$dev" 4000 < "$tmp/data"
hold-device read denyno,seek:"$dev" 4000 100000 | cmp - "$tmp/data"
cmp -n 100000 "$tmp/data" <(tail -c +4001 "$tmp/disk.img")
hold-device zero async,denyno:"$dev" 5000 70000
cmp -n 1000 "$tmp/data" <(tail -c +4001 "$tmp/disk.img")
cmp -n 70000 /dev/zero <(tail -c +5001 "$tmp/disk.img")
cmp -n 29000 <(tail -c +71001 "$tmp/data") <(tail -c +75001 "$tmp/disk.img")
hold-device extents denyno:"$dev" 0 1048576 > "$tmp/extents"
test "$(cat "$tmp/extents")" = "0 1048576 data"

# Trim (BLKDISCARD): the loop driver punches the backing file, where it
# supports discard; elsewhere trim is advisory and still succeeds.
head -c 4M /dev/urandom | hold-device write async,denyno:"$dev" 8388608
sync "$tmp/disk.img"
before=$(stat -c %b "$tmp/disk.img")
hold-device trim async,denyno:"$dev" 8388608 4194304
sync "$tmp/disk.img"
after=$(stat -c %b "$tmp/disk.img")
loop=$(basename "$dev")
if [ "$(cat /sys/block/$loop/queue/discard_max_bytes 2>/dev/null || echo 0)" -gt 0 ]; then
    test "$after" -le $(( before - 4194304 / 512 + 128 ))
fi

# O_EXCL: ro,denywr takes no byte that another ro,denywr checks, so
# only the exclusive open keeps the second one out.
hold-device --until-signal ro,denywr:"$dev" > "$tmp/hold" 2>&1 &
holder=$!
cleanup_fn kill_pid $holder
ready () { grep -q '^ready$' "$tmp/hold" || ! kill -0 $holder; }
wait_for 30 ready
grep -q '^ready$' "$tmp/hold" || { cat "$tmp/hold"; fail "hold-device did not start"; }
expect_fail_with "lo0: $dev: cannot open exclusively for denywr: Device or resource busy" \
    hold-device --no-wait ro,denywr:"$dev"
if command -v mkfs.ext4 >/dev/null; then
    expect_fail_with "in use" mkfs.ext4 -q -F "$dev"
fi
# Sharing modes still open it.
hold-device --no-wait ro,denyno:"$dev"
kill_pid $holder
hold-device --no-wait ro,denywr:"$dev"

# 4096-byte logical sectors.
truncate -s 16M "$tmp/disk4k.img"
attach "$tmp/disk4k.img" --sector-size 4096
dev4k=$dev
hold-device --no-wait denyno:"$dev4k" > "$tmp/out"
cat "$tmp/out"
grep -q "^lo0 size=16777216 host_size=16777216 blksz=4096 probed_blksz=4096 io=xtype block=1 " "$tmp/out"
# Unaligned zeroing around 4096-byte sectors keeps the edges.
head -c 20000 /dev/urandom > "$tmp/data4k"
hold-device write async,denyno:"$dev4k" 0 < "$tmp/data4k"
hold-device zero async,denyno:"$dev4k" 1000 10000
hold-device read denyno:"$dev4k" 0 20000 > "$tmp/back4k"
cmp -n 1000 "$tmp/data4k" "$tmp/back4k"
cmp -n 10000 /dev/zero <(tail -c +1001 "$tmp/back4k")
cmp <(tail -c +11001 "$tmp/data4k") <(tail -c +11001 "$tmp/back4k")
