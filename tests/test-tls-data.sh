#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Data written over TLS reads back identically over TLS (X.509 and
# PSK, several connections, requests large and small) and is in the
# host file once the server has stopped.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdcopy -x -k writer 32M
head -c 32M /dev/urandom > "$tmp/data"

start_server_unix --loops=2 --tls=require --tls-certificates="$tmp/pki" \
    --tls-psk="$tmp/keys.psk" loopback fd="$tmp/disk.img"
# Large requests, four connections, over X.509.
nbdcopy --request-size=4194304 "$tmp/data" "$(nbd_tls_uri "$tmp/pki")"
nbdcopy "$(nbd_tls_uri "$tmp/pki")" "$tmp/back1"
cmp "$tmp/data" "$tmp/back1"
# Small requests, one connection, over PSK: a new pattern in the middle.
head -c 1M /dev/urandom > "$tmp/patch"
dd if="$tmp/patch" of="$tmp/data" bs=1M seek=5 conv=notrunc status=none
nbdcopy --connections=1 --request-size=4096 --flush "$tmp/data" \
    "$(nbd_psk_uri "$tmp/keys.psk" writer)"
nbdcopy --connections=1 --request-size=65536 \
    "$(nbd_psk_uri "$tmp/keys.psk" writer)" "$tmp/back2"
cmp "$tmp/data" "$tmp/back2"
stop_server
cmp "$tmp/data" "$tmp/disk.img"
