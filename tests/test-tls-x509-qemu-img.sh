#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# X.509 with qemu-img: qemu's tls-creds-x509 (same directory layout,
# client certificate included) connects to --tls=require, over a Unix
# socket and over TCP, and reads the export.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c qemu-img -x 16M
printf 'qemu over TLS' | dd of="$tmp/disk.img" bs=512 seek=8 conv=notrunc status=none
creds="tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/pki"

start_server_unix --tls=require --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
qemu-img info --object "$creds" --image-opts \
    "driver=nbd,path=$sock,export=lo0,tls-creds=tls0,tls-hostname=localhost" \
    > "$tmp/info"
cat "$tmp/info"
grep -q 'virtual size: 16 MiB' "$tmp/info"
qemu-img convert -O raw --object "$creds" --image-opts \
    "driver=nbd,path=$sock,export=lo0,tls-creds=tls0,tls-hostname=localhost" \
    "$tmp/copy.img"
cmp "$tmp/disk.img" "$tmp/copy.img"
stop_server

start_server_tcp --tls=require --tls-certificates="$tmp/pki" \
    loopback fd="$tmp/disk.img"
qemu-img info --object "$creds" --image-opts \
    "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$port,export=lo0,tls-creds=tls0" \
    | grep -q 'virtual size: 16 MiB'
stop_server
