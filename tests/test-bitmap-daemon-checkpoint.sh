#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Checkpoints through the control socket (--control, nbd-loopback ctl):
# errors are clear and change nothing; and a checkpoint is atomic with
# respect to writes.  Four connections write, each to granules of its
# own and never the same twice, while checkpoints are taken in a loop.
# Afterwards every acknowledged write is in exactly one generation (the
# frozen bitmaps in order, then live); one acknowledged before a
# checkpoint was asked for is in an earlier generation, one sent after
# the checkpoint answered in a later one.
source ./functions.sh
set -e
set -x

requires /usr/bin/python3 -c 'import nbd'
make_tmpdir
truncate -s 256M "$tmp/disk.img"
start_server_unix --control "$tmp/ctl" \
    loopback cbt=4k,fd="$tmp/disk.img" blk cache=32m,ramdisk=1m
ctl () { nbd-loopback ctl "$tmp/ctl" "$@"; }

# Errors: each says why, exits 1 and changes nothing.
expect_fail_with "unknown export 'lo7'" ctl checkpoint lo7 a
expect_fail_with "no changed-block tracking" ctl checkpoint ram0 a
expect_fail_with "bad bitmap name" ctl checkpoint lo0 'a/b'
expect_fail_with "bad bitmap name" ctl checkpoint lo0 "$(printf 'x%.0s' {1..65})"
expect_fail_with "name exists" ctl checkpoint lo0 live
expect_fail_with "no such bitmap" ctl delete lo0 nothere
expect_fail_with "cannot be deleted" ctl delete lo0 live
expect_fail_with "no such bitmap" ctl merge lo0 m nothere
expect_fail_with "unknown command" ctl frobnicate lo0
expect_fail_with "connecting to" nbd-loopback ctl "$tmp/nosuch" list
expect_fail_with "usage: nbd-loopback ctl SOCKET checkpoint" nbd-loopback ctl "$tmp/ctl"
nbd-loopback --help | grep -q "nbd-loopback ctl SOCKET checkpoint"
test "$(ctl list)" = "lo0 live 0"
test "$(ctl checkpoint lo0 first)" = "lo0 first 0"
expect_fail_with "name exists" ctl checkpoint lo0 first
test "$(ctl list)" = "lo0 first 0
lo0 live 0"
ctl delete lo0 first
test "$(ctl list)" = "lo0 live 0"

export tmp sock
/usr/bin/python3 - <<'PY'
import os, subprocess, threading, time, nbd

tmp = os.environ["tmp"]
uri = "nbd+unix:///lo0?socket=" + os.environ["sock"]
G = 4096
NCONN = 4
stop = threading.Event()
log = [[] for _ in range(NCONN)]

def writer(k):
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    i = k
    buf = bytes([k + 1]) * 512
    while not stop.is_set() and (i + NCONN) * G <= size:
        t0 = time.monotonic()
        h.pwrite(buf, i * G + 512 * (i % 8))
        log[k].append((i, t0, time.monotonic()))
        i += NCONN
    h.shutdown()

threads = [threading.Thread(target=writer, args=(k,)) for k in range(NCONN)]
for t in threads:
    t.start()
cps = []
for n in range(40):
    time.sleep(0.01)
    t0 = time.monotonic()
    out = subprocess.run(["nbd-loopback", "ctl", tmp + "/ctl", "checkpoint",
                          "lo0", "g%d" % n], check=True,
                         stdout=subprocess.PIPE).stdout.split()
    cps.append(("g%d" % n, t0, time.monotonic(), int(out[2])))
stop.set()
for t in threads:
    t.join()

names = [c[0] for c in cps] + ["live"]
gens = {}
for gi, name in enumerate(names):
    h = nbd.NBD()
    ctx = "qemu:dirty-bitmap:" + name
    h.add_meta_context(ctx)
    h.connect_uri(uri)
    assert h.can_meta_context(ctx), name
    size = h.get_size()
    pos = 0
    def cb(meta, off, ents, err):
        global pos
        for j in range(0, len(ents), 2):
            if ents[j + 1] & 1:
                for g in range(off // G, (off + ents[j]) // G):
                    gens.setdefault(g, []).append(gi)
            off += ents[j]
        pos = off
    while pos < size:
        h.block_status(min(64 << 20, size - pos), pos, cb)
    h.shutdown()

writes = [w for l in log for w in l]
assert len(writes) > 1000, len(writes)
written = {w[0] for w in writes}
bad = 0
for i, t_sent, t_acked in writes:
    g = gens.get(i, [])
    if len(g) != 1:
        print("granule", i, "in generations", g)
        bad += 1
        continue
    g = g[0]
    for ci, (name, c0, c1, _) in enumerate(cps):
        if t_acked < c0 and g > ci:
            print("granule", i, "acknowledged before", name, "but in", names[g])
            bad += 1
        if t_sent > c1 and g <= ci:
            print("granule", i, "sent after", name, "but in", names[g])
            bad += 1
# A frozen bitmap never changes after its checkpoint answered (what a
# backup reads then is final): its size then is its size now.
for gi, (name, _, _, frozen) in enumerate(cps):
    now = sum(1 for g in gens.values() if gi in g) * G
    if now != frozen:
        print(name, "had", frozen, "bytes dirty when frozen, now", now)
        bad += 1
extra = set(gens) - written
if extra:
    print("granules dirty but never written:", sorted(extra)[:10])
    bad += 1
nonempty = len({gens[i][0] for i in written if len(gens.get(i, [])) == 1})
print("writes", len(writes), "checkpoints", len(cps), "generations used",
      nonempty, "violations", bad)
assert nonempty > 10
assert bad == 0
PY

# Merge: the union of two generations (disjoint here).
ctl merge lo0 both g1
ctl merge lo0 both g2
g1=$(ctl list lo0 | awk '$2 == "g1" {print $3}')
g2=$(ctl list lo0 | awk '$2 == "g2" {print $3}')
both=$(ctl list lo0 | awk '$2 == "both" {print $3}')
test "$both" -eq $(( g1 + g2 ))
stop_server
