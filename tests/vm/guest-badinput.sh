# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-badinput.sh: what a kernel client can do wrong,
# with no network: the server's exports lo0 and lo1 reach the guest
# through the virtio-serial ports nbd0 and nbd1 (socat joins each to a
# Unix socket for nbd-client -unix).
#  1. nbd0 is detached while its file system is mounted: the detach
#     works, the device then fails with I/O errors, and nbd1 is served
#     on (a file written and read back with fsync).
#  2. The host starts a second server on lo1's file, which this server
#     holds with denyrw: it must be refused; nbd1 is served on.
#  3. The guest vanishes: with a writer busy on nbd1 it asks the host
#     to SIGKILL QEMU.  Everything the guest checks has passed by then,
#     so it says so first; the host checks the rest.

bridge ()
{
    local name=$1 p port=
    for p in /sys/class/virtio-ports/*; do
        [ "$(cat "$p/name" 2>/dev/null)" = "$name" ] && port=$(basename "$p")
    done
    [ -n "$port" ] && [ -c "/dev/$port" ] || fail "no virtio-serial port named $name"
    socat UNIX-LISTEN:/tmp/$name.sock "OPEN:/dev/$port" &
    n=0
    until [ -S /tmp/$name.sock ]; do
        n=$((n + 1))
        [ "$n" -lt 100 ] || fail "socat did not listen on /tmp/$name.sock within 10 s"
        sleep 0.1
    done
    nbd-client -unix /tmp/$name.sock /dev/$name -N "$2" -t 600 ||
        fail "nbd-client -unix /tmp/$name.sock /dev/$name -N $2"
}
bridge nbd0 lo0
bridge nbd1 lo1
mkdir -p /mnt/a /mnt/b
for d in nbd0 nbd1; do
    mkfs.ext4 -q -F /dev/$d || fail "mkfs.ext4 /dev/$d"
done
mount -t ext4 -o noinit_itable /dev/nbd0 /mnt/a || fail "mount nbd0"
mount -t ext4 -o noinit_itable /dev/nbd1 /mnt/b || fail "mount nbd1"
write_file /mnt/a/a1 300000
write_file /mnt/b/b1 300000
(cd /mnt/a && sha256sum a1) > /tmp/a.sums
(cd /mnt/b && sha256sum b1) > /tmp/b.sums
# The host compares lo0's file with this line.
cat /tmp/a.sums

step "1: detach nbd0 with its file system mounted"
nbd-client -d /dev/nbd0 || fail "nbd-client -d /dev/nbd0 with a mounted file system"
dd if=/dev/nbd0 of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null &&
    fail "nbd0 still reads after the detach"
umount /mnt/a 2>/dev/null || umount -l /mnt/a || fail "umount /mnt/a after the detach"
write_file /mnt/b/b2 200000
(cd /mnt/b && sha256sum b2) >> /tmp/b.sums
echo 3 > /proc/sys/vm/drop_caches
(cd /mnt/b && sha256sum -c /tmp/b.sums) || fail "nbd1 after nbd0's detach"

step "2: a second server on lo1's file"
host_request second-server
# The host checks the refusal; nbd1 is written and read on meanwhile.
write_file /mnt/b/b3 100000
(cd /mnt/b && sha256sum b3) >> /tmp/b.sums
echo 3 > /proc/sys/vm/drop_caches
(cd /mnt/b && sha256sum -c /tmp/b.sums) || fail "nbd1 after the second server"
cp /tmp/b.sums /mnt/b/SUMS
sync

step "3: vanish while writing to nbd1"
write_until_killed /mnt/b/junk 4096
