# SPDX-License-Identifier: BSD-3-Clause
# Shared body (sourced by test-plugin-list.sh and test-daemon-list.sh
# with $frontend set): nbdinfo --list and --json show the exports lo0,
# lo1 and ram0 with their sizes (rounded down to blksz), the read-only
# flag of ro, block_size_minimum = blksz and descriptions naming the
# file; the default export "" is lo0.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires nbdinfo --version
requires jq --version
make_tmpdir
export tmp
truncate -s 64M "$tmp/cd.iso"
truncate -s 10000000 "$tmp/disk.img"     # not a multiple of 2048

run_frontend "$frontend" '
    nbdinfo --list "$uri" > "$tmp/list.txt" &&
    nbdinfo --list --json "$uri" > "$tmp/list.json" &&
    nbdinfo --json "nbd+unix:///?socket=$unixsocket" > "$tmp/default.json"' \
    loopback ro,blksz=2048,fd="$tmp/cd.iso",rw,fd="$tmp/disk.img" \
    blk cache=16m,ramdisk=8m
cat "$tmp/list.txt" "$tmp/list.json" "$tmp/default.json"

# field EXPORT KEY: one field of one export in the --json listing.
field ()
{
    jq -r --arg n "$1" ".exports[] | select(.\"export-name\" == \$n) | .\"$2\"" \
        "$tmp/list.json"
}

test "$(jq -r '[.exports[]."export-name"] | join(" ")' "$tmp/list.json")" = "lo0 lo1 ram0"

test "$(field lo0 export-size)" = 67108864
test "$(field lo0 is_read_only)" = true
test "$(field lo0 block_size_minimum)" = 2048
field lo0 description | grep -F 'cd.iso'
field lo0 description | grep -F 'read-only'
field lo0 description | grep -F '2048-byte blocks'

test "$(field lo1 export-size)" = $(( 10000000 / 2048 * 2048 ))
test "$(field lo1 is_read_only)" = false
test "$(field lo1 block_size_minimum)" = 2048
field lo1 description | grep -F 'disk.img'
field lo1 description | grep -F 'read-write'

test "$(field ram0 export-size)" = 8388608
test "$(field ram0 is_read_only)" = false
test "$(field ram0 block_size_minimum)" = 512
field ram0 description | grep -F 'read-write'

# Every export can flush and serves many connections (one cache).
for e in lo0 lo1 ram0; do
    test "$(field $e can_flush)" = true
    test "$(field $e can_multi_conn)" = true
done
test "$(field lo1 can_fua)" = true      # commit=medium (the default)

# The human listing says the same.
grep -E '^export="lo0":' "$tmp/list.txt"
grep -E '^export="lo1":' "$tmp/list.txt"
grep -E '^export="ram0":' "$tmp/list.txt"
grep -E 'export-size: 67108864 ' "$tmp/list.txt"

# "" is lo0.
test "$(jq -r '.exports | length' "$tmp/default.json")" = 1
test "$(jq -r '.exports[0]."export-name"' "$tmp/default.json")" = lo0
test "$(jq -r '.exports[0]."export-size"' "$tmp/default.json")" = 67108864

# blk ro makes every export read-only, the RAM disk too: writes fail
# and the host file is unchanged.
cmp -n 4096 "$tmp/disk.img" /dev/zero
run_frontend "$frontend" '
    nbdinfo --list --json "$uri" > "$tmp/ro.json" &&
    for e in lo0 ram0; do
        if /usr/bin/python3 -c "
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pwrite(b\"x\" * 512, 0)
except nbd.Error as e:
    print(\"refused:\", e)
    sys.exit(0)
sys.exit(1)" "nbd+unix:///$e?socket=$unixsocket"; then :; else
            echo "write to $e was accepted"; exit 1
        fi
    done' \
    loopback fd="$tmp/disk.img" blk ro,cache=16m,ramdisk=8m
cat "$tmp/ro.json"
for e in lo0 ram0; do
    test "$(jq -r --arg n $e '.exports[] | select(."export-name" == $n) | .is_read_only' "$tmp/ro.json")" = true
done
cmp -n 4096 "$tmp/disk.img" /dev/zero
