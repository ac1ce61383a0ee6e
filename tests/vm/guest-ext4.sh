# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-ext4.sh (sourced by /init with set -e; busybox sh).
# Attach lo0 with the kernel client, check what the kernel took from the
# handshake, make ext4, write files with fsync, unmount, drop caches,
# e2fsck, remount and compare checksums, detach.

step "attach $VM_SERVER:$VM_PORT lo0"
nbd-client "$VM_SERVER" "$VM_PORT" /dev/nbd0 -N lo0 || fail "nbd-client attach"
size=$(blockdev --getsize64 /dev/nbd0)
test "$size" = "$EXPECT_SIZE" || fail "size $size, expected $EXPECT_SIZE"
# SEND_FLUSH and SEND_FUA: a write-back cache that honours FUA.
wc=$(cat /sys/block/nbd0/queue/write_cache)
test "$wc" = "write back" || fail "write_cache is '$wc'"
fua=$(cat /sys/block/nbd0/queue/fua)
test "$fua" = 1 || fail "fua is '$fua'"
# SEND_TRIM: discard is on.
dmax=$(cat /sys/block/nbd0/queue/discard_max_bytes)
test "$dmax" -gt 0 || fail "discard_max_bytes is $dmax"
step "size $size, write_cache '$wc', fua $fua, discard_max_bytes $dmax, max_sectors_kb $(cat /sys/block/nbd0/queue/max_sectors_kb)"

mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4"
mkdir -p /mnt/fs
mount -t ext4 -o noinit_itable /dev/nbd0 /mnt/fs || fail "mount"
mkdir /mnt/fs/dir
i=0
for n in 1 4097 65536 1000000 2097152; do
    i=$((i + 1))
    head -c "$n" /dev/urandom | dd of="/mnt/fs/dir/f$i" bs=65536 conv=fsync status=none ||
        fail "writing f$i"
done
(cd /mnt/fs && sha256sum dir/*) > /tmp/sums
cp /tmp/sums /mnt/fs/SUMS
sync /mnt/fs/SUMS 2>/dev/null || sync
step "files written"
cat /tmp/sums
umount /mnt/fs || fail "umount"
echo 3 > /proc/sys/vm/drop_caches
e2fsck -fn /dev/nbd0 || fail "e2fsck -fn on the device"
mount -t ext4 -o noinit_itable /dev/nbd0 /mnt/fs || fail "remount"
(cd /mnt/fs && sha256sum -c /tmp/sums) || fail "checksums after remount"
umount /mnt/fs || fail "umount after verify"
step "detach"
nbd-client -d /dev/nbd0 || fail "nbd-client -d"
