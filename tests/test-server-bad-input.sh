#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Malformed handshakes and requests close (or are answered on) the
# offending connection only: a client connected throughout is still
# served, and the server shuts down cleanly (no leak under ASan).
source ./functions.sh
set -e
set -x

requires nbdinfo --version
test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
truncate -s 16M "$tmp/disk.img"
start_server_unix loopback fd="$tmp/disk.img"

# A bystander that stays connected through everything below.
mkfifo "$tmp/hold"
./client-libnbd "$sock" hold < "$tmp/hold" &
holder=$!
exec 7>"$tmp/hold"

for mode in garbage-magic garbage-handshake unknown-client-flags \
            unknown-option long-option list-with-data unknown-export-name \
            vanish-handshake vanish-request; do
    ./client-raw "$sock" $mode
    nbdinfo --size "$(nbd_uri)" | grep -qx 16777216
done
wait_for 10 grep -q 'invalid request: bad magic' "$tmp/server.log"
grep -q 'unknown client flags' "$tmp/server.log"
exec 7>&-
wait $holder
stop_server
