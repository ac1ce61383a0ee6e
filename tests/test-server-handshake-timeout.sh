#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A client that connects and never negotiates is dropped after
# --timeout seconds; others are served meanwhile.
source ./functions.sh
set -e
set -x

requires nbdinfo --version
make_tmpdir
truncate -s 16M "$tmp/disk.img"
start_server_unix --timeout=1 loopback fd="$tmp/disk.img"

./client-raw "$sock" handshake-timeout &
silent=$!
nbdinfo --size "$(nbd_uri)" | grep -qx 16777216
wait $silent
wait_for 10 grep -q 'handshake not finished within 1 s' "$tmp/server.log"
stop_server
