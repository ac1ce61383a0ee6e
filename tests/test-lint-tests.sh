#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The shell tests cannot pass by accident: under set -e a line of its
# own "! cmd" never stops the script (bash ignores -e for a negated
# command), so it asserts nothing.  Write "cmd && fail ..." or
# "if cmd; then fail ...; fi".  A "!" that is part of a list ("! cmd ||
# fail ...") or the last command of a while/if condition is fine.  This check fails on a bare one, naming it.
source ./functions.sh
set -e

requires perl -e 1
cd "$abs_top_srcdir"
files=$(ls tests/*.sh tests/*.sh.in tests/vm/*.sh bench/run 2>/dev/null)
test -n "$files" || fail "no shell tests found under $abs_top_srcdir"
perl -ne '
    BEGIN { $bad = 0 }
    if (/^\s*!\s/ && !/\|\||&&/ && !/\\\s*$/ &&
        !/;\s*(do|then)\s*$/) {
        print "$ARGV:$.: a bare \"! cmd\" asserts nothing under set -e: $_";
        $bad++;
    }
    close ARGV if eof;          # line numbers per file
    END { exit ($bad ? 1 : 0) }
' $files || fail "bare '! cmd' lines (see above)"
echo "figures: $(echo "$files" | wc -w) shell files checked"
