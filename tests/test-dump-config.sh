#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --dump-config resolves real files: probed block size, export size
# (rounded down to blksz), the seeds' command lines, warnings on stderr.
source ./functions.sh
set -e
set -x

make_tmpdir
truncate -s 64M "$tmp/q4.img"
truncate -s 32M "$tmp/iso.img"
printf '%01000000d' 0 > "$tmp/odd.img"     # 1000000 bytes, not a multiple of 4096

dump () { nbd-loopback --dump-config "$@" 2>"$tmp/err"; }
val () { sed -n "s/^$1=//p" "$tmp/out"; }

# The seed's example, devices pointed at test files.
dump blk cache=128k,auto=none loopback fd="$tmp/q4.img" > "$tmp/out"
cat "$tmp/out" "$tmp/err"
test "$(val lo0.path)" = "$tmp/q4.img"
test "$(val lo0.size)" = 67108864
test "$(val cache)" = 131072
grep -q "warning: blk option 'auto' has no effect" "$tmp/err"

# Order-dependent modes and blksz= reset, as the seed describes.
dump loopback ro,blksz=2048,fd="$tmp/iso.img",rw,blksz=,fd="$tmp/q4.img" blk cache=64m,commit=high > "$tmp/out"
test "$(val lo0.access)" = ro
test "$(val lo0.blksz)" = 2048
test "$(val lo1.access)" = rw
# A file has no sectors: its minimum is 512, and st_blksize, the file
# system's I/O size, is only the preferred size (at least a 4 KiB
# cache block).
test "$(val lo1.blksz)" = 512
iosize=$(stat -c %o "$tmp/q4.img")
[ "$iosize" -ge 4096 ] || iosize=4096
test "$(val lo1.preferred)" = "$iosize"
test "$(val lo0.preferred)" = "$iosize"
test "$(val commit)" = high
test ! -s "$tmp/err"

# Size rounded down to a multiple of blksz, with a warning.
dump loopback blksz=4096,fd="$tmp/odd.img" > "$tmp/out"
test "$(val lo0.size)" = $(( 1000000 / 4096 * 4096 ))
grep -q "not a multiple of blksz=4096" "$tmp/err"

# Every key the issue lists is present.
dump loopback fd="$tmp/q4.img" > "$tmp/out"
for k in nio prefix lo0.path lo0.access lo0.sync lo0.deny lo0.io lo0.blksz lo0.preferred \
         lo0.heads lo0.tracks lo0.size cache alloc hash delwri postpone \
         commit ra protect wipe bufsz thread readonly; do
    grep -q "^$k=" "$tmp/out" || fail "key $k missing from --dump-config"
done

# ramdisk only: an export ram0, no file needed.
dump blk ramdisk=8m:4096 > "$tmp/out"
test "$(val ram0.size)" = 8388608
test "$(val ram0.blksz)" = 4096

# A bad option is reported before any file is looked at: the missing
# file is not mentioned, the option is, and the status is 1.
set +e
nbd-loopback --dump-config loopback fd="$tmp/missing.img" blk cache=12x 2>"$tmp/err"
status=$?
set -e
cat "$tmp/err"
test $status -eq 1
grep -q 'cache=12x: unknown size suffix' "$tmp/err"
if grep -q missing.img "$tmp/err"; then fail "a file was looked at before the options were checked"; fi

# A missing file: status 1, the path named, and nothing half-printed.
expect_fail_with "$tmp/missing.img" nbd-loopback --dump-config loopback fd="$tmp/q4.img",fd="$tmp/missing.img"
if nbd-loopback --dump-config loopback fd="$tmp/q4.img",fd="$tmp/missing.img" 2>/dev/null | grep -q .; then
    fail "--dump-config printed a partial configuration"
fi
