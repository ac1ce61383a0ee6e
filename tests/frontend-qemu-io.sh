# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-qemu-io.sh, test-daemon-qemu-io.sh): qemu-io
# writes patterns, zeroes and discards, aligned and at odd offsets and
# lengths, over a file filled with 0x55; a second qemu-io (another
# connection) reads every range back, and once the server has exited
# the same reads pass on the host file.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires qemu-io --version
make_tmpdir
export tmp
head -c 4M /dev/zero | tr '\0' '\125' > "$tmp/disk.img"

# What is written, in order.
cat > "$tmp/writes" <<'CMDS'
write -P 0xab 0 64k
write -P 0xcd 1000 3000
write -P 0xef 65535 2
write -z 128k 64k
write -z 200001 999
discard 256k 64k
write -P 0x77 1M 1M
write -P 0x99 3145721 14
CMDS

# Every byte of the 4 MiB export, as it must read afterwards.
cat > "$tmp/reads" <<'CMDS'
read -P 0xab 0 1000
read -P 0xcd 1000 3000
read -P 0xab 4000 61535
read -P 0xef 65535 2
read -P 0x55 65537 65535
read -P 0 131072 65536
read -P 0x55 196608 3393
read -P 0 200001 999
read -P 0x55 201000 61144
read -P 0 262144 65536
read -P 0x55 327680 720896
read -P 0x77 1M 1M
read -P 0x55 2M 1048569
read -P 0x99 3145721 14
read -P 0x55 3145735 1048569
CMDS

run_frontend "$frontend" '
    lo0="nbd+unix:///lo0?socket=$unixsocket"
    qemu-io -f raw "$lo0" < "$tmp/writes" &&
    qemu-io -f raw -r "$lo0" < "$tmp/reads"' \
    loopback blksz=512,fd="$tmp/disk.img" blk cache=1m,delwri=60

qemu-io -f raw -r "$tmp/disk.img" < "$tmp/reads"
test "$(stat -c %s "$tmp/disk.img")" -eq 4194304
