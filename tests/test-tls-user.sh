#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# user=: certificates, the private key and the PSK file are read as
# root before the daemon becomes that user, so they can stay readable
# by root only; TLS (X.509 and PSK) still works afterwards, and the
# daemon has no file open on them.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

requires_root
requires nbdinfo --version
id nobody >/dev/null 2>&1 || skip "no user 'nobody'"
uid=$(id -u nobody)
tls_setup -x 16M
make_psk "$tmp/pki/keys.psk" alice
chmod 600 "$tmp/pki"/*
chmod 700 "$tmp/pki"
# The socket's directory must be reachable for nobody's clients too.
chmod 755 "$tmp"

start_server_unix --tls=require --tls-certificates="$tmp/pki" \
    --tls-psk="$tmp/pki/keys.psk" loopback user=nobody,fd="$tmp/disk.img"
grep -E "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid$" /proc/$server_pid/status
if ls -l /proc/$server_pid/fd | grep -q "$tmp/pki"; then
    fail "the server still holds a file of the PKI directory open"
fi
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
test "$(nbdinfo --size "$(nbd_psk_uri "$tmp/pki/keys.psk" alice)")" = 16777216
stop_server
