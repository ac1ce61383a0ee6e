#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# denywr keeps qemu from writing: while hold-device holds the file with
# denywr, qemu-io cannot open it for writing (qemu's own "Failed to get
# "write" lock") but can still read it; once the holder is gone, the
# same qemu-io write succeeds and reaches the file.
source ./functions.sh
set -e
set -x

requires qemu-io --version
make_tmpdir
f="$tmp/disk.img"
truncate -s 1M "$f"

hold-device --until-signal async,denywr:"$f" > "$tmp/out" 2>&1 &
holder=$!
cleanup_fn kill_pid $holder
ready () { grep -q '^ready$' "$tmp/out" || ! kill -0 $holder; }
wait_for 30 ready
grep -q '^ready$' "$tmp/out" || { cat "$tmp/out"; fail "hold-device did not start"; }
test "$(hold-device locks "$f")" = "100 101 201 203"

expect_fail_with 'Failed to get "write" lock' \
    qemu-io -f raw -c 'write -P 0x5a 0 512' "$f"
qemu-io -r -f raw -c 'read 0 512' "$f"
cmp -n 512 "$f" /dev/zero

kill_pid $holder
test "$(hold-device locks "$f")" = ""
qemu-io -f raw -c 'write -P 0x5a 0 512' "$f"
cmp -n 512 "$f" <(head -c 512 /dev/zero | tr '\0' '\132')
