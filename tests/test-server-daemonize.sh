#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Without -f the daemon detaches: the command returns (status 0) only
# once the server listens and its pidfile is written; the daemon runs
# in its own session; SIGTERM stops it, removing the pidfile and the
# Unix socket.  A start-up error still reaches the terminal (status 1).
source ./functions.sh
set -e
set -x

requires nbdinfo --version
make_tmpdir
truncate -s 16M "$tmp/disk.img"

nbd-loopback -P "$tmp/pid" -U "$tmp/sock" loopback fd="$tmp/disk.img"
test -s "$tmp/pid"
pid=$(cat "$tmp/pid")
cleanup_fn kill_pid "$pid"
kill -0 "$pid"
test -S "$tmp/sock"
nbdinfo --size "nbd+unix:///?socket=$tmp/sock" | grep -qx 16777216
test "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid"

kill -TERM "$pid"
gone () { ! kill -0 "$pid" 2>/dev/null; }
wait_for 30 gone
test ! -e "$tmp/pid"
test ! -e "$tmp/sock"

# The file is locked by a running server: the second one fails, says
# why on stderr, exits 1 and leaves no socket behind.
start_server_unix loopback fd="$tmp/disk.img"
expect_fail_with "$tmp/disk.img" \
    nbd-loopback -P "$tmp/pid2" -U "$tmp/sock2" loopback fd="$tmp/disk.img"
test ! -e "$tmp/pid2"
test ! -e "$tmp/sock2"
stop_server
