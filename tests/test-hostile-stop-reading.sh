#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A client that pipelines 1 MiB READs and never reads a reply: the
# daemon stops reading from it once 64 MiB of replies are held
# (CONN_MAX_BUFFERED), cuts it off --stall-timeout after its socket
# stopped moving, and meanwhile serves a well-behaved client on
# another export without errors or long waits.  The daemon's memory
# grows by no more than cache= plus the 64 MiB the hostile connection
# may hold (CONN_MAX_BUFFERED, plus the reply that crossed it) plus
# 48 MiB: the good client's requests, the workers' 1 MiB write-back
# bounce buffers and the process's own overhead.
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

start_server_unix --stall-timeout 2 \
    loopback blksz=512,async,fd="$tmp/good.img",fd="$tmp/big.img" \
    blk cache=32m
base=$(vm_kib "$server_pid" VmRSS)

hostile-client stop-reading "$sock" lo1 30 >"$tmp/hostile.out" &
hostile=$!
cleanup_fn kill_pid "$hostile"
good_client 6 lo0 "$tmp/good.img"
wait "$hostile" || fail "the stop-reading client was not cut off"
cat "$tmp/hostile.out"
cut=$(sed -n 's/.*cut off \([0-9.]*\) s after.*/\1/p' "$tmp/hostile.out")
# --stall-timeout 2: cut off after about 2 s (the clock restarts when
# the socket moves), never much later.
awk -v t="$cut" 'BEGIN { exit !(t >= 1 && t <= 8) }' ||
    fail "cut off after $cut s, expected about 2 s (--stall-timeout 2)"
grep -q 'client read no reply for 2 s: closing' "$tmp/server.log"
check_growth "$server_pid" "$base" $(( 32 + 64 + 48 )) "stop-reading"
nbdinfo --size "$(nbd_uri lo0)"   # still serving
stop_server
