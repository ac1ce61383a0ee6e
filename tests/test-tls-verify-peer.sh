#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --tls-verify-peer: a client certificate signed by the CA is
# accepted (libnbd and qemu); a client without one, or with one from
# another CA, fails the handshake, the server says why and serves on.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -x 16M
# No client certificate: just the CA, to check the server.
mkdir "$tmp/anon"
cp "$tmp/pki/ca-cert.pem" "$tmp/anon/"
# A client certificate from a CA the server does not trust.
make_ca "$tmp/foreign-ca" "foreign CA"
mkdir "$tmp/foreign"
cp "$tmp/pki/ca-cert.pem" "$tmp/foreign/"
make_cert "$tmp/foreign-ca" "$tmp/foreign" client client

start_server_unix -v --tls=require --tls-certificates="$tmp/pki" \
    --tls-verify-peer loopback fd="$tmp/disk.img"
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
grep -q 'TLS established: .*client .*CN=client' "$tmp/server.log"

expect_fail_with 'TLS|handshake|gnutls' nbdinfo --size "$(nbd_tls_uri "$tmp/anon")"
grep -q 'TLS handshake failed: peer did not return a certificate: closing' \
    "$tmp/server.log"

# GnuTLS does not offer a certificate the server's CA list does not
# name; client-tls-raw offers it anyway, so the server judges it.
expect_fail_with 'TLS|handshake|gnutls' nbdinfo --size "$(nbd_tls_uri "$tmp/foreign")"
test "$(grep -c 'peer did not return a certificate' "$tmp/server.log")" -eq 2
expect_fail_with 'alert|closed|Broken pipe|reset' ./client-tls-raw -c "$tmp/foreign" "$sock" tls
grep -q 'TLS handshake failed: certificate verify failed (unable to get local issuer certificate): closing' \
    "$tmp/server.log"
./client-tls-raw -c "$tmp/pki" "$sock" tls

if qemu-img --version >/dev/null 2>&1; then
    qemu-img info --object "tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/pki" \
        --image-opts "driver=nbd,path=$sock,export=lo0,tls-creds=tls0,tls-hostname=localhost" |
        grep -q 'virtual size: 16 MiB'
fi
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
stop_server
