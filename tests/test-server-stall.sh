#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A client that sends requests and never reads the replies: the server
# stops reading from it (bounded memory), keeps serving everyone else,
# and drops it after --stall-timeout seconds.
source ./functions.sh
set -e
set -x

requires nbdcopy --version
make_tmpdir
head -c 8M /dev/urandom > "$tmp/data"
cp "$tmp/data" "$tmp/disk.img"
start_server_unix --stall-timeout=3 loopback fd="$tmp/disk.img"

./client-raw "$sock" no-read > "$tmp/stalled.out" &
stalled=$!
# Served while the other client stalls.
nbdcopy "$(nbd_uri)" "$tmp/copy"
cmp "$tmp/data" "$tmp/copy"
wait $stalled
cat "$tmp/stalled.out"
grep -q 'client read no reply for 3 s' "$tmp/server.log"
# The server's memory stayed bounded: well under the 100 GiB asked for.
rss=$(awk '/^VmHWM/ { print $2 }' /proc/$server_pid/status)
echo "peak RSS: $rss kB"
test "$rss" -lt $(( 1024 * 1024 ))
stop_server
