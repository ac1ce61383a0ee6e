# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-enospc.sh, test-daemon-enospc.sh): a full
# host file system.  The export is a sparse 8 MiB file on a 1 MiB
# tmpfs: cached writes succeed, the FLUSH that cannot write them back
# fails with ENOSPC (and so does the next one: the blocks stay dirty),
# a FUA write fails with ENOSPC, reads still return the data, and once
# the file system has grown a FLUSH puts everything in the file.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires_root
requires client-frontend-io --help
make_tmpdir
export small="$tmp/small"
mkdir "$small"
mount -t tmpfs -o size=1m tmpfs "$small" ||
    skip "cannot mount a tmpfs here"
cleanup_fn umount "$small"
truncate -s 8M "$small/disk.img"

run_frontend "$frontend" '
    client-frontend-io "nbd+unix:///lo0?socket=$unixsocket" \
        write 0 4M 0xab \
        expect ENOSPC flush \
        expect ENOSPC flush \
        expect ENOSPC write-fua 6M 64k 0xcd \
        read 0 4M 0xab \
        shell "mount -o remount,size=16m $small" \
        flush \
        file-is "$small/disk.img" 0 4M 0xab' \
    loopback fd="$small/disk.img" blk delwri=60
cmp <(head -c 4M "$small/disk.img") <(head -c 4M /dev/zero | tr '\0' '\253')
