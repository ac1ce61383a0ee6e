# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-tls.sh: the kernel client over TLS (nbd-client
# runs the TLS session in a user-space proxy and hands the kernel the
# plain side).  Without credentials the server refuses the attach; with
# the client certificate, its key, the CA and the name in the server's
# certificate it attaches lo0, makes ext4, writes files with fsync,
# unmounts, drops caches, e2fsck, remounts and compares, and detaches.

tls="-certfile /vmtest/client-cert.pem -keyfile /vmtest/client-key.pem -cacertfile /vmtest/ca-cert.pem -tlshostname localhost"
step "attach without TLS: refused"
nbd-client "$VM_SERVER" "$VM_PORT" /dev/nbd0 -N lo0 -t 600 &&
    fail "nbd-client attached without TLS to a server that requires it"
step "attach with TLS"
attach -N lo0 $tls
size=$(blockdev --getsize64 /dev/nbd0)
test "$size" = "$EXPECT_SIZE" || fail "size $size, expected $EXPECT_SIZE"
mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4"
mount_fs
mkdir /mnt/fs/dir
i=0
for n in 1 4097 65536 300000 1048576; do
    i=$((i + 1))
    write_file "/mnt/fs/dir/f$i" "$n"
done
(cd /mnt/fs && sha256sum dir/*) > /tmp/sums
cp /tmp/sums /mnt/fs/SUMS
sync
umount_fs
echo 3 > /proc/sys/vm/drop_caches
e2fsck -fn /dev/nbd0 || fail "e2fsck -fn on the device"
mount_fs
(cd /mnt/fs && sha256sum -c /tmp/sums) || fail "checksums after remount"
umount_fs
step "detach"
detach
