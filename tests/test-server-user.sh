#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# user=: the daemon opens its files and sockets as root, then runs as
# that user (and group), and still serves reads and writes.
source ./functions.sh
set -e
set -x

requires_root
requires nbdinfo --version
requires nbdcopy --version
id nobody >/dev/null 2>&1 || skip "no user 'nobody'"
uid=$(id -u nobody)
make_tmpdir
truncate -s 16M "$tmp/disk.img"
chmod 600 "$tmp/disk.img"
start_server_unix loopback user=nobody,fd="$tmp/disk.img"

grep -E "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid$" /proc/$server_pid/status
grep -E "^Groups:\s*$(id -g nobody)?\s*$" /proc/$server_pid/status
head -c 1M /dev/urandom > "$tmp/data"
nbdcopy "$tmp/data" "$(nbd_uri)"
stop_server
cmp -n $((1024 * 1024)) "$tmp/data" "$tmp/disk.img"
