# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-{daemon,plugin}-qemu-img.sh and their test-newest-*
# twins): qemu-img info, convert in and out, compare and map over NBD
# agree with the host file: a sparse 6 GiB file with data at 5 MiB and
# at 5 GiB (past 32 bits).
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires qemu-img --version
requires jq --version
make_tmpdir
export tmp
truncate -s 6G "$tmp/src.img"
head -c 3M /dev/urandom | dd of="$tmp/src.img" bs=1M seek=5 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$tmp/src.img" bs=1M seek=5120 conv=notrunc status=none
truncate -s 6G "$tmp/disk.img"

run_frontend "$frontend" '
    qemu-img info "$uri" > "$tmp/info" &&
    qemu-img convert -n -f raw -O raw "$tmp/src.img" "$uri" &&
    qemu-img compare -f raw -F raw "$tmp/src.img" "$uri" &&
    qemu-img map -f raw --output=json "$uri" > "$tmp/map.json" &&
    qemu-img convert -f raw -O qcow2 "$uri" "$tmp/out.qcow2"' \
    loopback fd="$tmp/disk.img" blk cache=16m
cat "$tmp/info" "$tmp/map.json"
grep -q 'virtual size: 6 GiB' "$tmp/info"

# The host file is the source (compared by qemu-img, which skips the
# holes of both files: cmp would read 12 GiB of zeroes); the qcow2 read
# back through NBD too.
test "$(stat -c %s "$tmp/disk.img")" = 6442450944
qemu-img compare -f raw -F raw "$tmp/src.img" "$tmp/disk.img"
cmp -n 3M -i 5M:5M "$tmp/src.img" "$tmp/disk.img"
cmp -n 1M -i 5G:5G "$tmp/src.img" "$tmp/disk.img"
qemu-img compare -f raw -F qcow2 "$tmp/src.img" "$tmp/out.qcow2"

# qemu-img map over NBD: data exactly where the host file has it, and
# where the source has data.
data ()
{
    jq -r '.[] | select(.data) | "\(.start) \(.start + .length)"' "$1" |
        awk '{ if (started && $1 == pe) { pe = $2; next }
               if (started) printf "%.0f %.0f\n", ps, pe; ps = $1; pe = $2; started = 1 }
             END { if (started) printf "%.0f %.0f\n", ps, pe }'
}
qemu-img map -f raw --output=json "$tmp/disk.img" > "$tmp/host-map.json"
data "$tmp/map.json" > "$tmp/nbd-data"
data "$tmp/host-map.json" > "$tmp/host-data"
cat "$tmp/nbd-data"
diff "$tmp/host-data" "$tmp/nbd-data"
# (A zero request that starts or ends inside a cache block writes that
# part as data, so there may be small data extents besides.)
grep -qx '5242880 8388608' "$tmp/nbd-data"
grep -qx '5368709120 5369757696' "$tmp/nbd-data"
