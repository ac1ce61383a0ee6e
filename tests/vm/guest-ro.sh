# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-ro.sh: a read-only export (ro,fd=).  The kernel
# makes /dev/nbd0 read-only; the file system mounts read-only and reads
# back; a direct write fails, also after blockdev --setrw (the kernel
# keeps the disk read-only that NBD_FLAG_READ_ONLY made it, so the
# write never reaches the server: host-ro.sh checks its log).

attach -N lo0
ro=$(cat /sys/block/nbd0/ro)
test "$ro" = 1 || fail "/sys/block/nbd0/ro is '$ro'"
mkdir -p /mnt/fs
mount -t ext4 -o ro,noload /dev/nbd0 /mnt/fs || fail "mount -o ro"
got=$(sha256sum /mnt/fs/data | cut -d' ' -f1)
test "$got" = "$EXPECT_SUM" || fail "/data: sha256 $got, expected $EXPECT_SUM"
umount_fs
echo 3 > /proc/sys/vm/drop_caches
step "write to the read-only device"
head -c 4096 /dev/urandom > /tmp/block
dd if=/tmp/block of=/dev/nbd0 bs=4096 seek=100 oflag=direct conv=notrunc status=none &&
    fail "a write to the read-only /dev/nbd0 succeeded"
blockdev --setrw /dev/nbd0 || fail "blockdev --setrw"
dd if=/tmp/block of=/dev/nbd0 bs=4096 seek=100 oflag=direct conv=notrunc,fsync status=none &&
    fail "a write after blockdev --setrw succeeded"
dmesg | grep -i 'nbd0' | tail -3
detach
