# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-blksz.sh: lo0, lo1, lo2 (blksz=512, 2048, 4096)
# attached as /dev/nbd0-2.  nbd-client 3.24 does not take the block
# size from the server: without -b every device has 512-byte sectors
# (the server then reads, modifies and writes its blocks).  With -b and
# the size --dump-config gives (BLKSZ0-2 from the host), the device's
# logical block size is printed for the host to compare; each gets ext4
# (mkfs picks a block size the device allows), a file, a clean e2fsck.

for i in 0 1 2; do
    nbd-client "$VM_SERVER" "$VM_PORT" /dev/nbd$i -N lo$i ||
        fail "nbd-client lo$i /dev/nbd$i"
    lbs=$(cat /sys/block/nbd$i/queue/logical_block_size)
    step "lo$i without -b: logical_block_size $lbs"
    test "$lbs" = 512 || fail "lo$i without -b: logical_block_size $lbs (nbd-client 3.24 uses 512)"
    nbd-client -d /dev/nbd$i || fail "nbd-client -d /dev/nbd$i"
    eval b=\$BLKSZ$i
    nbd-client "$VM_SERVER" "$VM_PORT" /dev/nbd$i -N lo$i -b "$b" ||
        fail "nbd-client lo$i /dev/nbd$i -b $b"
    lbs=$(cat /sys/block/nbd$i/queue/logical_block_size)
    pbs=$(cat /sys/block/nbd$i/queue/physical_block_size)
    echo "VMTEST: LBS lo$i $lbs"
    step "lo$i: logical_block_size $lbs, physical_block_size $pbs"
    mkfs.ext4 -q -F /dev/nbd$i || fail "mkfs.ext4 on lo$i"
    mkdir -p /mnt/$i
    mount -t ext4 -o noinit_itable /dev/nbd$i /mnt/$i || fail "mount lo$i"
    write_file /mnt/$i/data 123457
    (cd /mnt/$i && sha256sum data) > /mnt/$i/SUMS
    umount /mnt/$i || fail "umount lo$i"
    e2fsck -fn /dev/nbd$i || fail "e2fsck lo$i"
    nbd-client -d /dev/nbd$i || fail "nbd-client -d /dev/nbd$i"
done
