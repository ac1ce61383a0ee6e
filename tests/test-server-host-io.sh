#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Cache misses and durable writes in one hop.  By default a READ the
# cache does not hold is read from the host through the loop's io_uring
# (uring_reads); with noaiod, or where io_uring is refused, an I/O
# thread reads it and sends the reply (host_io_requests); with nio=0 a
# worker does everything (worker_requests).  Every way returns exactly
# the host file's bytes; a durable write (commit=high) is in the host
# file when its reply arrives; a host file cut short behind our back
# makes reads of the missing part fail with EIO and nothing else.
source ./functions.sh
set -e
set -x

requires /usr/bin/python3 --version
requires nbdcopy --version
requires qemu-io --version
make_tmpdir
head -c 24M /dev/urandom > "$tmp/data"

field ()
{
    /usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
e = [x for x in d["exports"] if x["name"] == sys.argv[2]][0]
print(json.dumps(e[sys.argv[3]]))' "$tmp/stats.json" lo0 "$1"
}
stats ()
{
    : > "$tmp/stats.json"
    kill -USR1 "$server_pid"
    wait_for 10 /usr/bin/python3 -m json.tool "$tmp/stats.json"
}

# serve BLK-OPTS [LOOPBACK-OPTS]: a fresh copy of the data, cache 2 MiB
# (a twelfth of it), no read-ahead: nearly every 4 KiB read is a miss.
serve ()
{
    cp "$tmp/data" "$tmp/disk.img"
    start_server_unix -v --stats-file "$tmp/stats.json" \
        loopback ${2:+$2,}denyno,fd="$tmp/disk.img" blk "cache=2m,nora${1:+,$1}"
    uri=$(nbd_uri lo0)
}

# read_all: the whole export in 4 KiB reads, compared with the data.
read_all ()
{
    nbdcopy --no-extents --request-size=4096 --connections=1 --requests=16 \
        "$uri" - \
        > "$tmp/out"
    cmp "$tmp/data" "$tmp/out"
}

# A host file cut short behind our back: EIO for what is gone, the rest
# still served.
truncated ()
{
    truncate -s 16M "$tmp/disk.img"
    expect_fail_with 'Input/output error' \
        qemu-io -f raw -c 'read 20M 4k' "$uri"
    qemu-io -f raw -c 'read 12M 4k' "$uri" | grep -q 'read 4096/4096'
    kill -0 "$server_pid"
}

# Default: misses through io_uring, unless the kernel refuses it.
serve ""
read_all
stats
test "$(field misses)" -ge 5000
if grep -q 'io_uring: .*go through the I/O threads' "$tmp/server.log"; then
    echo "io_uring refused here: $(grep io_uring "$tmp/server.log")"
    test "$(field uring_reads)" -eq 0
    test "$(field host_io_requests)" -ge 5000
else
    test "$(field uring_reads)" -ge 5000
fi
test "$(field worker_requests)" -lt 100
stop_server

# Large structured reads report holes, so a worker looks for them; a
# host file without holes has none to report, and they take one hop.
serve ""
nbdcopy --no-extents --request-size=262144 --connections=1 "$uri" - \
    > "$tmp/out"
cmp "$tmp/data" "$tmp/out"
stats
if ! grep -q 'io_uring: .*go through the I/O threads' "$tmp/server.log"; then
    test "$(field uring_reads)" -ge 80          # of 96
fi
test "$(field host_io_requests)" -ge 80
test "$(field zero_copy_reads)" -ge 80       # sent from the blocks
truncated
stop_server

# noaiod: the I/O threads read, and send the replies themselves.
serve noaiod
read_all
stats
test "$(field uring_reads)" -eq 0
test "$(field host_io_requests)" -ge 5000
truncated
stop_server

# nio=0: no I/O threads; workers read.
serve "" nio=0
read_all
stats
test "$(field host_io_requests)" -eq 0
test "$(field worker_requests)" -ge 5000
stop_server

# commit=high: every write is in the host file (durably) before its
# reply, done in one hop (by default the write-back and the fdatasync
# are linked io_uring requests; with noaiod an I/O thread does both);
# the file is checked while the server runs.  test-daemon-enospc.sh has
# the failing host writes.
for mode in "" noaiod; do
    serve "commit=high,rmvto=1${mode:+,$mode}"
    qemu-io -f raw -c 'write -P 0x33 4096 64k' -c 'write -P 0x44 1M 4k' \
        "$uri" | grep -q 'wrote 4096/4096'
    cmp <(head -c 65536 /dev/zero | tr '\0' '\063') \
        <(tail -c +4097 "$tmp/disk.img" | head -c 65536)
    cmp <(head -c 4096 /dev/zero | tr '\0' '\104') \
        <(tail -c +$((1048576 + 1)) "$tmp/disk.img" | head -c 4096)
    stats
    test "$(field host_io_requests)" -ge 2
    test "$(field worker_requests)" -le 1     # qemu-io's FLUSH at exit
    if [ -n "$mode" ] ||
        grep -q 'io_uring: .*go through the I/O threads' "$tmp/server.log"; then
        test "$(field uring_writes)" -eq 0
    else
        test "$(field uring_writes)" -ge 2
        # The file is opened O_SYNC (the default, sync): no fdatasync.
        test "$(field uring_syncs)" -eq 0
    fi
    # Our own writes, io_uring's included, are not taken for another
    # process changing the file when the export is looked at again
    # after rmvto= (1 s here).
    sleep 1.5
    qemu-io -f raw -r -c 'read -P 0x44 1M 4k' "$uri" > /dev/null
    stats
    if grep -q 'changed behind our back' "$tmp/server.log"; then
        fail "our own write-back was taken for a change by another process"
    fi
    test "$(field host_changes)" -eq 0
    stop_server
done

# Group commit: 4 KiB durable writes at queue depth 32 (async: the file
# without O_SYNC, so they need fdatasync) take fewer fdatasyncs than
# writes (one covers every write complete when it started), and while
# the server still runs the host file holds what the export reads.
if ! command -v fio > /dev/null; then
    echo "$0: fio is missing: the group-commit case is not run"
elif grep -q 'io_uring: .*go through the I/O threads' "$tmp/server.log"; then
    echo "$0: io_uring is refused here: the group-commit case is not run"
else
    serve "commit=high" async           # without O_SYNC: fdatasync
    fio --ioengine=nbd --uri="$uri" --name=durable --rw=randwrite --bs=4k \
        --iodepth=32 --size=8m --io_size=16m --randrepeat=0 \
        --norandommap --output=/dev/null
    stats
    writes=$(field uring_writes) syncs=$(field uring_syncs)
    echo "group commit: $writes durable writes, $syncs fdatasyncs"
    test "$writes" -ge 4000
    test "$syncs" -ge 1
    # Without group commit every write has its own fdatasync.  How many
    # share one depends on timing (9.6 per fdatasync on a quiet machine,
    # 3.3 with both cores busy); fewer fdatasyncs than writes is what
    # holds whatever the load.
    test "$syncs" -lt "$writes" ||
        fail "$syncs fdatasyncs for $writes durable writes at QD32"
    # The file as the server wrote it, before anything else could: the
    # same bytes through the export.
    nbdcopy "$uri" - | cmp - "$tmp/disk.img"
    stop_server
fi
