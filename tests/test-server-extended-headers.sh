#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Extended headers, byte by byte (client-extended): the negotiation
# rules, 64-bit WRITE_ZEROES, TRIM, CACHE and BLOCK_STATUS over a
# 16 GiB sparse export in one request each (the host file checked), the
# block-status filter, and bad input in the new framing: each a clear
# NBD error with the stream in step, or the connection alone closed.
# A 64-bit CACHE prefetches no more than the export may hold.
source ./functions.sh
set -e
set -x

requires jq --version
make_tmpdir
truncate -s 16G "$tmp/big.img"
start_server_unix --stats-file "$tmp/stats.json" \
    loopback fd="$tmp/big.img" blk cache=16m

./client-extended "$sock" negotiation
./client-extended "$sock" requests
# The host file: 16 GiB, zero, and sparse again after the TRIM.
test "$(stat -c %s "$tmp/big.img")" = 17179869184
test "$(du -k "$tmp/big.img" | cut -f1)" -lt 1024 ||
    fail "the 16 GiB file is not sparse after WRITE_ZEROES and TRIM"
cmp -n 1M -i 8G:0 "$tmp/big.img" /dev/zero

./client-extended "$sock" bad-input
./client-extended "$sock" big-payload
./client-extended "$sock" compact-on-extended
./client-extended "$sock" extended-on-compact

grep -q 'invalid request: a 32-byte extended header, but extended headers were not negotiated' "$tmp/server.log"
grep -q 'invalid request: a compact header, but extended headers were negotiated' "$tmp/server.log"
grep -q 'NBD_OPT_EXPORT_NAME after NBD_OPT_EXTENDED_HEADERS' "$tmp/server.log"
grep -q 'invalid request: NBD_CMD_WRITE with a payload of 8589934592 bytes' "$tmp/server.log"

# The server still serves, and stops cleanly (no leak under ASan).
./client-extended "$sock" negotiation
stop_server

# The CACHE of 16 GiB prefetched no more than the cache holds (16 MiB,
# 4096 blocks), not the whole export.
cat "$tmp/stats.json"
ra=$(jq '.exports[0].readahead_blocks' "$tmp/stats.json")
test "$ra" -le 8192 || fail "a 16 GiB CACHE read $ra blocks ahead"
