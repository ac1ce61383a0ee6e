# SPDX-License-Identifier: BSD-3-Clause
"""Write five blocks 0.2 s apart through NBD, then watch the host file:
each must reach it T seconds after its write (delwri=T), not earlier
and not later than a small slack.  With --redirty, each block is
written again every 0.5 s until it reaches the host file: with
postpone=T it must still arrive T after its first write.

usage: delwri-timing.py [--redirty] URI HOSTFILE T SLACK
Run with /usr/bin/python3 (libnbd's bindings).
"""
import os
import sys
import time

import nbd

args = sys.argv[1:]
redirty = args[0] == "--redirty"
if redirty:
    args = args[1:]
uri, path, T, slack = args[0], args[1], float(args[2]), float(args[3])
BLOCK = 4096
N = 5
offsets = [i * 1024 * 1024 for i in range(N)]

h = nbd.NBD()
h.connect_uri(uri)
fd = os.open(path, os.O_RDONLY)

written = []
for i, off in enumerate(offsets):
    h.pwrite(bytes([0xa0 + i]) * BLOCK, off)
    written.append(time.monotonic())
    time.sleep(0.2)

arrived = [None] * N
rewritten = list(written)
deadline = written[-1] + T + 5
while None in arrived and time.monotonic() < deadline:
    now = time.monotonic()
    for i, off in enumerate(offsets):
        if arrived[i] is None and os.pread(fd, 1, off) == bytes([0xa0 + i]):
            arrived[i] = now
        elif arrived[i] is None and redirty and now - rewritten[i] >= 0.5:
            h.pwrite(bytes([0xa0 + i]) * BLOCK, off)
            rewritten[i] = time.monotonic()
    time.sleep(0.005)

bad = False
for i in range(N):
    if arrived[i] is None:
        print(f"block {i}: not in the host file {T + 5:.1f} s after its write")
        bad = True
        continue
    late = arrived[i] - written[i] - T
    print(f"block {i}: in the host file {arrived[i] - written[i]:.3f} s after "
          f"its write ({late:+.3f} s)")
    if late > slack:
        print(f"block {i}: {late:.3f} s late (allowed {slack} s)")
        bad = True
    if late < -0.05:
        print(f"block {i}: written back {-late:.3f} s early")
        bad = True
h.shutdown()
sys.exit(1 if bad else 0)
