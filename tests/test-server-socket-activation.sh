#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# systemd socket activation: the listening socket comes in on fd 3
# with LISTEN_PID/LISTEN_FDS (here from systemd-socket-activate).  The
# daemon stays in the foreground and serves on it; -U and friends are
# refused in this mode.
source ./functions.sh
set -e
set -x

requires systemd-socket-activate --version
requires nbdinfo --version
make_tmpdir
truncate -s 16M "$tmp/disk.img"

systemd-socket-activate -l "$tmp/sock" \
    nbd-loopback -P "$tmp/pid" loopback fd="$tmp/disk.img" \
    > "$tmp/server.log" 2>&1 &
activator=$!
cleanup_fn kill_pid $activator
listening () { test -S "$tmp/sock"; }
wait_for 30 listening
# The daemon runs in the activator's process (it execs).
nbdinfo --size "nbd+unix:///?socket=$tmp/sock" | grep -qx 16777216
test "$(cat "$tmp/pid")" = "$activator"
nbdinfo --size "nbd+unix:///lo0?socket=$tmp/sock" | grep -qx 16777216
kill -TERM $activator
server_pid=$activator
wait_server_exit
test "$server_status" -eq 0

# -U with socket activation is a usage error.
expect_fail_with 'cannot be used with socket activation' \
    bash -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec nbd-loopback -U "$0" loopback fd="$1"' \
    "$tmp/x" "$tmp/disk.img"
