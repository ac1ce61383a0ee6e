# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-nonet.sh, test-vm-plugin-nonet.sh),
# sourced with $frontend set: the kernel client with no network at all,
# so no root is needed.  The server listens on a Unix socket; QEMU
# connects a virtio-serial port to it (-chardev socket); in the guest
# socat joins the port to a Unix socket that nbd-client -unix attaches
# (guest-nonet.sh).  One connection, closed with NBD_CMD_DISC; the
# host file then holds the guest's files.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup nonet
img="$tmp/disk.img"
truncate -s 64M "$img"
sock="$tmp/nbd.sock"
# The server greets QEMU's connection at once and the guest answers
# only after booting: give the daemon's handshake time for that.
[ "$frontend" = daemon ] && vm_server_opts=(--timeout 600)

vm_unix_socket=$sock vm_start_server "$frontend" loopback fd="$img" blk cache=16m
vm_cpio=("$vm_imgdir/socat.cpio.gz")
vm_qemu_args=(
    -device virtio-serial-pci,romfile=
    -chardev "socket,id=nbd,path=$sock"
    -device virtserialport,chardev=nbd,name=nbd
)
vm_run guest-nonet.sh EXPECT_SIZE=$(( 64 * 1024 * 1024 ))
stop_frontend
grep -v -E 'NBD_CMD_(READ|WRITE)|pread|pwrite' "$tmp/server.log" | tail -30
vm_log_has_flush
vm_log_disc_count 1
vm_check_image "$img"
