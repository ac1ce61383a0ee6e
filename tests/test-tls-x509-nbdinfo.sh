#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# X.509 with nbdinfo: --tls-certificates DIR in nbdkit's layout, and
# libnbd (GnuTLS) negotiates TLS, checking the server's certificate
# against the CA, over a Unix socket and over TCP (127.0.0.1).
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -x 16M

# Credentials alone turn TLS on (clients choose).
start_server_unix --tls-certificates="$tmp/pki" loopback fd="$tmp/disk.img"
nbdinfo "$(nbd_tls_uri "$tmp/pki")" > "$tmp/out"
cat "$tmp/out"
grep -q 'with TLS' "$tmp/out"
# libnbd 1.22 (test-newest-*) negotiates extended headers after STARTTLS.
if [ "${newest:-}" = yes ]; then
    grep -q 'with TLS, using extended packets' "$tmp/out"
fi
grep -q 'export-size: 16777216' "$tmp/out"
# ... and a plaintext client is still served in this mode.
nbdinfo "$(nbd_uri)" | grep -q 'without TLS'
stop_server

start_server_tcp --tls=require --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
test "$(nbdinfo --size "nbds://127.0.0.1:$port/?tls-certificates=$tmp/pki")" \
    = 16777216
test "$(nbdinfo --size "nbds://localhost:$port/?tls-certificates=$tmp/pki")" \
    = 16777216
stop_server
