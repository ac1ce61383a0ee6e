# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-kill.sh: the server killed (SIGKILL) while the
# kernel client is using it, $KILL_ROUNDS times in one boot.  Each
# round: attach lo0, mount, write one more file with fsync, start a
# writer, ask the host to kill the server (it restarts it at once),
# and see the device fail with I/O errors rather than hang (nbd-client
# 3.24 does not reconnect); unmount, detach, attach the new server,
# e2fsck -fp (journal replay), and every file fsynced so far is intact.
#
# nbd-client -t: without a timeout, a request in flight when the
# connection dies is never completed (the kernel only warns "Possible
# stuck request" and resets its timer); new requests fail at once
# ("Dead connection, failed to find a fallback").  With -t the stuck
# ones fail too once the timeout passes.

: > /tmp/sums
attach -N lo0 -t "$NBD_TIMEOUT"
# FUA is advertised unless commit=none (then the kernel flushes around
# what it would have written with FUA).
fua=$(cat /sys/block/nbd0/queue/fua)
test "$fua" = "$EXPECT_FUA" || fail "fua is $fua, expected $EXPECT_FUA"
mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4"
r=1
while [ "$r" -le "$KILL_ROUNDS" ]; do
    mount_fs
    write_file /mnt/fs/k$r $(( r * 98765 + 4321 ))
    (cd /mnt/fs && sha256sum k$r) >> /tmp/sums
    # A writer still at work when the server dies (at most 32 MiB).
    (
        i=0
        while [ $i -lt 32 ]; do
            head -c 1048576 /dev/urandom > /mnt/fs/junk.$i || exit 0
            i=$((i + 1))
        done
    ) 2>/dev/null &
    wpid=$!
    host_request kill-server
    # Direct reads until one fails: bounded, the kill is the host's
    # next step.  A read in flight at the kill fails after the timeout.
    n=0 t0=$(cut -d. -f1 /proc/uptime)
    while dd if=/dev/nbd0 of=/dev/null bs=4096 count=1 skip=$n iflag=direct status=none 2>/dev/null; do
        n=$((n + 1))
        [ "$n" -lt 300 ] || fail "round $r: no I/O error 30 s after asking for the kill"
        sleep 0.1
    done
    t=$(( $(cut -d. -f1 /proc/uptime) - t0 ))
    [ "$t" -le $(( NBD_TIMEOUT + 35 )) ] ||
        fail "round $r: the I/O error came only after $t s"
    step "round $r: I/O error after $n good reads, $t s"
    wait "$wpid" || :
    # Unmounting a file system on a dead device: it goes, with errors.
    umount /mnt/fs 2>/dev/null || umount -f /mnt/fs 2>/dev/null || fail "round $r: umount after the kill"
    detach
    # The host has restarted the server: attach it again (bounded).
    n=0
    until nbd-client "$VM_SERVER" "$VM_PORT" /dev/nbd0 -N lo0 -t "$NBD_TIMEOUT" >/dev/null 2>&1; do
        n=$((n + 1))
        [ "$n" -lt 100 ] || fail "round $r: cannot attach the restarted server"
        sleep 0.2
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
    umount_fs
    step "round $r: e2fsck status $rc, $r fsynced files intact"
    r=$((r + 1))
done
mount_fs
cp /tmp/sums /mnt/fs/SUMS
sync
umount_fs
e2fsck -fn /dev/nbd0 || fail "e2fsck -fn at the end"
detach
