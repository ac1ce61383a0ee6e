#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# libnbd 1.22's C API against the daemon: a 16 GiB sparse export with
# 1 MiB of data is zeroed by one NBD_CMD_WRITE_ZEROES and mapped by one
# NBD_CMD_BLOCK_STATUS (64-bit lengths: extended headers), and the host
# file is zero and sparse afterwards.
newest=yes
source ./functions.sh
set -e
set -x

requires ${CC:-cc} --version
make_tmpdir
# libnbd.pc of a private prefix lacks -I/-L: give them explicitly.
lib=$newest_dir/libnbd
${CC:-cc} -Wall -Wextra -Werror -I"$lib/include" \
    -o "$tmp/newest-zero-16g" "$abs_srcdir/newest-zero-16g.c" \
    -L"$lib/lib" -Wl,-rpath,"$lib/lib" -lnbd

truncate -s 16G "$tmp/big.img"
# -v -v logs every request, so they can be counted.
start_server_unix -v -v loopback fd="$tmp/big.img" blk cache=16m
"$tmp/newest-zero-16g" "$(nbd_uri)"
stop_server

grep 'using\|conn 1: serving' "$tmp/server.log" || :
grep -q 'conn 1: serving lo0 (extended headers' "$tmp/server.log"
test "$(grep -c 'NBD_CMD_WRITE_ZEROES flags' "$tmp/server.log")" = 1
grep -q 'NBD_CMD_WRITE_ZEROES flags 0x0 offset 0 count 17179869184$' "$tmp/server.log"
test "$(grep -c 'NBD_CMD_BLOCK_STATUS flags' "$tmp/server.log")" = 1
grep -q 'NBD_CMD_BLOCK_STATUS flags 0x0 offset 0 count 17179869184$' "$tmp/server.log"

# The host file: still 16 GiB, zero where the data was, and sparse.
test "$(stat -c %s "$tmp/big.img")" = 17179869184
cmp -n 1M -i 8G:0 "$tmp/big.img" /dev/zero
test "$(du -k "$tmp/big.img" | cut -f1)" -lt 1024 ||
    fail "the 16 GiB file is not sparse after one WRITE_ZEROES"
