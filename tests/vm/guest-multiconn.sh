# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-multiconn.sh: attach lo0 over 4 connections
# (nbd-client -C 4; the kernel spreads requests over the sockets), make
# ext4, write 4 files in parallel with fsync, remount after dropping
# caches and compare, detach (NBD_CMD_DISC on every socket).

step "attach with -C 4"
attach -N lo0 -C 4
mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4"
mount_fs
pids=
for i in 1 2 3 4; do
    write_file /mnt/fs/p$i 2000000 &
    pids="$pids $!"
done
for p in $pids; do
    wait "$p" || fail "a parallel writer failed"
done
# One more round, now with direct I/O beside the file system's.
for i in 1 2 3 4; do
    head -c 1000000 /dev/urandom > /tmp/d$i
    dd if=/tmp/d$i of=/mnt/fs/d$i bs=1M oflag=direct conv=fsync status=none &
    pids="$pids $!"
done
for p in $pids; do
    wait "$p" 2>/dev/null || :
done
for i in 1 2 3 4; do
    cmp /tmp/d$i /mnt/fs/d$i || fail "d$i differs right after writing"
done
(cd /mnt/fs && sha256sum p? d?) > /tmp/sums
cp /tmp/sums /mnt/fs/SUMS
step "written"
umount_fs
echo 3 > /proc/sys/vm/drop_caches
e2fsck -fn /dev/nbd0 || fail "e2fsck -fn"
mount_fs
(cd /mnt/fs && sha256sum -c /tmp/sums) || fail "checksums after remount"
umount_fs
step "detach"
detach
