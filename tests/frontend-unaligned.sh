# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-unaligned.sh, test-daemon-unaligned.sh):
# on an export with blksz=4096, writes, FUA writes, zeroes and trims at
# offsets and lengths that are not multiples of the block size are
# served (read-modify-write in the cache) without touching the bytes
# around them.  A libnbd client with its own checks off sends them as
# they are (qemu would align them itself); a second connection reads
# every range back, and after the server exits the host file agrees.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires client-frontend-io --help
requires qemu-io --version
make_tmpdir
export tmp
head -c 1M /dev/zero | tr '\0' '\125' > "$tmp/disk.img"

writes=(
    write 1 1 0xa1
    write 4095 2 0xa2
    write 5000 10000 0xa3
    zero 20000 5000
    trim 40000 100
    write-fua 65537 3 0xa4
    write 1048575 1 0xa5
)
# OFFSET LENGTH BYTE: the whole export afterwards, except the trimmed
# 100 bytes, whose contents NBD leaves undefined.
expect=(
    0 1 0x55
    1 1 0xa1
    2 4093 0x55
    4095 2 0xa2
    4097 903 0x55
    5000 10000 0xa3
    15000 5000 0x55
    20000 5000 0
    25000 15000 0x55
    40100 25437 0x55
    65537 3 0xa4
    65540 983035 0x55
    1048575 1 0xa5
)
reads=() qemu_reads=
for (( i = 0; i < ${#expect[@]}; i += 3 )); do
    reads+=(read "${expect[i]}" "${expect[i+1]}" "${expect[i+2]}")
    qemu_reads+="read -P ${expect[i+2]} ${expect[i]} ${expect[i+1]}"$'\n'
done
echo "$qemu_reads" > "$tmp/reads"
echo "${writes[*]}" > "$tmp/writes.args"
echo "${reads[*]}" > "$tmp/reads.args"

run_frontend "$frontend" '
    lo0="nbd+unix:///lo0?socket=$unixsocket"
    client-frontend-io "$lo0" $(cat "$tmp/writes.args") &&
    client-frontend-io "$lo0" $(cat "$tmp/reads.args")' \
    loopback blksz=4096,fd="$tmp/disk.img" blk cache=1m,delwri=60

qemu-io -f raw -r "$tmp/disk.img" < "$tmp/reads"
