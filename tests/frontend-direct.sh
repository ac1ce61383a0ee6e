# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-direct.sh, test-daemon-direct.sh): the
# loopback option direct.  The server holds the host file open with
# O_DIRECT as well (seen in /proc/PID/fdinfo); reading the whole export
# through a cache smaller than it, and writing to it, leaves none of
# the file in the kernel's page cache (fincore), where nodirect fills
# the page cache with all of it; the data is right through the export
# and in the host file, for aligned, unaligned and tail writes and in
# seek mode.  On a file system without O_DIRECT (ramfs) the server says
# so and serves through the page cache.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires nbdcopy --version
requires qemu-io --version
requires fincore --version
# The page cache of tmpfs is the file itself: the file must be on a
# disk file system, so it goes in the build tree.
tmp=$(mktemp -d "$abs_builddir/direct.XXXXXXXX")
cleanup_fn rm -rf "$tmp"
cleanup_fn 'cat "$tmp/log" >&2 || :'
f="$tmp/disk.img"
head -c 24M /dev/urandom > "$tmp/data"
# 24 MiB and a partial 4 KiB block at the end (two sectors): the
# tail, partial blocks and unaligned writes are transferred by sectors,
# which O_DIRECT takes on a disk of 512-byte sectors; on a disk of
# 4 KiB sectors they go through the page cache: at most 8 KiB here.
head -c 1024 /dev/urandom >> "$tmp/data"

# resident FILE: bytes of FILE in the page cache.
resident () { fincore -b -n -o RES "$1" | tr -d ' '; }
# evict FILE: write it out and drop it from the page cache.
evict ()
{
    sync "$1"
    dd if="$1" iflag=nocache count=0 status=none
    test "$(resident "$1")" -eq 0 ||
        skip "the page cache keeps $(resident "$1") bytes of $1 after POSIX_FADV_DONTNEED"
}
# has_o_direct PID FILE: PID holds FILE open with O_DIRECT.
has_o_direct ()
{
    local fd flags
    for fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$fd")" = "$(readlink -f "$2")" ] || continue
        flags=$(awk '/^flags:/ { print $2 }' /proc/"$1"/fdinfo/"${fd##*/}")
        (( 8#$flags & 8#40000 )) && return 0
    done
    return 1
}

# serve MODES: start the front end on $f with loopback MODES.
serve ()
{
    start_frontend "$frontend" "$tmp/pid" "$tmp/sock" \
        loopback "$1,fd=$f" blk cache=4m,delwri=60 2>>"$tmp/log"
    uri=$(frontend_uri lo0)
}

cp "$tmp/data" "$f"
evict "$f"
serve direct
if grep -q "does not support O_DIRECT" "$tmp/log"; then
    skip "$abs_builddir is on a file system without O_DIRECT"
fi
has_o_direct "$frontend_pid" "$f" ||
    fail "the server does not hold $f open with O_DIRECT"
nbdcopy "$uri" "$tmp/out"
cmp "$tmp/data" "$tmp/out"
# Everything was read around the page cache (see above for 8192).
test "$(resident "$f")" -le 8192 ||
    fail "direct: $(resident "$f") bytes of $f in the page cache after a read"
# Aligned, unaligned and tail writes, a zero, then FLUSH: in the file,
# still not in the page cache.
qemu-io -f raw "$uri" \
    -c "write -P 0x11 1M 2M" \
    -c "write -P 0x22 5000 3000" \
    -c "write -P 0x33 $(( 24 * 1024 * 1024 + 100 )) 900" \
    -c "write -z 8M 64k" \
    -c flush > /dev/null
test "$(resident "$f")" -le 8192 ||
    fail "direct: $(resident "$f") bytes of $f in the page cache after writes"
stop_frontend
qemu-io -f raw "$tmp/data" \
    -c "write -P 0x11 1M 2M" \
    -c "write -P 0x22 5000 3000" \
    -c "write -P 0x33 $(( 24 * 1024 * 1024 + 100 )) 900" \
    -c "write -z 8M 64k" > /dev/null
cmp "$tmp/data" "$f"

# nodirect (the default): the same read fills the page cache, so the
# checks above can tell the difference.
evict "$f"
serve nodirect
has_o_direct "$frontend_pid" "$f" &&
    fail "nodirect: the server holds $f open with O_DIRECT"
nbdcopy "$uri" "$tmp/out"
cmp "$tmp/data" "$tmp/out"
test "$(resident "$f")" -ge $(( 20 * 1024 * 1024 )) ||
    fail "nodirect: only $(resident "$f") bytes of $f in the page cache"
stop_frontend

# Seek mode with direct: lseek on whichever descriptor moves the bytes.
evict "$f"
serve seek,direct
qemu-io -f raw "$uri" -c "write -P 0x44 12k 40k" -c "read -P 0x44 12k 40k" \
    -c flush > /dev/null
nbdcopy "$uri" "$tmp/out"
stop_frontend
qemu-io -f raw "$tmp/data" -c "write -P 0x44 12k 40k" > /dev/null
cmp "$tmp/data" "$tmp/out"
cmp "$tmp/data" "$f"

# A file system without O_DIRECT: ramfs (as root).
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: not root: the ramfs case is not run"
    exit 0
fi
mkdir "$tmp/ramfs"
mount -t ramfs none "$tmp/ramfs" ||
    { echo "$0: cannot mount ramfs: the fallback case is not run"; exit 0; }
cleanup_fn umount "$tmp/ramfs"
f="$tmp/ramfs/disk.img"
head -c 1M "$tmp/data" > "$f"
serve direct
qemu-io -f raw "$uri" -c "write -P 0x55 4k 64k" -c flush > /dev/null
stop_frontend
grep "lo0: $f: direct: the file system does not support O_DIRECT" \
    "$tmp/log" || fail "no log line saying O_DIRECT is not supported"
qemu-io -f raw "$tmp/data" -c "write -P 0x55 4k 64k" > /dev/null
cmp <(head -c 1M "$tmp/data") "$f"
