# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-drive.sh: two virtio disks that QEMU's own NBD
# driver serves from our exports, /dev/vda over a Unix socket and
# /dev/vdb over TCP.  On each: ext4 made, files written with fsync,
# their checksums in /SUMS, unmounted, e2fsck -fn clean, remounted and
# compared after dropping caches.

mkdir -p /mnt/fs
for dev in vda vdb; do
    step "/dev/$dev"
    test -b /dev/$dev || fail "no /dev/$dev"
    size=$(blockdev --getsize64 /dev/$dev)
    test "$size" = "$EXPECT_SIZE" || fail "/dev/$dev: size $size, expected $EXPECT_SIZE"
    mkfs.ext4 -q -F /dev/$dev || fail "mkfs.ext4 /dev/$dev"
    mount -t ext4 -o noinit_itable /dev/$dev /mnt/fs || fail "mount /dev/$dev"
    i=0
    for n in 1 4097 65536 300000 1048576; do
        i=$((i + 1))
        write_file "/mnt/fs/$dev-f$i" "$n"
    done
    (cd /mnt/fs && sha256sum $dev-f*) > /tmp/sums
    cp /tmp/sums /mnt/fs/SUMS
    sync
    umount /mnt/fs || fail "umount /dev/$dev"
    echo 3 > /proc/sys/vm/drop_caches
    e2fsck -fn /dev/$dev || fail "e2fsck -fn /dev/$dev"
    mount -t ext4 -o ro,noinit_itable /dev/$dev /mnt/fs || fail "remount /dev/$dev"
    (cd /mnt/fs && sha256sum -c /tmp/sums) || fail "/dev/$dev: checksums after remount"
    umount /mnt/fs || fail "umount /dev/$dev after the check"
done
