#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Deny modes against a qemu-io that keeps the file open.  Read-write
# (qemu holds "consistent read" and "write"): denywr is refused naming
# "write", denyrd naming "consistent read", ro,denyno opens.  Read-only
# (qemu -r holds "consistent read" and shares the rest): denywr opens,
# denyrw is refused naming "consistent read".
source ./functions.sh
set -e
set -x

requires qemu-io --version
make_tmpdir
f="$tmp/disk.img"
truncate -s 1M "$f"
mkfifo "$tmp/commands"

# start_qemu_io ARGS...: qemu-io with the file open, reading commands
# from a fifo kept open; ready once its locks are visible.
start_qemu_io ()
{
    local want=$1
    shift
    exec 3<>"$tmp/commands"
    qemu-io "$@" "$f" <&3 > "$tmp/qemu-io.out" 2>&1 &
    qpid=$!
    exec 3>&-
    cleanup_fn kill_pid $qpid
    wait_for 30 locks_are "$want"
}
locks_are () { test "$(hold-device locks "$f")" = "$1"; }

start_qemu_io "100 101" -f raw
expect_fail_with "lo0: $f: cannot open: another process holds the \"write\" permission" \
    hold-device --no-wait ro,denywr:"$f"
expect_fail_with "another process holds the \"consistent read\" permission" \
    hold-device --no-wait ro,denyrd:"$f"
hold-device --no-wait ro,denyno:"$f"
hold-device --no-wait rw,denyno:"$f"
kill_pid $qpid

start_qemu_io "100" -r -f raw
hold-device --no-wait ro,denywr:"$f"
hold-device --no-wait rw,denywr:"$f"
expect_fail_with "another process holds the \"consistent read\" permission" \
    hold-device --no-wait ro,denyrw:"$f"
kill_pid $qpid
