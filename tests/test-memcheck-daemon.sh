#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A subset of the protocol tests with the daemon under valgrind
# memcheck: every libnbd mode of client-libnbd that does not kill the
# server (options, flags, reads and writes, flush, trim, zero, cache,
# bounds, bad flags, 64 requests in flight, block status, sparse reads),
# the malformed handshakes and requests of client-raw, and a SIGTERM
# with data to write back.  Any invalid access, use of uninitialised
# memory, or definite/indirect leak makes valgrind exit 99, and the
# test fail.  Skipped in the ASan build (valgrind cannot run ASan
# binaries) and without valgrind.
source ./functions.sh
set -e
set -x

requires_frontend daemon
requires valgrind --version
test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
real=$(command -v nbd-loopback)
if ldd "$real" | grep -q libasan; then
    skip "valgrind cannot run the ASan build; it runs in the normal build"
fi
make_tmpdir

# start_server runs "nbd-loopback": this function takes its place, so
# the server (same PID, same pidfile) runs under valgrind.
nbd-loopback ()
{
    exec valgrind --quiet --error-exitcode=99 --leak-check=full \
        --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect \
        --track-origins=yes --log-file="$tmp/valgrind.%p" \
        "$real" "$@"
}
start_fixture_server

for mode in opt-list opt-info opt-meta no-structured flags-rw \
            read-write flush-trim-zero-cache bounds bad-flags inflight \
            block-status sparse-read export-name; do
    ./client-libnbd "$sock" $mode
done
for mode in garbage-magic garbage-handshake unknown-client-flags \
            unknown-option long-option list-with-data unknown-export-name \
            vanish-handshake vanish-request; do
    ./client-raw "$sock" $mode
done
# Something dirty for the shutdown to write back.
client-frontend-io "$(nbd_uri lo0)" write 1M 64k 0x3c
stop_server || { cat "$tmp"/valgrind.*; exit 1; }
cat "$tmp"/valgrind.* 2>/dev/null
cmp -n 64k <(head -c 64k /dev/zero | tr '\0' '\074') \
    <(dd if="$tmp/lo0.img" bs=64k skip=16 count=1 status=none)
echo "figures: memcheck: the daemon ran $(ls "$tmp"/valgrind.* | wc -l)" \
     "process(es) under valgrind, no errors, no leaks"
