# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-nbdcopy.sh, test-daemon-nbdcopy.sh):
# nbdcopy copies 32 MiB of random data into lo0 and back out through a
# cache half that size (so blocks are evicted and re-read), the copy
# out equals the data, and once the server has exited (end of --run,
# no FLUSH from nbdcopy) the host file equals it too.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires nbdcopy --version
make_tmpdir
export tmp
head -c 32M /dev/urandom > "$tmp/data"
truncate -s 32M "$tmp/disk.img"

run_frontend "$frontend" '
    lo0="nbd+unix:///lo0?socket=$unixsocket"
    nbdcopy "$tmp/data" "$lo0" &&
    nbdcopy "$lo0" - > "$tmp/out"' \
    loopback fd="$tmp/disk.img" blk cache=16m,delwri=60

cmp "$tmp/data" "$tmp/out"
cmp "$tmp/data" "$tmp/disk.img"
