#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Sparse files: BLOCK_STATUS reports base:allocation (holes as
# HOLE|ZERO, REQ_ONE giving one extent, dirty cached blocks as data)
# and structured READs send holes as OFFSET_HOLE chunks, except with DF.
source ./functions.sh
set -e
set -x

test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
start_fixture_server
# Skip where the file system does not report holes.
if [ "$(stat -c %b "$tmp/lo0.img")" -gt 64 ]; then
    skip "the file system of $tmp does not keep files sparse"
fi
./client-libnbd "$sock" sparse-read
./client-libnbd "$sock" block-status
stop_server
