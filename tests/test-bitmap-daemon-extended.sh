#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# qemu:dirty-bitmap over extended headers (client-extended bitmaps):
# one 64-bit BLOCK_STATUS over a 16 GiB export answers base:allocation
# and the bitmap in a chunk each, the last flagged DONE, with 64-bit
# extents; the payload filter picks the bitmap alone or both.
source ./functions.sh
set -e
set -x

make_tmpdir
truncate -s 16G "$tmp/big.img"
start_server_unix loopback cbt,fd="$tmp/big.img" blk cache=16m
./client-extended "$sock" bitmaps
stop_server
test -s "$tmp/big.img.cbt"
