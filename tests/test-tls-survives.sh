#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# After each refused or broken TLS client the daemon logs why, drops
# that connection alone and still serves everyone else: a plaintext
# client against --tls=require, a client that rejects the server's
# certificate, bytes behind STARTTLS, each kind of broken handshake,
# and a TLS client killed in the middle of a transfer.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -c nbdcopy -c qemu-img -x 64M
make_ca "$tmp/other" "another CA"

start_server_unix -v --tls=require --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
good () { test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 67108864; }
good

if nbdinfo --size "$(nbd_uri)"; then
    fail "nbdinfo without TLS was served by a --tls=require server"
fi
good
# The client does not trust our CA and hangs up after the handshake.
# (libnbd checks no certificate over a Unix socket, qemu does.)
if qemu-img info --object "tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/other" \
    --image-opts "driver=nbd,path=$sock,export=lo0,tls-creds=tls0,tls-hostname=localhost"
then
    fail "qemu-img trusted a certificate from another CA"
fi
good
./client-tls-raw "$sock" starttls-early
good
# Random bytes, cut ClientHellos, garbage after STARTTLS, EOF mid-way.
./client-tls-fuzz "$sock" 12
good

# A client killed while it writes over TLS.
mkfifo "$tmp/fifo"
nbdcopy --connections=1 - "$(nbd_tls_uri "$tmp/pki")" < "$tmp/fifo" &
copier=$!
cleanup_fn kill_pid $copier
exec 7> "$tmp/fifo"
head -c 4M /dev/urandom >&7
established () { test "$(grep -c 'TLS established' "$tmp/server.log")" -ge 5; }
wait_for 30 established
kill -KILL $copier
wait $copier || :
exec 7>&-
good
kill -0 "$server_pid"
stop_server
