# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-blocksize.sh, test-daemon-blocksize.sh): a
# regular file has no sectors, so without blksz= it advertises a
# minimum block size of 512 and its st_blksize (at least a 4 KiB cache
# block) as the preferred size.  libnbd, which refuses requests below
# the minimum, then does 512-byte I/O, and so does fio with bs=512;
# an explicit blksz= stays the minimum.  The host file has the data.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires nbdinfo --version
requires jq --version
requires /usr/bin/python3 -c 'import nbd'
make_tmpdir
export tmp
truncate -s 8M "$tmp/disk.img" "$tmp/big.img"
iosize=$(stat -c %o "$tmp/disk.img")
[ "$iosize" -ge 4096 ] || iosize=4096
export iosize

run_frontend "$frontend" '
    nbdinfo --list --json "$uri" > "$tmp/list.json" &&
    /usr/bin/python3 -c "
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.get_block_size(nbd.SIZE_MINIMUM) == 512, h.get_block_size(nbd.SIZE_MINIMUM)
assert h.get_block_size(nbd.SIZE_PREFERRED) == int(sys.argv[2])
h.pwrite(b\"\\xa5\" * 512, 512)
h.pwrite(b\"\\x5a\" * 1024, 3072, nbd.CMD_FLAG_FUA)
assert h.pread(512, 512) == b\"\\xa5\" * 512
assert h.pread(1536, 2560) == b\"\\0\" * 512 + b\"\\x5a\" * 1024
h.flush()
# blksz=4096 is a minimum that libnbd enforces.
g = nbd.NBD()
g.connect_uri(sys.argv[3])
assert g.get_block_size(nbd.SIZE_MINIMUM) == 4096
try:
    g.pread(512, 512)
    sys.exit(\"a 512-byte read below blksz=4096 was sent\")
except nbd.Error as e:
    print(\"refused as expected:\", e)
" "nbd+unix:///lo0?socket=$unixsocket" "$iosize" \
  "nbd+unix:///lo1?socket=$unixsocket"' \
    loopback fd="$tmp/disk.img",blksz=4096,fd="$tmp/big.img" blk cache=1m
cat "$tmp/list.json"
field () {
    jq -r --arg n "$1" ".exports[] | select(.\"export-name\" == \$n) | .\"$2\"" \
        "$tmp/list.json"
}
test "$(field lo0 block_size_minimum)" = 512
test "$(field lo0 block_size_preferred)" = "$iosize"
test "$(field lo1 block_size_minimum)" = 4096

# The host file has what was written, and nothing around it.
cmp -n 512 "$tmp/disk.img" /dev/zero
cmp -i 512:0 -n 512 "$tmp/disk.img" <(head -c 512 /dev/zero | tr '\0' '\245')
cmp -i 1024:0 -n 2048 "$tmp/disk.img" /dev/zero
cmp -i 3072:0 -n 1024 "$tmp/disk.img" <(head -c 1024 /dev/zero | tr '\0' '\132')
cmp -i 4096:0 "$tmp/disk.img" <(head -c $(( 8 * 1024 * 1024 - 4096 )) /dev/zero)

# fio with bs=512..2k, which failed with err=22 while the minimum was
# st_blksize.
if fio --enghelp=nbd >/dev/null 2>&1; then
    run_frontend "$frontend" '
        fio --name=small --ioengine=nbd --uri="nbd+unix:///lo0?socket=$unixsocket" \
            --rw=randwrite --bsrange=512-2k --size=1M --io_size=256k \
            --verify=crc32c --do_verify=1 --output="$tmp/fio.out"' \
        loopback fd="$tmp/disk.img" blk cache=1m
    cat "$tmp/fio.out"
    grep -q "err= 0" "$tmp/fio.out"
else
    echo "fio has no nbd engine: the fio part is not run"
fi
