#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The Linux NBD tools' lister, over TCP: nbd-client -l HOST PORT.
source ./functions.sh
set -e
set -x

command -v nbd-client >/dev/null || skip "nbd-client is not installed"
make_tmpdir
truncate -s 16M "$tmp/a.img" "$tmp/b.img"
start_server_tcp loopback fd="$tmp/a.img",fd="$tmp/b.img" blk ramdisk=1m

timeout 30 nbd-client -l 127.0.0.1 "$port" | tee "$tmp/list"
grep -q "^lo0: a.img" "$tmp/list"
grep -q "^lo1: b.img" "$tmp/list"
grep -q "^ram0: RAM disk" "$tmp/list"
stop_server
