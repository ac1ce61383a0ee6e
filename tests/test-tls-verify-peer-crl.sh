#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --tls-verify-peer honours ca-crl.pem: a client certificate the CA
# revoked is refused, another one from the same CA is accepted.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -x 16M
mkdir "$tmp/revoked"
cp "$tmp/pki/ca-cert.pem" "$tmp/revoked/"
make_cert "$tmp/pki" "$tmp/revoked" client client
printf 'crl_next_update = 7\ncrl_number = 1\n' > "$tmp/crl.info"
certtool --generate-crl --load-ca-privkey "$tmp/pki/ca-key.pem" \
    --load-ca-certificate "$tmp/pki/ca-cert.pem" \
    --load-certificate "$tmp/revoked/client-cert.pem" \
    --template "$tmp/crl.info" --outfile "$tmp/pki/ca-crl.pem" 2>/dev/null

start_server_unix --tls=require --tls-certificates="$tmp/pki" \
    --tls-verify-peer loopback fd="$tmp/disk.img"
expect_fail_with 'TLS|handshake|gnutls' nbdinfo --size "$(nbd_tls_uri "$tmp/revoked")"
# The client can see the alert before the server has logged why.
wait_for 10 grep -q \
    'TLS handshake failed: certificate verify failed (certificate revoked): closing' \
    "$tmp/server.log"
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
stop_server
