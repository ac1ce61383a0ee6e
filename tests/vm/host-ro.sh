# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-ro.sh, test-vm-plugin-ro.sh), sourced
# with $frontend set: the kernel client on a read-only export
# (guest-ro.sh): read-only device, ext4 mounted read-only reads back
# a file the host put there, writes get errors (from the kernel: no
# write reaches the server), and the host file is unchanged, byte for
# byte.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
img="$tmp/ro.img"
truncate -s 32M "$img"
mkfs.ext4 -q -F "$img"
head -c 777777 /dev/urandom > "$tmp/data"
debugfs -w -R "write $tmp/data data" "$img"
before=$(sha256sum < "$img")

vm_start_server "$frontend" loopback ro,fd="$img"
vm_run guest-ro.sh EXPECT_SUM="$(sha256sum < "$tmp/data" | cut -d' ' -f1)"
stop_frontend
n=$(vm_log_count 'NBD_CMD_WRITE|debug: loopback: pwrite')
test "$n" -eq 0 || fail "$n writes reached the server"
test "$(sha256sum < "$img")" = "$before" || fail "the read-only export's file changed"
