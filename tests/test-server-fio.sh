#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# fio's nbd engine: 4 jobs, each its own connection (multi-conn),
# random writes verified with crc32c, served by two event loops.  (No
# verify state files: they would stay in the build tree.)
source ./functions.sh
set -e
set -x

requires fio --version
fio --enghelp 2>/dev/null | grep -qw nbd || skip "this fio has no nbd engine"
make_tmpdir
truncate -s 64M "$tmp/disk.img"
start_server_unix --loops=2 loopback fd="$tmp/disk.img"

fio --name=verify --ioengine=nbd --uri="$(nbd_uri lo0)" \
    --rw=randwrite --bs=4k --iodepth=16 --numjobs=4 \
    --size=16M --offset_increment=16M \
    --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --verify_state_save=0 \
    --group_reporting --output="$tmp/fio.out"
cat "$tmp/fio.out"
grep -q 'err= 0' "$tmp/fio.out"
stop_server
