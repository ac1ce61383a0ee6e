# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-{daemon,plugin}-nbdinfo-map.sh and their
# test-newest-* twins, with $frontend and maybe newest=yes set): nbdinfo
# says which protocol it negotiated -- with libnbd 1.22 the daemon gives
# "extended packets" (64-bit requests), nbdkit 1.32 "structured packets"
# -- and nbdinfo --map and --json agree with the host file: 1 MiB of
# data at 2 MiB and at 5 GiB of a sparse 6 GiB file, holes elsewhere.
# Without extended headers the file is 3 GiB and the second data at
# 2 GiB: nbdinfo --map (1.14 and 1.22 alike) then asks for 4 GiB - 1
# bytes at a time, which is not a multiple of the minimum block size,
# and fails over any server on exports larger than 4 GiB.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires nbdinfo --version
requires jq --version
make_tmpdir
export tmp
if [ "${newest:-}" = yes ] && [ "$frontend" = daemon ]; then
    size=6G second=5120     # MiB
else
    size=3G second=2048
fi
truncate -s $size "$tmp/disk.img"
head -c 1M /dev/urandom | dd of="$tmp/disk.img" bs=1M seek=2 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$tmp/disk.img" bs=1M seek=$second conv=notrunc status=none

run_frontend "$frontend" '
    nbdinfo "$uri" > "$tmp/info.txt" &&
    nbdinfo --json "$uri" > "$tmp/info.json" &&
    nbdinfo --map "$uri" > "$tmp/map.txt" &&
    nbdinfo --map --totals "$uri" > "$tmp/totals.txt"' \
    loopback fd="$tmp/disk.img" blk cache=16m
cat "$tmp/info.txt" "$tmp/map.txt" "$tmp/totals.txt"

test "$(jq -r '.exports[0]."export-size"' "$tmp/info.json")" = \
    $(stat -c %s "$tmp/disk.img")
if [ "${newest:-}" = yes ]; then
    # libnbd 1.22 asks for extended headers: the daemon has them,
    # nbdkit 1.32 not (structured replies, 32-bit lengths).
    case $frontend in
    daemon)
        grep -q 'using extended packets' "$tmp/info.txt"
        test "$(jq -r .extended "$tmp/info.json")" = true
        ;;
    plugin)
        grep -q 'using structured packets' "$tmp/info.txt"
        test "$(jq -r .extended "$tmp/info.json")" = false
        ;;
    esac
fi

# The map: the host's extents (a server may split, so compare the
# data ranges after merging).
data_ranges ()
{
    awk '{ data = ($4 == "data" || $3 == 0); s = $1; e = $1 + $2;
           if (data && started && s == pe) { pe = e; next }
           if (started) printf "%.0f %.0f\n", ps, pe; started = 0;
           if (data) { ps = s; pe = e; started = 1 } }
         END { if (started) printf "%.0f %.0f\n", ps, pe }' "$1"
}
data_ranges "$tmp/map.txt" > "$tmp/ranges"
cat "$tmp/ranges"
printf '%s\n' "2097152 3145728" \
    "$((second << 20)) $(((second + 1) << 20))" | diff - "$tmp/ranges"
# --totals: 2 MiB of data, the rest holes.
grep -E '^ *2097152 +[0-9.]+% +0 +data' "$tmp/totals.txt"
