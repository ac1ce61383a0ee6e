#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Targets that cannot be exported are refused, each with a message that
# names the export and the path: a missing file, a directory, an empty
# file (with a pregrow hint that works when followed), a file smaller
# than one block, a fifo and a character device.
source ./functions.sh
set -e
set -x

make_tmpdir

expect_fail_with "^hold-device: error: lo0: $tmp/missing.img: cannot open: No such file or directory \(an fd= file must exist with the size to export: make one, e.g. truncate -s 1G $tmp/missing.img\)$" \
    hold-device --no-wait denyno:"$tmp/missing.img"

mkdir "$tmp/dir"
expect_fail_with "lo0: $tmp/dir: is a directory, expected a regular file or block device" \
    hold-device --no-wait denyno:"$tmp/dir"

: > "$tmp/empty.img"
expect_fail_with "lo0: $tmp/empty.img: the file is empty .*pregrow it, e.g. truncate -s 1G $tmp/empty.img$" \
    hold-device --no-wait denyno:"$tmp/empty.img"
# The same from device_probe (what --dump-config uses).
expect_fail_with "pregrow it, e.g. truncate -s 1G $tmp/empty.img$" \
    hold-device probe denyno:"$tmp/empty.img"
# Following the hint makes it exportable.
truncate -s 1G "$tmp/empty.img"
hold-device --no-wait denyno:"$tmp/empty.img" > "$tmp/out"
grep -q "^lo0 size=1073741824 " "$tmp/out"

truncate -s 100 "$tmp/small.img"
expect_fail_with "lo0: $tmp/small.img: the file is smaller than one block \(100 bytes < blksz=512\); pregrow it, e.g. truncate -s 1G $tmp/small.img$" \
    hold-device --no-wait denyno,blksz=512:"$tmp/small.img"

mkfifo "$tmp/fifo"
expect_fail_with "lo0: $tmp/fifo: is a fifo, expected a regular file or block device" \
    hold-device --no-wait denyno:"$tmp/fifo"

expect_fail_with "lo0: /dev/null: is a character device, expected a regular file or block device" \
    hold-device --no-wait denyno:/dev/null

# Nothing was created along the way.
test ! -e "$tmp/missing.img"
