#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# qemu-img info, convert (in and out) and compare over NBD.
source ./functions.sh
set -e
set -x

requires qemu-img --version
make_tmpdir
truncate -s 32M "$tmp/src.img"
head -c 3M /dev/urandom | dd of="$tmp/src.img" bs=1M seek=5 conv=notrunc status=none
truncate -s 32M "$tmp/disk.img"
start_server_unix loopback fd="$tmp/disk.img"
uri="$(nbd_uri lo0)"

qemu-img info "$uri" | tee "$tmp/info"
grep -q 'virtual size: 32 MiB' "$tmp/info"
qemu-img convert -n -f raw -O raw "$tmp/src.img" "$uri"
qemu-img compare -f raw -F raw "$tmp/src.img" "$uri"
qemu-img convert -f raw -O qcow2 "$uri" "$tmp/out.qcow2"
qemu-img compare -f raw -F qcow2 "$tmp/src.img" "$tmp/out.qcow2"
stop_server
cmp "$tmp/src.img" "$tmp/disk.img"
