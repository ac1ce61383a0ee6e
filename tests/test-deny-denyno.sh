#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# denyno shares the file: while hold-device holds it rw,denyno or
# ro,denyno, qemu-io can open it read-write and its writes reach the
# file.  An rw holder still does not share "resize" (the exported size
# is fixed), so qemu-img resize is refused with qemu's own message.
source ./functions.sh
set -e
set -x

requires qemu-io --version
requires qemu-img --version
make_tmpdir
f="$tmp/disk.img"
truncate -s 1M "$f"

# start_holder SPEC...: hold-device in the background, each with its
# own output file, waited for until it prints "ready".
nr_holders=0
start_holder ()
{
    out="$tmp/holder$(( ++nr_holders )).out"
    hold-device --until-signal "$@" > "$out" 2>&1 &
    holder=$!
    cleanup_fn kill_pid $holder
    ready () { grep -q '^ready$' "$out" || ! kill -0 $holder; }
    wait_for 30 ready
    grep -q '^ready$' "$out" || { cat "$out"; fail "hold-device $* did not start"; }
}

start_holder async,rw,denyno:"$f"
test "$(hold-device locks "$f")" = "100 101 203"
qemu-io -f raw -c 'write -P 0x11 4096 512' "$f"
cmp -n 512 <(tail -c +4097 "$f") <(head -c 512 /dev/zero | tr '\0' '\021')
expect_fail_with 'Failed to get "resize" lock' qemu-img resize -f raw "$f" 2M
test "$(stat -c %s "$f")" -eq 1048576
kill_pid $holder

start_holder ro,denyno:"$f"
test "$(hold-device locks "$f")" = "100"
qemu-io -f raw -c 'write -P 0x22 8192 512' "$f"
cmp -n 512 <(tail -c +8193 "$f") <(head -c 512 /dev/zero | tr '\0' '\042')
qemu-img resize -f raw "$f" 2M
kill_pid $holder
