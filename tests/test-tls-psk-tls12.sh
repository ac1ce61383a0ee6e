#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# PSK over TLS 1.2: a GnuTLS client limited to TLS 1.2 (qemu's
# priority=; qemu adds its PSK key exchanges) gets a PSK cipher suite.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c qemu-img 16M
mkdir "$tmp/psk"
make_psk "$tmp/psk/keys.psk" qemu

start_server_unix -v --tls=require --tls-psk="$tmp/psk/keys.psk" \
    loopback fd="$tmp/disk.img"
prio="NORMAL:-VERS-ALL:+VERS-TLS1.2"
qemu-img info --object \
    "tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/psk,username=qemu,priority=$prio" \
    --image-opts "driver=nbd,path=$sock,export=lo0,tls-creds=tls0" |
    grep -q 'virtual size: 16 MiB'
grep 'TLS established' "$tmp/server.log"
grep -q 'TLS established: TLSv1.2, [A-Z0-9-]*PSK[A-Z0-9-]*, PSK user qemu' "$tmp/server.log"
stop_server
