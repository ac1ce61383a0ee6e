#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# PSK with nbdinfo: --tls-psk FILE in psktool's username:hexkey format,
# and libnbd's tls-psk-file connects with the user named in the URI
# (TLS 1.3, external PSK); the file may hold several users.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -k alice -k bob 16M
test "$(wc -l < "$tmp/keys.psk")" -eq 2
grep "^bob:" "$tmp/keys.psk" > "$tmp/bob.psk"

start_server_unix -v --tls=require --tls-psk="$tmp/keys.psk" \
    loopback fd="$tmp/disk.img"
nbdinfo "$(nbd_psk_uri "$tmp/keys.psk" alice)" > "$tmp/out"
cat "$tmp/out"
grep -q 'with TLS' "$tmp/out"
# libnbd 1.22 (test-newest-*) negotiates extended headers after STARTTLS.
if [ "${newest:-}" = yes ]; then
    grep -q 'with TLS, using extended packets' "$tmp/out"
fi
grep -q 'export-size: 16777216' "$tmp/out"
test "$(nbdinfo --size "$(nbd_psk_uri "$tmp/bob.psk" bob)")" = 16777216
grep -q 'TLS established: TLSv1.3, .*PSK user alice' "$tmp/server.log"
grep -q 'TLS established: TLSv1.3, .*PSK user bob' "$tmp/server.log"
stop_server
