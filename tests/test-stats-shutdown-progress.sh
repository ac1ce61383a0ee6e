#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# With -v, writing back a large dirty cache at shutdown says how many
# bytes are left, at once and then at least once a second with the
# rate, and ends with the statistics; without -v (and stderr not a
# terminal: test-stats-shutdown-tty.sh) it stays quiet.
source ./functions.sh
set -e
set -x

requires fio --enghelp=nbd
make_tmpdir
truncate -s 128M "$tmp/disk.img"

# Scattered 4 KiB writes (every other block, so the write-back cannot
# merge them) stay dirty: delwri=60.  The disk is O_SYNC (the default).
dirty_it ()
{
    fio --name=scatter --ioengine=nbd --uri="$(nbd_uri lo0)" \
        --rw=write:4k --bs=4k --size=64m --output=/dev/null
}

start_server_unix -v loopback fd="$tmp/disk.img" blk cache=256m,delwri=60
dirty_it
stop_server
grep -v ': debug: ' "$tmp/server.log"
grep -Eq '^nbd-loopback: writing back: [1-9][0-9]* bytes left$' \
    "$tmp/server.log" || fail "no progress line before the write-back"
final='^nbd-loopback: writing back: done, [0-9]+ bytes in [0-9.]+ s, 0 bytes left$'
done_line=$(grep -E "$final" "$tmp/server.log") || fail "no final progress line"
secs=$(sed -E 's/.* in ([0-9]+)\.[0-9] s.*/\1/' <<<"$done_line")
lines=$(grep -Ec 'writing back: [0-9]+ bytes left(, [0-9.]+ MiB/s)?$' "$tmp/server.log")
echo "figures: write-back took ${secs}.x s, $lines progress lines"
# One line at the start, then one per elapsed second.
test "$lines" -ge "$secs" ||
    fail "$lines progress lines in ${secs}+ seconds: less than one a second"
grep -Eq 'lo0: reads .*dirty 0 bytes' "$tmp/server.log" ||
    fail "no statistics at exit with -v"

# Without -v: neither progress nor statistics.
rm -f "$tmp/server.log"
start_server_unix loopback fd="$tmp/disk.img" blk cache=256m,delwri=60
dirty_it
stop_server
cat "$tmp/server.log"
if grep -q 'writing back:\|statistics:' "$tmp/server.log"; then
    fail "progress or statistics logged without -v"
fi
