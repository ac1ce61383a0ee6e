#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A wrong pre-shared key fails the TLS handshake (and so does an
# unknown user); the server logs why, and the right key still works.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -k alice 16M
make_psk "$tmp/other.psk" alice
make_psk "$tmp/mallory.psk" mallory
cmp -s "$tmp/keys.psk" "$tmp/other.psk" && fail "psktool made the same key twice"

start_server_unix --tls=require --tls-psk="$tmp/keys.psk" \
    loopback fd="$tmp/disk.img"
expect_fail_with 'TLS|handshake' nbdinfo --size "$(nbd_psk_uri "$tmp/other.psk" alice)"
wait_for 10 grep -q 'TLS handshake failed: binder does not verify: closing' "$tmp/server.log"
expect_fail_with 'TLS|handshake' nbdinfo --size "$(nbd_psk_uri "$tmp/mallory.psk" mallory)"
wait_for 10 grep -q "TLS handshake failed: unknown PSK user 'mallory'" "$tmp/server.log"
test "$(nbdinfo --size "$(nbd_psk_uri "$tmp/keys.psk" alice)")" = 16777216
stop_server
