#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Two nbd-loopback holders in different processes: rw,denyrw keeps a
# second rw holder out (and says which permission is not shared);
# denyno holders coexist; a holder killed with SIGKILL leaves no lock
# behind.
source ./functions.sh
set -e
set -x

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

start_holder async,rw,denyrw:"$f"
first=$holder
expect_fail_with "lo0: $f: cannot open: another process does not share the \"consistent read\" permission" \
    hold-device --no-wait rw,denyno:"$f"
expect_fail_with "another process does not share the \"consistent read\" permission" \
    hold-device --no-wait ro,denyno:"$f"

# Killed outright, the holder's locks go with it.
kill -9 $first
wait $first || :
test "$(hold-device locks "$f")" = ""
hold-device --no-wait rw,denyrw:"$f"

start_holder async,rw,denyno:"$f"
start_holder async,rw,denyno:"$f"
hold-device --no-wait ro,denyno:"$f"
expect_fail_with "another process holds the \"write\" permission \(it is in use, e.g. by qemu or another nbd-loopback; choose denyno or denyrd to share it\)" \
    hold-device --no-wait ro,denywr:"$f"
