# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-ext4.sh, test-daemon-ext4.sh): a Linux file
# system on the export.  qemu-storage-daemon connects to lo0 and
# exports it as a file over FUSE, a loop device sits on that file,
# mkfs.ext4 makes a file system, files are copied in, and after umount
# fsck.ext4 finds it clean.  After the server has stopped, the host
# file passes fsck.ext4 too, and a new server (new qemu-storage-daemon,
# read-only) still has the files.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires_root
requires qemu-storage-daemon --version
requires losetup --version
requires mkfs.ext4 -V
requires fsck.ext4 -V
test -c /dev/fuse || skip "no /dev/fuse"
make_tmpdir
f="$tmp/disk.img"
fuse="$tmp/fuse.img"
mnt="$tmp/mnt"
truncate -s 64M "$f"
mkdir "$mnt"
touch "$fuse"

# At exit, undo what is still there, innermost first: the mount, the
# loop device, qemu-storage-daemon (registered after the server, so
# this runs before the server is stopped).  Only our own mounts and
# loop devices are touched: $loop is emptied once detached.
loop=
umount_ours () { if findmnt -M "$1" >/dev/null; then umount "$1"; fi; }
detach_loop () { if [ -n "$loop" ]; then losetup -d "$loop"; loop=; fi; }
teardown_qsd ()
{
    umount_ours "$mnt"
    detach_loop
    kill_pid "$1"
    umount_ours "$fuse"
}

# start_qsd [read-only=on]: export lo0 of the running server as the
# file $fuse, over FUSE.
start_qsd ()
{
    local ro=${1:-read-only=off} writable=on
    test "$ro" = read-only=off || writable=off
    rm -f "$tmp/qsd.pid"
    qemu-storage-daemon --pidfile "$tmp/qsd.pid" \
        --blockdev driver=nbd,server.type=unix,server.path="$frontend_sock",export=lo0,node-name=n,$ro \
        --export type=fuse,id=e,node-name=n,mountpoint="$fuse",writable=$writable &
    qsd_pid=$!
    cleanup_fn teardown_qsd $qsd_pid
    wait_for 30 qsd_ready
}
qsd_ready ()
{
    kill -0 $qsd_pid || fail "qemu-storage-daemon exited"
    test -s "$tmp/qsd.pid" && findmnt -M "$fuse" >/dev/null
}
stop_qsd ()
{
    kill_pid $qsd_pid
    if findmnt -M "$fuse"; then
        fail "qemu-storage-daemon left $fuse mounted"
    fi
}

# Skip (rather than fail) if qemu-storage-daemon cannot export over
# FUSE here at all: try it on a plain file first.
truncate -s 1M "$tmp/probe.img"
touch "$tmp/probe.fuse"
qemu-storage-daemon --pidfile "$tmp/probe.pid" \
    --blockdev driver=file,filename="$tmp/probe.img",node-name=p \
    --export type=fuse,id=p,node-name=p,mountpoint="$tmp/probe.fuse" &
probe_pid=$!
cleanup_fn umount_ours "$tmp/probe.fuse"
cleanup_fn kill_pid $probe_pid
for (( i = 0; i < 300; ++i )); do
    test -s "$tmp/probe.pid" && break
    kill -0 $probe_pid 2>/dev/null ||
        skip "qemu-storage-daemon cannot export over FUSE here"
    sleep 0.1
done
kill_pid $probe_pid

# Files to copy in: random data of a few sizes, and a small tree.
mkdir -p "$tmp/files/dir/sub"
head -c 5M /dev/urandom > "$tmp/files/five-mib"
head -c 123457 /dev/urandom > "$tmp/files/odd-size"
for i in $(seq 1 50); do echo "file $i" > "$tmp/files/dir/sub/f$i"; done

start_frontend "$frontend" "$tmp/server.pid" "$tmp/server.sock" \
    loopback fd="$f" blk cache=16m
start_qsd
loop=$(losetup -f --show "$fuse")
mkfs.ext4 -q "$loop"
mount "$loop" "$mnt"
cp -a "$tmp/files/." "$mnt/"
umount "$mnt"
fsck.ext4 -fn "$loop"
detach_loop
stop_qsd
stop_frontend

# The host file alone holds a clean file system.
fsck.ext4 -fn "$f"

# A new server, read-only this time, still has the files.
start_frontend "$frontend" "$tmp/server2.pid" "$tmp/server2.sock" \
    loopback ro,fd="$f"
start_qsd read-only=on
loop=$(losetup -r -f --show "$fuse")
mount -o ro,noload "$loop" "$mnt"
diff -r -x lost+found "$tmp/files" "$mnt"
umount "$mnt"
detach_loop
stop_qsd
stop_frontend
