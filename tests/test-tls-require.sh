#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# --tls=require (the spec's FORCEDTLS): a plaintext client fails with
# the TLS-required error; every option but STARTTLS and ABORT gets
# NBD_REP_ERR_TLS_REQD, NBD_OPT_EXPORT_NAME closes the connection.
# --tls=off (NOTLS): STARTTLS is unsupported and nothing is ever
# NBD_REP_ERR_TLS_REQD.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -x 16M

start_server_unix --tls=require --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
# libnbd says the server requires TLS, and logs the
# server's message (debug): both must be there.
LIBNBD_DEBUG=1 expect_fail_with 'server error message: this server requires TLS' \
    nbdinfo --size "$(nbd_uri)"
expect_fail_with 'server requires TLS' nbdinfo --size "$(nbd_uri)"
./client-tls-raw "$sock" require
wait_for 10 grep -q 'NBD_OPT_EXPORT_NAME without TLS (--tls=require): closing' "$tmp/server.log"
# The same server over TLS.
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
stop_server

start_server_unix --tls=off --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
./client-tls-raw "$sock" notls
expect_fail_with 'TLS|not supported' nbdinfo --size "$(nbd_tls_uri "$tmp/pki")"
test "$(nbdinfo --size "$(nbd_uri)")" = 16777216
stop_server
