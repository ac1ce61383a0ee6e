#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# PSK with qemu-img: qemu's tls-creds-psk (which wants the file named
# keys.psk in its directory) connects to --tls=require and copies the
# export out.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c qemu-img 16M
mkdir "$tmp/psk"
make_psk "$tmp/psk/keys.psk" qemu
printf 'qemu over PSK' | dd of="$tmp/disk.img" bs=512 seek=9 conv=notrunc status=none
creds="tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/psk,username=qemu"

start_server_unix --tls=require --tls-psk="$tmp/psk/keys.psk" \
    loopback fd="$tmp/disk.img"
qemu-img info --object "$creds" --image-opts \
    "driver=nbd,path=$sock,export=lo0,tls-creds=tls0" > "$tmp/info"
cat "$tmp/info"
grep -q 'virtual size: 16 MiB' "$tmp/info"
qemu-img convert -O raw --object "$creds" --image-opts \
    "driver=nbd,path=$sock,export=lo0,tls-creds=tls0" "$tmp/copy.img"
cmp "$tmp/disk.img" "$tmp/copy.img"
stop_server
