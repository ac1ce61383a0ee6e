# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-blksz.sh, test-vm-plugin-blksz.sh), sourced
# with $frontend set: exports with blksz=512, 2048 and 4096.  The kernel
# client (guest-blksz.sh) attached with nbd-client -b and the block size
# --dump-config says has that logical block size (without -b, nbd-client
# 3.24 always makes 512-byte sectors), and ext4 made on each passes
# e2fsck in the guest and on the host, with the guest's file in it.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
args=()
for b in 512 2048 4096; do
    truncate -s 32M "$tmp/b$b.img"
    args+=("blksz=$b,fd=$tmp/b$b.img")
done
opts=$(IFS=,; echo "${args[*]}")
nbd-loopback --dump-config loopback "$opts" > "$tmp/config"

vm_start_server "$frontend" loopback "$opts"
vm_run guest-blksz.sh \
    BLKSZ0=$(sed -n 's/^lo0\.blksz=//p' "$tmp/config") \
    BLKSZ1=$(sed -n 's/^lo1\.blksz=//p' "$tmp/config") \
    BLKSZ2=$(sed -n 's/^lo2\.blksz=//p' "$tmp/config")
stop_frontend

i=0
for b in 512 2048 4096; do
    want=$(sed -n "s/^lo$i\.blksz=//p" "$tmp/config")
    got=$(tr -d '\r' < "$vm_console" | sed -n "s/^VMTEST: LBS lo$i //p")
    echo "vm: lo$i: --dump-config blksz=$want, guest logical_block_size $got"
    test "$want" = "$b" || fail "--dump-config says lo$i.blksz=$want, given $b"
    test "$got" = "$want" || fail "lo$i: the guest's logical block size is '$got', --dump-config says $want"
    vm_check_image "$tmp/b$b.img"
    i=$(( i + 1 ))
done
