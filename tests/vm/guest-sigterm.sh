# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-sigterm.sh: the server stopped with SIGTERM while
# the kernel client is attached and writing.  A writer puts 64 KiB
# chunks at consecutive offsets of lo0 with direct I/O and no flush
# (chunk i holds 64 KiB number i % 16 of /vmtest/data) and counts the
# ones the server acknowledged.  After 32 of them the guest asks the
# host to SIGTERM the server.  Requests must then fail with I/O errors
# (not hang); the writer stops at its first error.  The guest reports "VMTEST: ACKED N", the number
# of chunks acknowledged, and the host checks its file holds each one.

attach -N lo0 -t "$NBD_TIMEOUT"
: > /tmp/acked
(
    i=0
    while [ $i -lt "$CHUNKS" ]; do
        dd if=/vmtest/data of=/dev/nbd0 bs=65536 count=1 skip=$(( i % 16 )) seek=$i \
            oflag=direct status=none 2>/dev/null || exit 0
        echo $i >> /tmp/acked
        i=$((i + 1))
    done
) &
wpid=$!
n=0
until [ "$(wc -l < /tmp/acked)" -ge 32 ]; do
    n=$((n + 1))
    [ "$n" -lt 600 ] || fail "32 chunks were not written within 60 s"
    sleep 0.1
done
dmesg -c >/dev/null
host_request sigterm-server
# The daemon closes the connection: the kernel sees it as it receives
# or sends, and from then on requests fail.  nbdkit keeps it open and
# fails each request.  Either way the writer meets an I/O error.
n=0
until dmesg | grep -q -E 'Receive control failed|Send (data|control) failed|Dead connection' ||
      ! kill -0 "$wpid" 2>/dev/null; do
    n=$((n + 1))
    [ "$n" -lt 300 ] || fail "no I/O error and no closed connection within 30 s of the SIGTERM"
    sleep 0.1
done
dd if=/dev/nbd0 of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null &&
    fail "a read succeeded after the server stopped"
step "I/O error $(( n / 10 )) s after asking for the SIGTERM"
# Whatever is still in flight fails at detach; the writer then stops.
detach
wait "$wpid" || :
acked=$(wc -l < /tmp/acked)
[ "$acked" -lt "$CHUNKS" ] || fail "the writer finished all $CHUNKS chunks before the server stopped"
say "ACKED $acked"
