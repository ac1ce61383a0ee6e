#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# When stderr is systemd's journal (JOURNAL_STREAM=DEVICE:INODE names
# it), every log line starts with its syslog priority ("<3>" error,
# "<4>" warning, "<6>" info, "<7>" debug), so the journal files errors
# as errors.  JOURNAL_STREAM naming another file (inherited from a
# parent whose stderr was the journal) changes nothing.
source ./functions.sh
set -e
set -x

make_tmpdir
truncate -s 1M "$tmp/disk.img"

# run_logged LOG JOURNAL_STREAM: a server that warns (a QNX-only
# option), logs at info and debug level (-v), then fails (a missing
# file), with stderr appended to LOG.
run_logged ()
{
    local status=0
    env JOURNAL_STREAM="$2" nbd-loopback -v -f -U "$tmp/sock" \
        loopback fd="$tmp/disk.img",fd="$tmp/missing.img" blk noatime \
        2>>"$1" || status=$?
    test "$status" -ne 0 || fail "the server started with a missing file"
}

: > "$tmp/journal.log"
stream=$(stat -c '%d:%i' "$tmp/journal.log")
run_logged "$tmp/journal.log" "$stream"
cat "$tmp/journal.log"
grep -Eq '^<4>nbd-loopback: warning: .*noatime' "$tmp/journal.log"
grep -Eq '^<7>nbd-loopback: debug: ' "$tmp/journal.log"
grep -Eq "^<3>nbd-loopback: error: .*missing.img" "$tmp/journal.log"
if grep -Ev '^<[3467]>nbd-loopback: ' "$tmp/journal.log"; then
    fail "a line without its priority"
fi

# Not the journal: plain lines.
: > "$tmp/other.log"
run_logged "$tmp/other.log" "$stream"
cat "$tmp/other.log"
grep -Eq '^nbd-loopback: error: .*missing.img' "$tmp/other.log"
if grep -q '^<' "$tmp/other.log"; then
    fail "priorities on a stderr that is not the journal"
fi
