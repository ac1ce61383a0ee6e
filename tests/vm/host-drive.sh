# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-drive.sh, test-vm-plugin-drive.sh),
# sourced with $frontend set: QEMU's own NBD block driver gives the
# guest its data disks, literally
#   -drive file=nbd+unix:///lo0?socket=SOCKET,format=raw,if=virtio
#   -drive file=nbd://10.213.0.1:10809/lo0,format=raw,if=virtio
# from two servers (one on a Unix socket, one on TCP in the test's
# network namespace).  The guest makes ext4 on each and writes with
# fsync (guest-drive.sh); the servers saw flushes, and after they stop
# each host file passes e2fsck and holds the guest's files.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
truncate -s 64M "$tmp/unix.img" "$tmp/tcp.img"
sock="$tmp/nbd.sock"

vm_unix_socket=$sock vm_start_server "$frontend" loopback fd="$tmp/unix.img" blk cache=16m
unix_pid=$frontend_pid
vm_start_server "$frontend" loopback fd="$tmp/tcp.img" blk cache=16m
tcp_pid=$frontend_pid
vm_qemu_args=(
    -drive "file=nbd+unix:///lo0?socket=$sock,format=raw,if=virtio"
    -drive "file=nbd://$vm_server_addr:$vm_port/lo0,format=raw,if=virtio"
)
vm_run guest-drive.sh EXPECT_SIZE=$(( 64 * 1024 * 1024 ))
for frontend_pid in "$unix_pid" "$tcp_pid"; do
    stop_frontend
done
grep -v -E 'NBD_CMD_(READ|WRITE)|pread|pwrite' "$tmp/server.log" | tail -40
vm_log_has_flush
vm_log_disc_count 2
vm_check_image "$tmp/unix.img"
vm_check_image "$tmp/tcp.img"
