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

# The same file named twice (by its path, or through a link) is refused
# with a message naming both exports, not a lock "another process"
# holds; the file is untouched.
ln -s "$tmp/disk.img" "$tmp/link.img"
cp "$tmp/disk.img" "$tmp/disk.before"
for second in "$tmp/disk.img" "$tmp/link.img"; do
    run_frontend "$frontend" true loopback fd="$tmp/disk.img",fd="$second" \
        > "$tmp/twice.out" 2>&1 &&
        fail "the same file named twice was accepted"
    cat "$tmp/twice.out"
    grep -F "lo1: $second: cannot open: it is the same file as lo0 ($tmp/disk.img), named twice: give each file one fd=" "$tmp/twice.out"
    grep -F "another process" "$tmp/twice.out" &&
        fail "the message blames another process"
    grep -F "error: warning" "$tmp/twice.out" &&
        fail "a warning printed as an error"
done
cmp "$tmp/disk.img" "$tmp/disk.before"

# Warnings print as warnings (the plugin has no warning level of its
# own in nbdkit).
printf '%010000d' 0 > "$tmp/odd.img"
run_frontend "$frontend" true loopback blksz=4096,fd="$tmp/odd.img" \
    > "$tmp/warn.out" 2>&1
cat "$tmp/warn.out"
grep -E "^nbd(kit|-loopback):( loopback:)? warning: lo0: $tmp/odd.img: size 10000 is not a multiple" "$tmp/warn.out" ||
    grep -F "not a multiple of blksz=4096" "$tmp/warn.out" ||
    fail "no warning about the size"
if grep -F "error: warning" "$tmp/warn.out"; then
    fail "a warning printed as an error"
fi
