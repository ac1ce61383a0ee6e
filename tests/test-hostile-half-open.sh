#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# 1000 connections that never finish the handshake (nothing, only the
# client flags, or half an option header): the daemon closes every one
# --timeout after it was accepted, logs each, gives their file
# descriptors back, and serves a well-behaved client meanwhile.  Its
# memory grows by no more than 96 KiB per half-open connection (the
# 64 KiB input buffer and bookkeeping) plus cache= plus 32 MiB.
source ./functions.sh
source "$(dirname "$0")/hostile-functions.sh"
set -e
set -x

requires_frontend daemon
requires stress-client --help
requires hostile-client --help
make_tmpdir
truncate -s 8M "$tmp/good.img"
n=1000
# The server and the client each hold n sockets.
if [ "$(ulimit -n)" -lt $((n + 100)) ]; then
    ulimit -n $((n + 100)) 2>/dev/null ||
        skip "needs $((n + 100)) file descriptors (ulimit -n is $(ulimit -n))"
fi

# The handshake budget would close most of them at once (see
# test-hostile-handshake-budget.sh): lift it to see the time limit.
start_server_unix --timeout 2 --max-connections $((n + 16)) \
    --max-handshakes $((n + 16)) --max-handshakes-per-address $((n + 16)) \
    loopback blksz=512,async,fd="$tmp/good.img" blk cache=16m
base=$(vm_kib "$server_pid" VmRSS)
fds=$(open_fds "$server_pid")

hostile-client half-open "$sock" $n 30 >"$tmp/hostile.out" &
hostile=$!
cleanup_fn kill_pid "$hostile"
wait_for 30 grep -q "^holding $n" "$tmp/hostile.out"
good_client 3 lo0 "$tmp/good.img"
wait "$hostile" || fail "the half-open connections were not all closed"
cat "$tmp/hostile.out"
last=$(sed -n 's/.* to \([0-9.]*\) s after they were opened/\1/p' \
       "$tmp/hostile.out")
awk -v t="$last" 'BEGIN { exit !(t <= 8) }' ||
    fail "the last half-open connection was closed after $last s" \
         "(--timeout 2)"
test "$(grep -c 'handshake not finished within 2 s' "$tmp/server.log")" \
    -eq $n
check_growth "$server_pid" "$base" $(( n * 96 / 1024 + 16 + 32 )) \
    "$n half-open connections"
# Every descriptor came back (the good client has disconnected too).
wait_for 10 test "$(open_fds "$server_pid")" -le "$fds"
echo "figures: half-open: server fds $fds before, $(open_fds "$server_pid") after"
nbdinfo --size "$(nbd_uri lo0)"   # still serving
stop_server
