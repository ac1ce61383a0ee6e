#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Start-up errors: each is reported on stderr naming what is wrong, the
# status is 1, and nothing is left behind (no pidfile, no socket); a
# live server's socket is not taken over, a dead one's is replaced.
source ./functions.sh
set -e
set -x

make_tmpdir
truncate -s 16M "$tmp/disk.img"
lb () { nbd-loopback -f -P "$tmp/pid" "$@"; }
nothing_left () { test ! -e "$tmp/pid" && test ! -e "$tmp/sock"; }

expect_fail_with 'cache=12x' lb -U "$tmp/sock" loopback fd="$tmp/disk.img" blk cache=12x
nothing_left
expect_fail_with "$tmp/missing.img" lb -U "$tmp/sock" loopback fd="$tmp/missing.img"
nothing_left
expect_fail_with 'nothing to export' lb -U "$tmp/sock"
nothing_left
expect_fail_with '-U cannot be combined with -p or -i' \
    lb -U "$tmp/sock" -p 10809 loopback fd="$tmp/disk.img"
expect_fail_with 'TLS needs --tls-certificates DIR or --tls-psk FILE' \
    lb --tls=require -U "$tmp/sock" loopback fd="$tmp/disk.img"
expect_fail_with 'expected a number of seconds' \
    lb --timeout=never -U "$tmp/sock" loopback fd="$tmp/disk.img"
expect_fail_with 'Try .nbd-loopback --help.' lb --no-such-option loopback fd="$tmp/disk.img"
expect_fail_with 'path too long' lb -U "$tmp/$(printf '%0200d' 0)" loopback fd="$tmp/disk.img"
nothing_left

# A socket a live server listens on is not taken over ...
start_server_unix loopback fd="$tmp/disk.img"
truncate -s 16M "$tmp/other.img"
expect_fail_with 'another server is listening' \
    nbd-loopback -f -P "$tmp/pid2" -U "$sock" loopback fd="$tmp/other.img"
test ! -e "$tmp/pid2"
test -S "$sock"
crash_server
# ... but the stale socket it leaves when killed is replaced.
test -S "$sock"
start_server_unix loopback fd="$tmp/disk.img"
grep -q 'replacing a stale socket' "$tmp/server.log"
stop_server
