#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# fd= paths relative to the directory nbdkit was started in work,
# although nbdkit changes directory to / when it goes into the
# background: both in captive mode and as a background server.
source ./functions.sh
set -e
set -x

requires_frontend plugin
requires client-frontend-io --help
make_tmpdir
export tmp
head -c 1M /dev/zero | tr '\0' '\125' > "$tmp/disk.img"
mkdir "$tmp/sub"
head -c 1M /dev/zero | tr '\0' '\252' > "$tmp/sub/other.img"

cd "$tmp"
loopback_nbdkit -U - "$loopback_plugin" fd=disk.img loopback=fd=sub/../sub/other.img \
    --run 'client-frontend-io "nbd+unix:///lo1?socket=$unixsocket" read 0 1M 0xaa'

# In the background (no -f): nbdkit forks and the child changes to /.
# It is not our child, so once it has exited it may stay a zombie
# until init reaps it: wait for that rather than for it to vanish.
exited ()
{
    local stat
    stat=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
    test "${stat%% *}" = Z
}
stop_background () { kill "$1" 2>/dev/null; wait_for 60 exited "$1"; }
loopback_nbdkit -P "$tmp/pid" -U "$tmp/sock" "$loopback_plugin" fd=disk.img
wait_for 30 test -s "$tmp/pid"
pid=$(cat "$tmp/pid")
cleanup_fn stop_background "$pid"
test "$(readlink "/proc/$pid/cwd")" = /
cd /
client-frontend-io "nbd+unix:///lo0?socket=$tmp/sock" \
    read 0 1M 0x55 write 0 4096 0x11 flush \
    file-is "$tmp/disk.img" 0 4096 0x11
stop_background "$pid"
