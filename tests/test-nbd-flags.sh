#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Transmission flags as SPEC section 6 says: a read-write export offers
# FLUSH, FUA, MULTI_CONN, TRIM, WRITE_ZEROES, FAST_ZERO, CACHE and DF;
# a read-only one is flagged so and refuses writes with EPERM; at
# commit=none FUA is not offered and a FUA write is refused.
source ./functions.sh
set -e
set -x

test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
start_fixture_server
./client-libnbd "$sock" flags-rw
./client-libnbd "$sock" flags-ro
stop_server

start_fixture_server blk commit=none
./client-libnbd "$sock" no-fua
stop_server
