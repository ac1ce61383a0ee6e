# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-trim.sh: discards from the kernel client.
# lo1 raw: 8 MiB of 0xab at 8 MiB (direct I/O), then blkdiscard of the
# 2 MiB at 9 MiB, a flush, detach; the host checks its file.
# lo0 with ext4 (made without discards): a 4 MiB file written, removed,
# then fstrim trims at least its 4 MiB.

step "lo1: write 8 MiB at 8 MiB, discard 2 MiB at 9 MiB"
attach -N lo1
head -c 8388608 /dev/zero | tr '\0' '\253' > /tmp/pattern
dd if=/tmp/pattern of=/dev/nbd0 bs=1M seek=8 oflag=direct conv=fsync status=none ||
    fail "writing the pattern"
blkdiscard -o 9437184 -l 2097152 /dev/nbd0 || fail "blkdiscard"
# What was not discarded reads back unchanged.
dd if=/dev/nbd0 of=/tmp/back bs=1M skip=8 count=1 iflag=direct status=none
head -c 1048576 /tmp/pattern | cmp - /tmp/back || fail "8-9 MiB changed"
dd if=/dev/nbd0 of=/tmp/back bs=1M skip=11 count=5 iflag=direct status=none
head -c 5242880 /tmp/pattern | cmp - /tmp/back || fail "11-16 MiB changed"
sync
detach

step "lo0: ext4, a 4 MiB file removed, fstrim"
attach -N lo0
mkfs.ext4 -q -F -E nodiscard /dev/nbd0 || fail "mkfs.ext4"
mount_fs
write_file /mnt/fs/big 4194304
write_file /mnt/fs/keep 300000
(cd /mnt/fs && sha256sum keep) > /tmp/sums
cp /tmp/sums /mnt/fs/SUMS
rm /mnt/fs/big
sync
out=$(fstrim -v /mnt/fs) || fail "fstrim"
echo "$out"
bytes=$(echo "$out" | sed -n 's/.*(\([0-9]*\) bytes).*/\1/p')
[ -n "$bytes" ] || bytes=$(echo "$out" | sed -n 's/.*: \([0-9]*\) bytes.*/\1/p')
[ -n "$bytes" ] && [ "$bytes" -ge 4194304 ] || fail "fstrim trimmed '$bytes' bytes, expected at least 4 MiB"
umount_fs
detach
