#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The man page and the parser agree both ways.  --help is generated
# from the parser's own tables (server/main.c's daemon options,
# opts/table.c's loopback and blk options), so: every option --help
# lists, long and short, is described in nbd-loopback(8), and every
# option nbd-loopback(8) describes is one --help lists (no stale
# docs).  Both man pages render without warnings at two widths.
source ./functions.sh
set -e
set -x

make_tmpdir
pod="$abs_top_srcdir/man/nbd-loopback.8.pod"
nbd-loopback --help > "$tmp/help"

# Daemon options: "  -f, --foreground, --no-fork" and "      --run CMD".
sed -n '/^Daemon options:/,/^$/p' "$tmp/help" > "$tmp/daemon"
grep -o -- '--[a-z][a-z-]*' "$tmp/daemon" | sort -u > "$tmp/long"
grep -Eo -- '^  -[a-zA-Z],' "$tmp/daemon" | tr -d ' ,' | sort -u > "$tmp/short"
test "$(wc -l < "$tmp/long")" -ge 18
test "$(wc -l < "$tmp/short")" -ge 8
while read -r o; do
    grep -q "^=item .*B<$o\(=\|>\)" "$pod" ||
        fail "daemon option $o has no =item in $pod"
done < "$tmp/long"
while read -r o; do
    grep -q "^=item B<$o>" "$pod" || fail "short option $o has no =item in $pod"
done < "$tmp/short"

# The other way: each =item of OPTIONS names options --help knows.
sed -n '/^=head1 OPTIONS/,/^=head1 LOOPBACK OPTIONS/p' "$pod" |
    sed -n 's/^=item //p' | grep -o 'B<-[^>=]*' | cut -c3- | sort -u > "$tmp/documented"
test "$(wc -l < "$tmp/documented")" -ge 20
while read -r o; do
    case $o in
    --*) grep -qx -- "$o" "$tmp/long" ;;
    *) grep -qx -- "$o" "$tmp/short" ;;
    esac || fail "$pod documents $o, which nbd-loopback does not accept"
done < "$tmp/documented"

# Group options: names from --help's rows and the no-effect list, and
# the =item names of LOOPBACK OPTIONS and BLK OPTIONS.
{
    awk '/^(loopback|blk) options/ { on = 1; next } /^$/ { on = 0 } on' \
        "$tmp/help" | sed -n 's/^  \([a-z-]*\)[=[ ].*/\1/p'
    sed -n '/^blk options accepted for QNX compatibility/,/^$/p' "$tmp/help" |
        tail -n +2 | tr ' ' '\n'
} | sed '/^$/d' | sort -u > "$tmp/group"
# (An =item's names follow "=item " or ", "; "|B<low>" is a value.  The
# QNX file-system options are a paragraph of their own.)
perl -ne '
    $in = 1 if /^=head1 LOOPBACK OPTIONS/; $in = 0 if /^=head1 DENY MODES/;
    next unless $in;
    $fs = 1 if /^=head2 QNX file-system options/;
    if (/^=item / or $fs) {
        print "$1\n" while /(?:^=item |, |^|\s)B<([a-z][a-z-]*)[=>]/g;
    }' "$pod" | sort -u > "$tmp/group-documented"
comm -23 "$tmp/group" "$tmp/group-documented" > "$tmp/undocumented"
comm -13 "$tmp/group" "$tmp/group-documented" > "$tmp/unknown"
test ! -s "$tmp/undocumented" ||
    fail "options not in $pod: $(tr '\n' ' ' < "$tmp/undocumented")"
test ! -s "$tmp/unknown" ||
    fail "$pod documents options the parser does not have: $(tr '\n' ' ' < "$tmp/unknown")"

# Both pages render cleanly, narrow and wide.
command -v man >/dev/null || skip "man is not installed: rendering not checked"
for page in "$abs_top_builddir"/man/*.[18]; do
    for width in 80 132; do
        out=$(MANWIDTH=$width man --warnings -l "$page" 2>&1 >/dev/null)
        test -z "$out" || fail "$page at width $width: $out"
    done
done
