#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Incremental backup while the export keeps changing: a checkpoint, a
# full copy (nbdcopy), then three generations of "checkpoint, copy the
# extents the new bitmap marks" (contrib/nbd-copy-dirty) with a writer
# running all along on another connection.  Once the writer stops, a
# last generation brings the backup level with the image: cmp against
# the export and against the host file.
source ./functions.sh
set -e
set -x

requires /usr/bin/python3 -c 'import nbd'
requires nbdcopy --version
requires qemu-io --version
make_tmpdir
copy_dirty="$abs_top_srcdir/contrib/nbd-copy-dirty"
truncate -s 64M "$tmp/disk.img"
head -c 8M /dev/urandom | dd of="$tmp/disk.img" conv=notrunc status=none
start_server_unix --control "$tmp/ctl" loopback cbt=4k,fd="$tmp/disk.img" \
    blk cache=32m
uri=$(nbd_uri lo0)
ctl () { nbd-loopback ctl "$tmp/ctl" "$@"; }

# A writer: random unaligned writes, zeroes and trims, until told to stop.
# Every request stays inside the 64 MiB export (the longest is 20000
# bytes): qemu-io exits 1 when any of its commands fails.
writer ()
{
    while [ ! -e "$tmp/stop" ]; do
        for i in $(seq 30); do
            off=$(( (RANDOM * 2048 + RANDOM % 512) % (64 * 1024 * 1024 - 20480) ))
            case $((RANDOM % 4)) in
            0) echo "write -z $off $((RANDOM % 8192 + 1))" ;;
            1) echo "discard $((off / 4096 * 4096)) 8192" ;;
            *) echo "write -P $((RANDOM % 256)) $off $((RANDOM % 20000 + 1))" ;;
            esac
        done | qemu-io -f raw "$uri" > /dev/null
    done
}
writer &
writer_pid=$!
cleanup_fn 'touch "$tmp/stop"; kill_pid '"$writer_pid"

ctl checkpoint lo0 full
nbdcopy "$uri" "$tmp/backup.img"
for gen in 1 2 3; do
    sleep 0.3                   # let the writer change something
    ctl checkpoint lo0 gen$gen
    copied=$("$copy_dirty" "$uri" gen$gen "$tmp/backup.img")
    echo "generation $gen: $copied bytes copied"
    test "$copied" -gt 0
    test "$copied" -lt $((64 * 1024 * 1024))
    ctl delete lo0 gen$gen
done
touch "$tmp/stop"
wait "$writer_pid"
ctl checkpoint lo0 last
"$copy_dirty" "$uri" last "$tmp/backup.img"
nbdcopy "$uri" "$tmp/live.img"
cmp "$tmp/live.img" "$tmp/backup.img"
stop_server
cmp "$tmp/disk.img" "$tmp/backup.img"

# Without the last generation the backup would lag: nbd-copy-dirty on a
# bitmap that does not exist is an error.
start_server_unix --control "$tmp/ctl" loopback cbt=4k,fd="$tmp/disk.img" blk cache=32m
expect_fail_with "no bitmap 'gen1'" "$copy_dirty" "$(nbd_uri lo0)" gen1 "$tmp/backup.img"
stop_server
