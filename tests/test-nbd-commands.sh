#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Every command through libnbd: READ and WRITE (with FUA, unaligned,
# zero-length, 64 MiB: above the advertised 32 MiB maximum), FLUSH,
# TRIM, WRITE_ZEROES (NO_HOLE, FUA, FAST_ZERO), CACHE, and 64 requests
# in flight on one connection.
source ./functions.sh
set -e
set -x

test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
start_fixture_server

for mode in read-write flush-trim-zero-cache inflight large; do
    ./client-libnbd "$sock" $mode
done
stop_server
