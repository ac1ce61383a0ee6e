# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-ext4.sh, test-vm-plugin-ext4.sh), sourced
# with $frontend set: the Linux kernel client in a VM attaches lo0 over
# TCP, makes ext4, writes files with fsync, unmounts, drops its caches,
# runs e2fsck, remounts and compares checksums, and detaches
# (guest-ext4.sh).  The server saw flushes, FUA writes and the
# client's NBD_CMD_DISC; after it stops, the host file passes e2fsck
# and debugfs reads back files with the checksums the guest computed.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
img="$tmp/disk.img"
truncate -s 64M "$img"

vm_start_server "$frontend" loopback fd="$img" blk cache=16m
vm_run guest-ext4.sh EXPECT_SIZE=$(( 64 * 1024 * 1024 ))
stop_frontend
cat "$tmp/server.log" | grep -v -E 'NBD_CMD_(READ|WRITE)|pread|pwrite' | tail -40

# What the kernel client sent, as the server logged it.
vm_log_has_flush
vm_log_has_fua_write
vm_log_disc_count 1

# The host file alone: a clean file system holding the guest's files.
vm_check_image "$img"
