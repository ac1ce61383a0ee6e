# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-tls.sh, test-vm-plugin-tls.sh), sourced
# with $frontend set: the kernel client attaches an export served with
# --tls=require and X.509 certificates (nbd-client -certfile -keyfile
# -cacertfile -tlshostname), makes and checks ext4 (guest-tls.sh); an
# attach without TLS is refused.  The host file then holds the guest's
# files.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
make_pki "$tmp/pki"
img="$tmp/disk.img"
truncate -s 64M "$img"
vm_files=("$tmp/pki/ca-cert.pem" "$tmp/pki/client-cert.pem" "$tmp/pki/client-key.pem")
vm_server_opts=(--tls=require --tls-certificates="$tmp/pki")

vm_start_server "$frontend" loopback fd="$img" blk cache=16m
vm_run guest-tls.sh EXPECT_SIZE=$(( 64 * 1024 * 1024 ))
stop_frontend
grep -v -E 'NBD_CMD_(READ|WRITE)|pread|pwrite' "$tmp/server.log" | tail -40
vm_log_require "TLS sessions" 'TLS established' 'using TLS on this connection'
vm_log_disc_count 1
vm_check_image "$img"
