#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The hostile clients (hostile-client.c; test-hostile-*.sh aims them
# at the daemon) against the nbdkit plugin, nbdkit under valgrind
# memcheck (NBDL_VALGRIND=1, see functions.sh): 32 MiB WRITEs back to
# back and connections that never finish the handshake, while a
# well-behaved client next to them writes and reads back verified
# data; then SIGTERM, so the plugin writes back and frees everything.
# An error or a definite leak in any nbdkit process fails the test.
# Not stop-reading: nbdkit 1.32 itself aborts when a client goes away
# with READ replies unsent ("connections.c:402: raw_send_socket:
# Assertion `sock >= 0' failed", also with its own memory plugin and
# without valgrind).
NBDL_VALGRIND=1
source ./functions.sh
set -e
set -x

requires_frontend plugin
requires_valgrind
requires hostile-client --help
requires stress-client --help
make_tmpdir
truncate -s 8M "$tmp/good.img"
truncate -s 96M "$tmp/big.img"

start_frontend plugin "$tmp/pid" "$tmp/sock" \
    loopback blksz=512,async,fd="$tmp/good.img",fd="$tmp/big.img" \
    blk cache=16m,delwri=0.5
sock=$frontend_sock

stress-client load --socket "$sock" --export lo0 --file "$tmp/good.img" \
    --size 8M --conns 2 --depth 4 --seconds 20 --max-latency 30 \
    >"$tmp/good.out" 2>&1 &
good=$!
cleanup_fn kill_pid "$good"

hostile-client big-writes "$sock" lo1 6
# nbdkit 1.32 has no handshake timeout: the client gives up after 3 s
# (exit 1, expected) and closes all 30 mid-handshake.
hostile-client half-open "$sock" 30 3 || :

wait "$good" || { cat "$tmp/good.out"; fail "the well-behaved client failed"; }
cat "$tmp/good.out"
kill -0 "$frontend_pid" || fail "nbdkit died"
stop_frontend
valgrind_check
