#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Negotiating qemu:dirty-bitmap contexts, and the settings around them:
# LIST_META_CONTEXT lists every bitmap (no query, "qemu:",
# "qemu:dirty-bitmap:"), and nothing for an export without tracking;
# unknown names in SET_META_CONTEXT are ignored while the others are
# selected; one BLOCK_STATUS answers base:allocation and two bitmaps;
# --dump-config shows the tracking settings; a bad granularity is an
# error, one below the block size turns tracking off; --stats-file and
# SIGUSR1 report each bitmap's dirty bytes.
source ./functions.sh
set -e
set -x

requires /usr/bin/python3 -c 'import nbd'
requires jq --version
make_tmpdir
truncate -s 8M "$tmp/a.img" "$tmp/b.img"

nbd-loopback --dump-config loopback cbt=128k,fd="$tmp/a.img",nocbt,fd="$tmp/b.img" \
    > "$tmp/dump"
cat "$tmp/dump"
grep -qx "lo0.cbt=131072" "$tmp/dump"
grep -qx "lo0.cbtfile=$tmp/a.img.cbt" "$tmp/dump"
grep -qx "lo1.cbt=0" "$tmp/dump"
nbd-loopback --dump-config loopback cbt,cbtdir=/var/lib/x,fd="$tmp/a.img" |
    grep -qx "lo0.cbtfile=/var/lib/x/a.img.cbt"
# Relative paths are made absolute: the daemon detaches into /.
(cd "$tmp" && nbd-loopback --dump-config loopback cbt,fd=a.img,cbtdir=sub,fd=b.img) \
    > "$tmp/dump"
grep -qx "lo0.cbtfile=$tmp/a.img.cbt" "$tmp/dump"
grep -qx "lo1.cbtfile=$tmp/sub/b.img.cbt" "$tmp/dump"
expect_fail_with "cbt=3000: the granularity must be a power of two" \
    nbd-loopback --dump-config loopback cbt=3000,fd="$tmp/a.img"
expect_fail_with "cbt=1g: the granularity must be a power of two" \
    nbd-loopback --dump-config loopback cbt=1g,fd="$tmp/a.img"
test ! -e "$tmp/a.img.cbt"

truncate -s 1M "$tmp/c.img"
start_server_unix --control "$tmp/ctl" --stats-file "$tmp/stats.json" \
    loopback cbt,fd="$tmp/a.img",nocbt,fd="$tmp/b.img",blksz=4096,cbt=512,fd="$tmp/c.img" \
    blk cache=16m
grep -q "lo2: cbt=512: the granularity must be a power of two no smaller than the block size 4096; tracking is off" \
    "$tmp/server.log"
test ! -e "$tmp/c.img.cbt"
nbd-loopback ctl "$tmp/ctl" checkpoint lo0 one

export sock tmp
/usr/bin/python3 - <<'PY'
import errno, os, subprocess, nbd
sock = os.environ["sock"]

def listed(export, queries):
    h = nbd.NBD()
    h.set_opt_mode(True)
    for q in queries:
        h.add_meta_context(q)
    h.connect_uri("nbd+unix:///%s?socket=%s" % (export, sock))
    got = []
    h.opt_list_meta_context(lambda name: got.append(name) or 0)
    h.opt_abort()
    return sorted(got)

every = ["base:allocation", "qemu:dirty-bitmap:live", "qemu:dirty-bitmap:one"]
assert listed("lo0", []) == every, listed("lo0", [])
assert listed("lo0", ["qemu:dirty-bitmap:"]) == every[1:]
assert listed("lo0", ["qemu:"]) == every[1:]
assert listed("lo0", ["qemu:dirty-bitmap:one", "qemu:dirty-bitmap:nope"]) == \
    ["qemu:dirty-bitmap:one"]
assert listed("lo1", ["qemu:dirty-bitmap:"]) == []
assert listed("lo1", []) == ["base:allocation"]

# SET: unknown names ignored, the rest selected.
h = nbd.NBD()
for c in ["qemu:dirty-bitmap:nope", "base:allocation", "qemu:dirty-bitmap:live",
          "qemu:dirty-bitmap:one", "qemu:other"]:
    h.add_meta_context(c)
h.connect_uri("nbd+unix:///lo0?socket=" + sock)
assert not h.can_meta_context("qemu:dirty-bitmap:nope")
assert not h.can_meta_context("qemu:other")
assert h.can_meta_context("base:allocation")
assert h.can_meta_context("qemu:dirty-bitmap:live")
h.pwrite(b"x" * 4096, 65536 * 3)
seen = {}
def cb(meta, off, ents, err):
    seen[meta] = list(ents)
    return 0
h.block_status(1 << 20, 0, cb)
print(seen)
assert seen["qemu:dirty-bitmap:live"] == [196608, 0, 65536, 1, 786432, 0], seen
assert seen["qemu:dirty-bitmap:one"] == [1 << 20, 0], seen
assert seen["base:allocation"][0] == 196608, seen
h.shutdown()

# An export without tracking: the bitmap is not selected, base: is.
h = nbd.NBD()
h.add_meta_context("qemu:dirty-bitmap:live")
h.add_meta_context("base:allocation")
h.connect_uri("nbd+unix:///lo1?socket=" + sock)
assert not h.can_meta_context("qemu:dirty-bitmap:live")
assert h.can_meta_context("base:allocation")
h.block_status(4096, 0, cb)
h.shutdown()

PY

# Statistics: each bitmap's dirty bytes, in the JSON and on SIGUSR1.
kill -USR1 "$server_pid"
wait_for 10 grep -q "lo0: dirty bitmap live (granularity 65536): 65536 bytes changed" \
    "$tmp/server.log"
wait_for 10 test "$(jq -r '.event' "$tmp/stats.json")" = SIGUSR1
test "$(jq -r '.exports[0].bitmaps[] | select(.name == "live") | .dirty_bytes' "$tmp/stats.json")" = 65536
test "$(jq -r '.exports[0].bitmaps[] | select(.name == "one") | .dirty_bytes' "$tmp/stats.json")" = 0
test "$(jq -r '.exports[0].cbt_granularity' "$tmp/stats.json")" = 65536
test "$(jq -r '.exports[1].cbt_granularity' "$tmp/stats.json")" = 0

/usr/bin/python3 - <<'PY'
import errno, os, subprocess, nbd
sock = os.environ["sock"]
cb = lambda *args: 0
# A bitmap deleted while selected: BLOCK_STATUS fails, saying so, and
# the connection goes on.
subprocess.run(["nbd-loopback", "ctl", os.environ["tmp"] + "/ctl",
                "checkpoint", "lo0", "gone"], check=True)
h = nbd.NBD()
h.add_meta_context("qemu:dirty-bitmap:gone")
h.connect_uri("nbd+unix:///lo0?socket=" + sock)
assert h.can_meta_context("qemu:dirty-bitmap:gone")
subprocess.run(["nbd-loopback", "ctl", os.environ["tmp"] + "/ctl",
                "delete", "lo0", "gone"], check=True)
try:
    h.block_status(4096, 0, cb)
    raise SystemExit("BLOCK_STATUS of a deleted bitmap succeeded")
except nbd.Error as e:
    print("deleted bitmap:", e)
    assert e.errnum == errno.EINVAL, e.errnum
h.pread(512, 0)
h.shutdown()
PY
stop_server
