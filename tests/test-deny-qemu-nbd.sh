#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Deny modes against qemu-nbd, both ways.  While qemu-nbd serves the
# file read-write, hold-device with denywr is refused naming "write",
# and rw,denyno opens.  While hold-device holds it with denywr,
# qemu-nbd refuses to serve it with its own "Failed to get "write"
# lock", and serves it once the holder is gone.
source ./functions.sh
set -e
set -x

requires qemu-nbd --version
make_tmpdir
f="$tmp/disk.img"
truncate -s 1M "$f"

# qemu-nbd --fork returns once it listens, but a SIGTERM that comes
# before its main loop runs is lost (it then sets its state to
# running): wait until it answers a client before it may be stopped.
start_qemu_nbd ()
{
    rm -f "$tmp/qemu-nbd.pid"
    qemu-nbd --fork --pid-file="$tmp/qemu-nbd.pid" -k "$tmp/sock" \
        -f raw -t "$f"
    qpid=$(cat "$tmp/qemu-nbd.pid")
    cleanup_fn kill_pid $qpid
    wait_for 30 qemu-img info "nbd+unix:///?socket=$tmp/sock"
}

start_qemu_nbd
test "$(hold-device locks "$f")" = "100 101 203"
expect_fail_with "lo0: $f: cannot open: another process holds the \"write\" permission \(it is in use, e.g. by qemu or another nbd-loopback; choose denyno or denyrd to share it\)" \
    hold-device --no-wait rw,denywr:"$f"
hold-device --no-wait rw,denyno:"$f"
kill_pid $qpid

hold-device --until-signal async,rw,denywr:"$f" > "$tmp/out" 2>&1 &
holder=$!
cleanup_fn kill_pid $holder
ready () { grep -q '^ready$' "$tmp/out" || ! kill -0 $holder; }
wait_for 30 ready
grep -q '^ready$' "$tmp/out" || { cat "$tmp/out"; fail "hold-device did not start"; }
expect_fail_with 'Failed to get "write" lock' \
    qemu-nbd --fork --pid-file="$tmp/qemu-nbd.pid" -k "$tmp/sock" -f raw -t "$f"
kill_pid $holder
start_qemu_nbd
kill_pid $qpid
