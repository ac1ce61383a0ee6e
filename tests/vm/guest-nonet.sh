# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-nonet.sh: no network at all.  The host's server is
# at the other end of the virtio-serial port named "nbd"; socat joins
# that port to a Unix socket here, and nbd-client -unix attaches it
# (one connection: the port carries one).  Then ext4 is made, files
# written with fsync, unmounted, caches dropped, e2fsck, remounted and
# compared, and the device detached.

ip link show eth0 >/dev/null 2>&1 && fail "the guest has a network device"
port=
for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = nbd ] && port=$(basename "$p")
done
[ -n "$port" ] && [ -c "/dev/$port" ] || fail "no virtio-serial port named nbd"
step "socat between /dev/$port and /tmp/nbd.sock"
socat UNIX-LISTEN:/tmp/nbd.sock "OPEN:/dev/$port" &
spid=$!
n=0
until [ -S /tmp/nbd.sock ]; do
    n=$((n + 1))
    [ "$n" -lt 100 ] || fail "socat did not listen on /tmp/nbd.sock within 10 s"
    sleep 0.1
done
nbd-client -unix /tmp/nbd.sock /dev/nbd0 -N lo0 -t 600 ||
    fail "nbd-client -unix /tmp/nbd.sock /dev/nbd0 -N lo0"
size=$(blockdev --getsize64 /dev/nbd0)
test "$size" = "$EXPECT_SIZE" || fail "size $size, expected $EXPECT_SIZE"
mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4"
mount_fs
i=0
for n in 1 4097 65536 300000 1048576; do
    i=$((i + 1))
    write_file "/mnt/fs/f$i" "$n"
done
(cd /mnt/fs && sha256sum f*) > /tmp/sums
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
# socat ends when the kernel client closes its side.
n=0
while kill -0 "$spid" 2>/dev/null; do
    n=$((n + 1))
    [ "$n" -lt 100 ] || fail "socat still runs 10 s after the detach"
    sleep 0.1
done
