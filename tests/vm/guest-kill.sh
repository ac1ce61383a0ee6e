# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-kill.sh: the server killed (SIGKILL) while the
# kernel client is using it, $KILL_ROUNDS times in one boot.  Each
# round writes one more file with fsync, starts a writer of one of
# three kinds (buffered writes, fsynced writes, direct writes) so that
# different requests are in flight, and asks the host to kill the
# server (it restarts it at once).  Once the kernel sees the
# connection close, the device must fail with I/O errors rather than
# hang (nbd-client 3.24 does not reconnect); the device is detached,
# the file system unmounted, the device attached to the new server, e2fsck -fp replays the journal, and every file fsynced so
# far is intact.  The file system stays mounted into the next round.
#
# What the kernel does with a dead connection: new requests fail at
# once ("Dead connection, failed to find a fallback"); a request in
# flight when it died is completed only by the -t timeout (without one
# it is never completed: the kernel only warns "Possible stuck
# request") or by detaching, which fails all of them at once.

: > /tmp/sums
attach -N lo0 -t "$NBD_TIMEOUT"
# FUA is advertised unless commit=none (then the kernel flushes around
# what it would have written with FUA).
fua=$(cat /sys/block/nbd0/queue/fua)
test "$fua" = "$EXPECT_FUA" || fail "fua is $fua, expected $EXPECT_FUA"
mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4"
head -c 1048576 /dev/urandom > /tmp/junk
mount_fs
r=1
while [ "$r" -le "$KILL_ROUNDS" ]; do
    write_file /mnt/fs/k$r $(( r * 7919 + 4321 ))
    (cd /mnt/fs && sha256sum k$r) >> /tmp/sums
    # A writer still at work when the server dies (at most 16 MiB).
    kind=$(( r % 3 ))
    (
        i=0
        while [ $i -lt 16 ]; do
            case $kind in
            0) cat /tmp/junk > /mnt/fs/junk.$i ;;
            1) dd if=/tmp/junk of=/mnt/fs/junk.$i bs=65536 conv=fsync status=none ;;
            2) dd if=/tmp/junk of=/mnt/fs/junk.$i bs=65536 oflag=direct status=none ;;
            esac || exit 0
            i=$((i + 1))
        done
    ) 2>/dev/null &
    wpid=$!
    dmesg -c >/dev/null
    host_request kill-server
    # The kernel sees the connection close, as it receives ("Receive
    # control failed") or sends ("Send data failed"); from then on a
    # request fails at once.  (A request sent before
    # that, into the dying connection, would only fail after the -t
    # timeout.)
    n=0
    until dmesg | grep -q -E 'Receive control failed|Send (data|control) failed|Dead connection'; do
        n=$((n + 1))
        [ "$n" -lt 300 ] || fail "round $r: the connection did not close within 30 s of asking for the kill"
        sleep 0.1
    done
    dd if=/dev/nbd0 of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null &&
        fail "round $r: a read succeeded after the server was killed"
    t=$(( n / 10 ))
    # Detaching fails what is still in flight at once; then the writer
    # ends, and the file system on the dead device is unmounted (with
    # errors).
    detach
    wait "$wpid" || :
    umount /mnt/fs 2>/dev/null || umount -f /mnt/fs 2>/dev/null || fail "round $r: umount after the kill"
    # The host has restarted the server: attach it again (bounded).
    n=0
    until nbd-client "$VM_SERVER" "$VM_PORT" /dev/nbd0 -N lo0 -t "$NBD_TIMEOUT" >/dev/null 2>&1; do
        n=$((n + 1))
        [ "$n" -lt 200 ] || fail "round $r: cannot attach the restarted server"
        sleep 0.1
    done
    rc=0
    e2fsck -fp /dev/nbd0 >/tmp/fsck.out 2>&1 || rc=$?
    if [ "$rc" -gt 1 ]; then
        cat /tmp/fsck.out
        fail "round $r: e2fsck -fp exited $rc"
    fi
    mount_fs
    rm -f /mnt/fs/junk.*
    (cd /mnt/fs && sha256sum -c /tmp/sums >/tmp/check.out 2>&1) || {
        cat /tmp/check.out
        fail "round $r: a file fsynced before the kill is not intact"
    }
    step "round $r (writer $kind): I/O error after $t s, e2fsck status $rc, $r fsynced files intact"
    r=$((r + 1))
done
cp /tmp/sums /mnt/fs/SUMS
sync
umount_fs
e2fsck -fn /dev/nbd0 || fail "e2fsck -fn at the end"
detach
