# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-delwri-timing.sh, test-daemon-delwri-timing.sh):
# delwri=T and postpone=T mean at most T.  Five blocks written 0.2 s
# apart each reach the host file T after their own write, within a
# small slack, not at the flusher's next round (which made them up to
# T/4 late).
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires /usr/bin/python3 -c 'import nbd'
make_tmpdir
truncate -s 8M "$tmp/disk.img"

slack=0.3
for run in "delwri=3" "delwri=2,postpone=3 --redirty"; do
    set -- $run
    blk=$1 redirty=${2:-}
    truncate -s 0 "$tmp/disk.img"
    truncate -s 8M "$tmp/disk.img"
    start_frontend "$frontend" "$tmp/pid" "$tmp/sock" \
        loopback fd="$tmp/disk.img" blk cache=4m,commit=low,$blk
    /usr/bin/python3 "$abs_srcdir/delwri-timing.py" $redirty \
        "$(frontend_uri lo0)" "$tmp/disk.img" 3 $slack ||
        fail "blk $blk: write-back was not on time"
    stop_frontend
done
