#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Requests the server must refuse with the error the protocol names,
# the connection going on: out of range (EINVAL, ENOSPC for writes),
# flags on the wrong command (EINVAL), an unknown command (EINVAL),
# READ and WRITE over 64 MiB (EINVAL, the write's payload drained).
source ./functions.sh
set -e
set -x

test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
start_fixture_server

./client-libnbd "$sock" bounds
./client-libnbd "$sock" bad-flags
for mode in unknown-command oversize-read oversize-write write-past-end; do
    ./client-raw "$sock" $mode
done
grep -q 'invalid request: unknown command 99' "$tmp/server.log"
grep -q 'invalid request: NBD_CMD_READ of 67108865 bytes' "$tmp/server.log"
stop_server
