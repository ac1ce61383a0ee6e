#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# SIGUSR1 logs per-export statistics; a read the cache already holds is
# answered on the event loop (the fast path, no worker handoff).
source ./functions.sh
set -e
set -x

requires qemu-io --version
make_tmpdir
head -c 4M /dev/urandom > "$tmp/disk.img"
start_server_unix loopback fd="$tmp/disk.img"

qemu-io -f raw -r "$(nbd_uri lo0)" -c 'read 0 64k' -c 'read 0 64k' \
    -c 'read 0 64k'
kill -USR1 "$server_pid"
logged () { grep -q '^nbd-loopback: lo0: reads' "$tmp/server.log"; }
wait_for 10 logged
cat "$tmp/server.log"
grep -Eq 'lo0: reads [0-9]+ \([0-9]+ bytes, [1-9][0-9]* on the fast path\)' \
    "$tmp/server.log"
grep -Eq 'statistics: [0-9]+ connections open, [1-9][0-9]* served' "$tmp/server.log"
stop_server
