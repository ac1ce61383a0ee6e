# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-multiconn.sh, test-vm-plugin-multiconn.sh),
# sourced with $frontend set: the kernel client attaches lo0 over four
# connections (nbd-client -C 4) and writes in parallel
# (guest-multiconn.sh).  The server log shows the four connections, all
# closed with NBD_CMD_DISC; the host file holds the guest's files.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
img="$tmp/disk.img"
truncate -s 64M "$img"

vm_start_server "$frontend" loopback fd="$img" blk cache=16m
vm_smp=2 vm_run guest-multiconn.sh
stop_frontend

if [ "$frontend" = daemon ]; then
    n=$(vm_log_count "accepted from $vm_guest_addr")
else
    n=$(vm_log_count 'debug: accepted connection')
fi
echo "vm: server log: $n connections accepted"
test "$n" -eq 4 || fail "$n connections accepted, expected 4"
vm_log_disc_count 4
vm_log_has_flush
vm_check_image "$img"
