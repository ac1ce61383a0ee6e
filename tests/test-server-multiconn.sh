#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Multi-conn: a write acknowledged on one connection is made durable by
# a FLUSH on another (one cache serves both), surviving kill -9.
source ./functions.sh
set -e
set -x

test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
head -c 1M /dev/urandom > "$tmp/data"
truncate -s 16M "$tmp/disk.img"
start_server_unix loopback fd="$tmp/disk.img" blk delwri=60
NBDL_DATA="$tmp/data" NBDL_SERVER_PID=$server_pid \
    ./client-libnbd "$sock" multiconn-flush-kill
wait_server_exit
test "$server_status" -eq 137
cmp <(dd if="$tmp/disk.img" bs=1M skip=4 count=1 status=none) "$tmp/data"
