#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A host file whose size is not a multiple of blksz is exported rounded
# down, with a warning naming the path and both sizes; the file itself
# is left alone.  blksz= overrides the probed size, and a size outside
# bufsz= is refused with advice to set blksz=.
source ./functions.sh
set -e
set -x

make_tmpdir
f="$tmp/odd.img"
truncate -s $(( 1024*1024 + 1000 )) "$f"

hold-device --no-wait denyno,blksz=4096:"$f" > "$tmp/out" 2> "$tmp/err"
cat "$tmp/out" "$tmp/err"
grep -q "^lo0 size=1048576 host_size=1049576 blksz=4096 " "$tmp/out"
grep -q "warning: lo0: $f: size 1049576 is not a multiple of blksz=4096: exporting 1048576 bytes, the last 1000 bytes are not accessible" "$tmp/err"
test "$(stat -c %s "$f")" -eq 1049576

hold-device --no-wait denyno,blksz=512:"$f" > "$tmp/out" 2> "$tmp/err"
grep -q "^lo0 size=1049088 host_size=1049576 blksz=512 " "$tmp/out"
grep -q "exporting 1049088 bytes, the last 488 bytes" "$tmp/err"

# A multiple of blksz: no warning.
truncate -s 1M "$f"
hold-device --no-wait denyno,blksz=1024:"$f" > "$tmp/out" 2> "$tmp/err"
grep -q "^lo0 size=1048576 host_size=1048576 blksz=1024 " "$tmp/out"
test ! -s "$tmp/err"

expect_fail_with "lo0: $f: block size 4096 \(from blksz=\) is outside bufsz=512:2048: set blksz= to a size within it" \
    hold-device --no-wait denyno,blksz=4096,bufsz=512:2048:"$f"
