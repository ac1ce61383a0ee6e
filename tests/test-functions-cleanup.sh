#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The test harness fails loudly: a process that ignores SIGTERM at
# cleanup fails a test that had passed (it used to be only printed),
# one that stops passes, and requires_frontend fails rather than skips
# when the daemon is missing.
source ./functions.sh
set -e

make_tmpdir
cat > "$tmp/ignores-term.sh" <<EOT
source "$PWD/functions.sh"
set -e
sh -c 'trap "" TERM; : > "$tmp/ignoring"; sleep 30' &
cleanup_fn kill_pid \$!
wait_for 10 test -e "$tmp/ignoring"
echo "the test's body passed"
EOT
cat > "$tmp/stops.sh" <<EOT
source "$PWD/functions.sh"
set -e
sleep 30 &
cleanup_fn kill_pid \$!
echo "the test's body passed"
EOT
mkdir "$tmp/empty"
cat > "$tmp/no-daemon.sh" <<EOT
source "$PWD/functions.sh"
PATH=$tmp/empty
requires_frontend daemon
echo "not reached"
EOT

status=0
KILL_PID_SECS=1 bash "$tmp/ignores-term.sh" > "$tmp/out" 2>&1 || status=$?
cat "$tmp/out"
test "$status" -eq 1 || fail "a process ignoring SIGTERM at cleanup gave status $status"
grep -F "did not exit within 1 s of SIGTERM" "$tmp/out"

KILL_PID_SECS=5 bash "$tmp/stops.sh" || fail "a clean cleanup failed the test"

status=0
bash "$tmp/no-daemon.sh" > "$tmp/out" 2>&1 || status=$?
cat "$tmp/out"
test "$status" -eq 1 || fail "requires_frontend daemon without a daemon gave status $status"
grep -F "nbd-loopback was not built" "$tmp/out"
