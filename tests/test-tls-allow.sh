#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --allow ADDR[/PREFIX]: a TCP client from another address (here
# 127.0.0.2, or ::1 for an IPv4-only list) is closed before the
# greeting and logged; the allowed address (IPv4 or IPv6, exact or by
# prefix) is served; Unix-socket clients are not subject to it.
source ./functions.sh
set -e
set -x

requires nbdinfo --version
make_tmpdir
truncate -s 16M "$tmp/disk.img"

start_server_tcp --allow 127.0.0.1 --allow 10.1.0.0/16 \
    loopback fd="$tmp/disk.img"
./client-tls-raw -s 127.0.0.2 "127.0.0.1:$port" refused
wait_for 10 grep -q 'connection from 127.0.0.2:[0-9]* refused: not in --allow' "$tmp/server.log"
./client-tls-raw -s 127.0.0.1 "127.0.0.1:$port" greeting
test "$(nbdinfo --size "nbd://127.0.0.1:$port/")" = 16777216
# The refused client did not stop the server.
./client-tls-raw -s 127.0.0.2 "127.0.0.1:$port" refused
test "$(nbdinfo --size "nbd://127.0.0.1:$port/")" = 16777216
stop_server

# A prefix.
start_server_tcp --allow 127.0.0.0/30 loopback fd="$tmp/disk.img"
./client-tls-raw -s 127.0.0.2 "127.0.0.1:$port" greeting
./client-tls-raw -s 127.0.0.5 "127.0.0.1:$port" refused
stop_server

# IPv6, if this kernel has ::1.
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1/128'; then
    port=$(( 20000 + RANDOM % 40000 ))
    start_server -i ::1 -p "$port" --allow 127.0.0.1 loopback fd="$tmp/disk.img" ||
        skip "cannot listen on [::1]:$port"
    ./client-tls-raw "[::1]:$port" refused
    wait_for 10 grep -q 'connection from \[::1\]:[0-9]* refused: not in --allow' "$tmp/server.log"
    stop_server
    start_server -i ::1 -p "$port" --allow ::1/128 loopback fd="$tmp/disk.img"
    ./client-tls-raw "[::1]:$port" greeting
    test "$(nbdinfo --size "nbd://[::1]:$port/")" = 16777216
    stop_server
fi

# Unix sockets: not subject to --allow (and the server says so).
start_server_unix --allow 127.0.0.1 loopback fd="$tmp/disk.img"
grep -q 'clients of the Unix socket are not subject' "$tmp/server.log"
test "$(nbdinfo --size "$(nbd_uri)")" = 16777216
stop_server
