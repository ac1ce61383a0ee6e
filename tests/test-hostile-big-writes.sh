#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A client that sends 32 MiB WRITEs back to back as fast as it can: the
# daemon takes them at its pace (it stops reading the connection while
# 64 MiB are held), acknowledges every one, keeps serving a
# well-behaved client on another export (no request of it waits more
# than 10 s), and its memory grows by no more than cache= plus 64 MiB
# held plus the 32 MiB request being received plus 32 MiB.
#
# CI: 5 s.  LONG=1: 60 s.
source ./functions.sh
source "$(dirname "$0")/hostile-functions.sh"
set -e
set -x

requires_frontend daemon
requires stress-client --help
requires hostile-client --help
make_tmpdir
truncate -s 8M "$tmp/good.img"
truncate -s 256M "$tmp/big.img"
if [ "${LONG:-0}" != 0 ]; then secs=60; else secs=5; fi

start_server_unix \
    loopback blksz=512,async,fd="$tmp/good.img",fd="$tmp/big.img" \
    blk cache=32m
base=$(vm_kib "$server_pid" VmRSS)

hostile-client big-writes "$sock" lo1 "$secs" >"$tmp/hostile.out" &
hostile=$!
cleanup_fn kill_pid "$hostile"
good_client "$secs" lo0 "$tmp/good.img"
wait "$hostile" || fail "the big-writes client failed"
cat "$tmp/hostile.out"
check_growth "$server_pid" "$base" $(( 32 + 64 + 32 + 32 )) "big-writes"
stop_server
# Everything written back, nothing else: 0x5b or untouched zeroes.
test "$(tr -d '\000\133' <"$tmp/big.img" | head -c 1 | wc -c)" -eq 0
