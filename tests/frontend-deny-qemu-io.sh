# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-deny-qemu-io.sh, test-daemon-deny-qemu-io.sh):
# while the server holds the file, qemu-io (which takes QEMU's image
# locks) cannot open it for writing under denyrw (the default) or
# denywr (read-write or read-only export), and can under denyno
# (read-write or read-only export); its write then reaches the file.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires qemu-io --version
make_tmpdir
export f="$tmp/disk.img"
truncate -s 1M "$f"
qemu_write='qemu-io -f raw -c "write -P $byte 0 512" "$f"'
export byte=0x5a

expect_fail_with 'Failed to get "consistent read" lock' \
    run_frontend "$frontend" "$qemu_write" loopback fd="$f"
expect_fail_with 'Failed to get "write" lock' \
    run_frontend "$frontend" "$qemu_write" loopback denywr,fd="$f"
expect_fail_with 'Failed to get "write" lock' \
    run_frontend "$frontend" "$qemu_write" loopback ro,denywr,fd="$f"
qemu-io -f raw -r -c 'read -P 0 0 512' "$f"

run_frontend "$frontend" "$qemu_write" loopback denyno,fd="$f"
qemu-io -f raw -r -c 'read -P 0x5a 0 512' "$f"
byte=0x6b run_frontend "$frontend" "$qemu_write" loopback ro,denyno,fd="$f"
qemu-io -f raw -r -c 'read -P 0x6b 0 512' "$f"
