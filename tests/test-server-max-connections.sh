#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --max-connections: a client beyond the limit is told why
# (NBD_REP_ERR_POLICY) instead of being served; the one connected is
# unaffected, and once it leaves a new client gets in.
source ./functions.sh
set -e
set -x

requires nbdinfo --version
test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
truncate -s 16M "$tmp/disk.img"
start_server_unix --max-connections=1 loopback fd="$tmp/disk.img"

mkfifo "$tmp/hold"
./client-libnbd "$sock" hold < "$tmp/hold" > "$tmp/holder.out" &
holder=$!
exec 7>"$tmp/hold"
connected () { grep -q connected "$tmp/holder.out"; }
wait_for 30 connected
expect_fail_with 'server policy prevents NBD_OPT_GO' nbdinfo --size "$(nbd_uri)"
wait_for 10 grep -q 'more than 1 connections: refusing it' "$tmp/server.log"
exec 7>&-
wait $holder
# The holder has gone: room again (its close may take a moment).
wait_for 10 nbdinfo --size "$(nbd_uri)"
stop_server
