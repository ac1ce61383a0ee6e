# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-{daemon,plugin}-nbdsh.sh and their test-newest-*
# twins): an nbdsh script writes, zeroes, trims, flushes, reads back and
# maps a sparse 8 GiB export, with 64-bit requests where the server
# negotiated extended headers (the daemon, with libnbd 1.22) and 32-bit
# ones otherwise; the host file is checked afterwards.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires /usr/bin/python3 -c 'import nbd'
make_tmpdir
export tmp
truncate -s 8G "$tmp/disk.img"
head -c 1M /dev/zero | tr '\0' '\252' |
    dd of="$tmp/disk.img" bs=1M seek=6144 conv=notrunc status=none

cat > "$tmp/script.py" <<'PY'
import os
G = 1 << 30
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_uri(os.environ["uri"])
# libnbd 1.14 (Debian 12) knows nothing of extended headers.
ext = getattr(h, "get_extended_headers_negotiated", lambda: False)()
payload = getattr(h, "can_block_status_payload", lambda: False)()
print("libnbd", h.get_version(), "extended headers", ext,
      "block status payload", payload)
open(os.environ["tmp"] + "/extended", "w").write("%d\n" % ext)
assert h.get_size() == 8 * G
assert h.pread(4096, 6 * G) == b"\xaa" * 4096
h.pwrite(b"\x11" * 65536, 5 * G, nbd.CMD_FLAG_FUA)
# Zero 6 GiB .. 8 GiB: one request with extended headers, else in
# pieces of at most 2 GiB.
step = 2 * G if ext else 1 << 30
for off in range(6 * G, 8 * G, step):
    h.zero(step, off)
h.trim(1 << 20, 5 * G + (1 << 20))
h.flush()
assert h.pread(65536, 5 * G) == b"\x11" * 65536
assert h.pread(4096, 6 * G) == bytes(4096)
ents = []
def cb(meta, off, e, err):
    ents.extend(e)
    return 0
if ext:
    h.block_status_64(8 * G, 0, cb)
else:
    h.block_status(1 << 30, 4 * G, cb)
print("extents", ents[:8])
if ext:
    # All 8 GiB in one reply: a hole of 5 GiB first (past 32 bits).
    assert ents[0] == (5 * G, 3), ents[0]
    assert sum(l for l, f in ents) >= 8 * G, ents
    if payload:
        f = []
        h.block_status_filter(8 * G - 6 * G, 6 * G, ["base:allocation"],
                              lambda m, o, e, err: f.extend(e) or 0)
        print("filtered", f)
        assert f[0] == (2 * G, 3), f
h.shutdown()
PY
# Debian's nbdsh runs the python3 first on PATH, which may lack libnbd's
# module: run it as nbdsh does, with Debian's python.  The newest nbdsh
# runs /usr/bin/python3 with its own module (PYTHONPATH).
if [ "${newest:-}" = yes ]; then
    nbdsh=nbdsh
else
    nbdsh="/usr/bin/python3 -m nbd"
fi
export nbdsh
run_frontend "$frontend" 'uri="$uri" $nbdsh -c "exec(open(\"$tmp/script.py\").read())"' \
    loopback fd="$tmp/disk.img" blk cache=16m

# What the server wrote back: the data at 5 GiB, zeroes at 6 GiB.
cmp -n 65536 -i 5G:0 "$tmp/disk.img" <(head -c 65536 /dev/zero | tr '\0' '\021')
cmp -n 1M -i 6G:0 "$tmp/disk.img" /dev/zero
test "$(stat -c %s "$tmp/disk.img")" = 8589934592
if [ "${newest:-}" = yes ] && [ "$frontend" = daemon ]; then
    test "$(cat "$tmp/extended")" = 1
else
    test "$(cat "$tmp/extended")" != 1
fi
