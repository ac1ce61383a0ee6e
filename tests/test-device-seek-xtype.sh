#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# seek (lseek + read/write) and xtype (pread/pwrite) I/O move the same
# bytes: data written at an unaligned offset in one mode reads back
# identically in the other, and lands at that offset in the host file.
source ./functions.sh
set -e
set -x

make_tmpdir
f="$tmp/disk.img"
truncate -s 4M "$f"
head -c 300001 /dev/urandom > "$tmp/data1"
head -c 123457 /dev/urandom > "$tmp/data2"

# The modes are what was asked for.
hold-device --no-wait denyno,seek:"$f" | grep -q " io=seek "
hold-device --no-wait denyno,xtype:"$f" | grep -q " io=xtype "
hold-device --no-wait denyno:"$f" | grep -q " io=xtype "

hold-device write async,denyno,seek:"$f" 12345 < "$tmp/data1"
hold-device read denyno,xtype:"$f" 12345 300001 > "$tmp/back1"
cmp "$tmp/data1" "$tmp/back1"
cmp -n 300001 "$tmp/data1" <(tail -c +12346 "$f")

hold-device write async,denyno,xtype:"$f" 1000001 < "$tmp/data2"
hold-device read denyno,seek:"$f" 1000001 123457 > "$tmp/back2"
cmp "$tmp/data2" "$tmp/back2"
cmp -n 123457 "$tmp/data2" <(tail -c +1000002 "$f")

# The first write is intact and the bytes between are still zero.
hold-device read denyno,seek:"$f" 12345 300001 | cmp - "$tmp/data1"
hold-device read denyno,xtype:"$f" 312346 100 | cmp - <(head -c 100 /dev/zero)
