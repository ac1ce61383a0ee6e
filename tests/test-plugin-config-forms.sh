#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Every way of giving the plugin its configuration means the same:
# the loopback group as the bare word or as loopback=, the blk group
# as blk=, single options of either group on their own (fd=X,
# cache=16m, commit=none), repeated keys taken in command-line order
# (ro in one key still applies to fd= in a later one).
source ./functions.sh
set -e
set -x

requires_frontend plugin
requires nbdinfo --version
requires jq --version
make_tmpdir
truncate -s 1M "$tmp/a.img"
truncate -s 2M "$tmp/b.img"
a="$tmp/a.img" b="$tmp/b.img"

# list ARGS...: "NAME:SIZE:RO:FUA ..." for every export.
list ()
{
    loopback_nbdkit -U - "$loopback_plugin" "$@" \
        --run 'nbdinfo --list --json "$uri"' > "$tmp/list.json"
    jq -r '[.exports[] | "\(."export-name"):\(."export-size"):\(.is_read_only):\(.can_fua)"] | join(" ")' \
        "$tmp/list.json"
}
both="lo0:1048576:true:false lo1:2097152:false:true"

test "$(list "ro,fd=$a,rw,fd=$b")" = "$both"
test "$(list loopback="ro,fd=$a,rw,fd=$b")" = "$both"
test "$(list loopback=ro loopback=fd="$a" loopback=rw,fd="$b")" = "$both"
test "$(list ro fd="$a" rw fd="$b")" = "$both"
test "$(list ro fd="$a" loopback=rw,fd="$b" blk=cache=16m)" = "$both"

# Single blk options, and blk= with several.
test "$(list fd="$b" cache=16m commit=none)" = "lo0:2097152:false:false"
test "$(list fd="$b" blk=cache=16m,commit=none)" = "lo0:2097152:false:false"
test "$(list fd="$b" blk=cache=16m blk=commit=high)" = "lo0:2097152:false:true"

# Global loopback options and blk ro, as single options.
test "$(list prefix=disk fd="$a" fd="$b" blk=ro)" = \
    "disk0:1048576:true:false disk1:2097152:true:false"
test "$(list blk=ramdisk=1m)" = "ram0:1048576:false:true"
