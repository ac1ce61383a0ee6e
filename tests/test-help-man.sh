#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --help is generated from the option table; every option in it is
# documented in nbd-loopback(8), and the man page renders cleanly.
source ./functions.sh
set -e
set -x

make_tmpdir
nbd-loopback --help > "$tmp/help"
nbd-loopback --version | grep -q '^nbd-loopback [0-9]'

pod="$abs_top_srcdir/man/nbd-loopback.8.pod"
# Option names: the first word of each table row in --help, plus the
# no-effect list.
{
    sed -n 's/^  \([a-z-]*\)[=[ ].*/\1/p' "$tmp/help"
    sed -n '/^blk options accepted for QNX compatibility/,/^$/p' "$tmp/help" |
        tail -n +2 | tr ' ' '\n'
} | sed '/^$/d' | sort -u > "$tmp/names"
test "$(wc -l < "$tmp/names")" -gt 60
while read -r name; do
    grep -q "B<$name\(=\|>\)" "$pod" || fail "option $name is not documented in $pod"
done < "$tmp/names"

# Daemon options: every long option --help lists.
sed -n '/^Daemon options:/,/^$/p' "$tmp/help" | grep -o -- '--[a-z-]*' | sort -u > "$tmp/daemon"
test "$(wc -l < "$tmp/daemon")" -gt 10
while read -r opt; do
    grep -q "B<$opt" "$pod" || fail "daemon option $opt is not documented in $pod"
done < "$tmp/daemon"

# The built page renders without warnings.
page="$abs_top_builddir/man/nbd-loopback.8"
test -f "$page"
if command -v man >/dev/null; then
    out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
    test -z "$out" || fail "man page warnings: $out"
else
    echo "man not installed: rendering not checked"
fi
