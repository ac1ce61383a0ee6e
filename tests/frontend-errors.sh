# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-errors.sh, test-daemon-errors.sh): errors
# reach the client as NBD errors and the connection goes on.  Writes,
# zeroes and trims to a ro export get EPERM and leave the file alone;
# a read past the end gets EINVAL, a write past the end ENOSPC (what
# the NBD protocol asks for).  The libnbd client's own checks are off,
# so the server is what refuses.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires client-frontend-io --help
make_tmpdir
export tmp
head -c 1M /dev/zero | tr '\0' '\125' > "$tmp/cd.iso"
truncate -s 1M "$tmp/disk.img"

run_frontend "$frontend" '
    client-frontend-io "nbd+unix:///lo0?socket=$unixsocket" \
        expect EPERM write 0 512 0xab \
        expect EPERM write-fua 4096 4096 0xab \
        expect EPERM zero 0 64k \
        expect EPERM trim 0 64k \
        read 0 64k 0x55 \
        expect EINVAL read 1M 512 0 \
        expect EINVAL read 1047552 2048 0 \
        read 1047552 1024 0x55 &&
    client-frontend-io "nbd+unix:///lo1?socket=$unixsocket" \
        expect ENOSPC write 1M 512 0xab \
        expect ENOSPC write 1047552 2048 0xab \
        expect EINVAL read 1048575 2 0 \
        write 1047552 1024 0xcd \
        read 1047552 1024 0xcd' \
    loopback ro,fd="$tmp/cd.iso",rw,fd="$tmp/disk.img"

cmp "$tmp/cd.iso" <(head -c 1M /dev/zero | tr '\0' '\125')
test "$(stat -c %s "$tmp/disk.img")" -eq 1048576
cmp <(head -c 1047552 "$tmp/disk.img") <(head -c 1047552 /dev/zero)
cmp <(tail -c 1024 "$tmp/disk.img") <(head -c 1024 /dev/zero | tr '\0' '\315')
