#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A target the user may not open is refused with "Permission denied",
# naming the path and what to do: read-write on a file the user may
# only read says to export it ro (and ro then works); no access at all
# says to give access.  Root bypasses permissions, so hold-device runs
# as nobody through setpriv.
source ./functions.sh
set -e
set -x

requires_root
requires setpriv --version
nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
requires "${nobody[@]}" true
holder=$(command -v hold-device)
"${nobody[@]}" test -x "$holder" ||
    skip "nobody cannot execute $holder (a parent directory is not searchable)"

make_tmpdir
chmod 755 "$tmp"
truncate -s 1M "$tmp/readable.img" "$tmp/secret.img"
chmod 644 "$tmp/readable.img"
chmod 600 "$tmp/secret.img"

expect_fail_with "lo0: $tmp/readable.img: cannot open for reading and writing: Permission denied \(give this user access to it, or export it ro\)" \
    "${nobody[@]}" "$holder" --no-wait rw,denyno:"$tmp/readable.img"
expect_fail_with "lo0: $tmp/readable.img: cannot open for reading and writing: Permission denied" \
    "${nobody[@]}" "$holder" probe rw,denyno:"$tmp/readable.img"
"${nobody[@]}" "$holder" --no-wait ro,denyno:"$tmp/readable.img" > "$tmp/out"
grep -q "^lo0 size=1048576 .* readonly=1$" "$tmp/out"

expect_fail_with "lo0: $tmp/secret.img: cannot open for reading: Permission denied \(give this user access to it\)" \
    "${nobody[@]}" "$holder" --no-wait ro,denyno:"$tmp/secret.img"
