#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# STARTTLS starts afresh (CVE-2021-3716): structured replies and meta
# contexts negotiated in the clear are forgotten (extended headers
# too), a second STARTTLS
# is refused, options over TLS are never NBD_REP_ERR_TLS_REQD; bytes
# sent in the clear behind STARTTLS close the connection.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -x 16M

start_server_unix --tls=require --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
# With require, structured replies cannot even be asked for in the
# clear; with on they can, and must not survive.
./client-tls-raw "$sock" starttls-early
grep -q 'data after NBD_OPT_STARTTLS before the TLS handshake: closing' \
    "$tmp/server.log"
./client-tls-raw "$sock" tls
stop_server

start_server_unix --tls=on --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
./client-tls-raw "$sock" reset
./client-tls-raw "$sock" reset-extended
stop_server
