#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad configuration stops nbdkit at start (non-zero exit, no client
# ever served) with the same message as the daemon's parser gives for
# the same options; a bad option is reported before any file is looked
# at; a missing file and an empty one are named; an unknown key and an
# empty configuration get a clear message.
source ./functions.sh
set -e
set -x

requires_frontend plugin
make_tmpdir
f="$tmp/disk.img"
truncate -s 1M "$f"

# plugin_error GROUP OPTS: the plugin's message for loopback=/blk=OPTS
# (nbdkit must exit non-zero without running the command).
plugin_error ()
{
    local status=0
    loopback_nbdkit -U - "$loopback_plugin" "$1=$2" --run 'touch "$tmp/served"' \
        > "$tmp/out" 2>&1 || status=$?
    cat "$tmp/out" >&2
    test $status -ne 0 || fail "nbdkit accepted $1=$2"
    test ! -e "$tmp/served" || fail "nbdkit served with $1=$2"
    sed -n 's/^nbdkit: error: //p' "$tmp/out"
}
# daemon_error GROUP OPTS: the daemon's message for the same options.
daemon_error ()
{
    local status=0
    nbd-loopback --dump-config "$1" "$2" >/dev/null 2>"$tmp/err" || status=$?
    cat "$tmp/err" >&2
    test $status -ne 0 || fail "nbd-loopback accepted $1 $2"
    sed -n 's/^nbd-loopback: error: //p' "$tmp/err"
}
export tmp

# GROUP OPTS MESSAGE: the message both front ends must give.
table=(
    loopback "blksz=3000,fd=$f"  'blksz=3000: must be 512, 1024, 2048 or 4096 (or empty for the probed size)'
    loopback "heads=0,fd=$f"     'heads=0: must be a number from 1 to 255'
    loopback "nio=-1,fd=$f"      'nio=-1: must be a number from 0 to 64'
    loopback "bogus,fd=$f"       'bogus: unknown loopback option (nbd-loopback --help lists them)'
    loopback "fd="               'fd=: empty value; expected fd=PATH'
    blk      cache=12x           'cache=12x: unknown size suffix (use b, k, m, g, p or %)'
    blk      commit=bogus        'commit=bogus: must be none, low, medium or high'
    blk      delwri=abc          'delwri=abc: expected a time: a number with an optional suffix h, m or s'
    blk      ra=8k:4k            'ra=8k:4k: MIN is larger than MAX'
    blk      frob                'frob: unknown blk option (nbd-loopback --help lists them)'
)
daemon=yes
nbd-loopback --help 2>/dev/null | grep -q -- --dump-config || daemon=no
for (( i = 0; i < ${#table[@]}; i += 3 )); do
    group=${table[i]} opts=${table[i+1]} want=${table[i+2]}
    got=$(plugin_error "$group" "$opts")
    test "$got" = "$want" || fail "$group=$opts: plugin said '$got'"
    if [ $daemon = yes ]; then
        got=$(daemon_error "$group" "$opts")
        test "$got" = "$want" || fail "$group $opts: daemon said '$got'"
    fi
done

# A bad option wins over a missing file: the file is not looked at.
plugin_error loopback "fd=$tmp/missing.img,blksz=3000" > "$tmp/msg"
grep -F 'blksz=3000' "$tmp/msg"
if grep -F 'missing.img' "$tmp/msg"; then
    fail "the file was looked at before the options were checked"
fi

# A missing file and an empty file are named.
plugin_error loopback "fd=$tmp/missing.img" | grep -F "$tmp/missing.img"
: > "$tmp/empty.img"
plugin_error loopback "fd=$tmp/empty.img" | grep -E "$tmp/empty.img: .*pregrow"

# Keys that are neither a group nor an option; nothing to export.
plugin_error foo bar | grep -F "unknown parameter 'foo'"
plugin_error blk cache=16m | grep -F 'nothing to export'
