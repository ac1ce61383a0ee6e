#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The nbdkit plugin under valgrind memcheck: nbdkit loads it, a client
# writes (plain, FUA, unaligned), zeroes, trims, flushes and reads back
# through it, and nbdkit exits at the end of --run, writing everything
# back.  An invalid access or use of uninitialised memory makes
# valgrind exit 99.  Leaks are not counted here; the
# test-plugin-valgrind-*.sh tests count the plugin's (with nbdkit's
# own in tests/valgrind.supp), the daemon's memcheck test the shared
# code's.  Skipped in the ASan build and without valgrind.
source ./functions.sh
set -e
set -x

requires_frontend plugin
requires valgrind --version
requires client-frontend-io --help
if [ -n "$(plugin_asan_runtime)" ]; then
    skip "valgrind cannot run the ASan build; it runs in the normal build"
fi
make_tmpdir
f="$tmp/disk.img"
truncate -s 8M "$f"

export f
valgrind --quiet --error-exitcode=99 --leak-check=no --track-origins=yes \
    --log-file="$tmp/valgrind.log" \
    nbdkit -f -U - --run '
        client-frontend-io "nbd+unix:///lo0?socket=$unixsocket" \
            write 0 64k 0x11 \
            write-fua 100000 5000 0x22 \
            zero 1M 64k \
            trim 2M 64k \
            flush \
            read 0 64k 0x11 \
            read 100000 5000 0x22 \
            read 1M 64k 0 \
            write 3M 256k 0x33' \
    "$loopback_plugin" loopback=async,fd="$f" blk=cache=1m,ramdisk=1m ||
    { cat "$tmp/valgrind.log"; fail "nbdkit with the plugin under valgrind failed"; }
cat "$tmp/valgrind.log"
# Written back at exit.
cmp <(head -c 256k /dev/zero | tr '\0' '\063') \
    <(dd if="$f" bs=256k skip=12 count=1 status=none)
echo "figures: memcheck: nbdkit with the plugin under valgrind, no errors"
