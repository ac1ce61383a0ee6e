#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# SIGKILL at random points while two connections write and checkpoints
# are taken, 200 times: after each restart no bitmap under-reports.
# Every write acknowledged in the killed run is marked in the live
# bitmap or in a bitmap that run's checkpoints froze, every checkpoint
# that answered still exists, and the restart warns that it loaded the
# bitmaps entirely dirty.  (CYCLES in the environment changes the
# count.)
source ./functions.sh
set -e
set -x

requires /usr/bin/python3 -c 'import nbd'
make_tmpdir
truncate -s 16M "$tmp/disk.img"
export tmp
/usr/bin/python3 - <<'PY'
import atexit, os, random, signal, socket, subprocess, threading, time
import nbd

tmp = os.environ["tmp"]
cycles = int(os.environ.get("CYCLES", "200"))
sock, ctl, pidfile = tmp + "/sock", tmp + "/ctl", tmp + "/pid"
G = 65536
uri = "nbd+unix:///lo0?socket=" + sock
log = open(tmp + "/server.log", "ab")

current = []                    # the server running now, for the end

def start():
    if os.path.exists(pidfile):
        os.unlink(pidfile)
    p = subprocess.Popen(["nbd-loopback", "-f", "-P", pidfile, "-U", sock,
                          "--control", ctl, "loopback",
                          "cbt,fd=" + tmp + "/disk.img", "blk", "cache=16m"],
                         stdout=log, stderr=subprocess.STDOUT)
    current[:] = [p]
    for _ in range(300):
        if os.path.exists(pidfile) and os.path.getsize(pidfile) > 0:
            return p
        assert p.poll() is None, "the server exited"
        time.sleep(0.01)
    raise SystemExit("the server did not start")

def command(line):
    s = socket.socket(socket.AF_UNIX)
    s.connect(ctl)
    s.sendall((line + "\n").encode())
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    return out.decode().splitlines()

def bitmap(name):
    h = nbd.NBD()
    ctx = "qemu:dirty-bitmap:" + name
    h.add_meta_context(ctx)
    h.connect_uri(uri)
    assert h.can_meta_context(ctx), name
    dirty = set()
    def cb(meta, off, ents, err):
        for j in range(0, len(ents), 2):
            if ents[j + 1] & 1:
                dirty.update(range(off // G, (off + ents[j] + G - 1) // G))
            off += ents[j]
        return 0
    h.block_status(h.get_size(), 0, cb)
    h.shutdown()
    return dirty

def kill_current():
    # However the check ends, no server of ours is left behind.
    for p in current:
        if p.poll() is None:
            p.kill()
            p.wait()
atexit.register(kill_current)

prev_acked, prev_frozen = set(), []
warned = 0
for cycle in range(cycles):
    before = os.path.getsize(tmp + "/server.log")
    p = start()
    # Check the run that was killed.
    names = [l.split()[1] for l in command("list lo0")[:-1]]
    for n in prev_frozen:
        assert n in names, "checkpoint %s lost (have %s)" % (n, names)
    if prev_acked:
        covered = bitmap("live")
        for n in prev_frozen:
            covered |= bitmap(n)
        missing = prev_acked - covered
        assert not missing, "cycle %d: acknowledged writes not in any bitmap: %s" \
            % (cycle, sorted(missing)[:10])
    with open(tmp + "/server.log", "rb") as f:
        f.seek(before)
        if b"did not stop cleanly" in f.read():
            warned += 1
    for n in names:
        if n != "live":
            assert command("delete lo0 " + n)[-1] == "ok"

    # This run: two writers and checkpoints, killed at a random moment.
    acked, frozen = set(), []
    stop = threading.Event()
    def writer(seed):
        r = random.Random(seed)
        try:
            h = nbd.NBD()
            h.connect_uri(uri)
            while not stop.is_set():
                g = r.randrange(256)
                h.pwrite(b"k" * 4096, g * G + r.randrange(15) * 4096)
                acked.add(g)
        except nbd.Error:
            pass
    def checkpointer():
        n = 0
        while not stop.is_set():
            try:
                name = "c%d_%d" % (cycle, n)
                if command("checkpoint lo0 " + name)[-1:] == ["ok"]:
                    frozen.append(name)
                n += 1
            except OSError:
                return
            time.sleep(0.002)
    threads = [threading.Thread(target=writer, args=(cycle * 2 + k,))
               for k in range(2)] + [threading.Thread(target=checkpointer)]
    for t in threads:
        t.start()
    time.sleep(random.uniform(0.005, 0.06))
    p.send_signal(signal.SIGKILL)
    p.wait()
    stop.set()
    for t in threads:
        t.join()
    prev_acked, prev_frozen = acked, frozen

p = start()
p.send_signal(signal.SIGTERM)
assert p.wait() == 0
print("cycles", cycles, "restarts warned of an unclean stop", warned)
assert warned >= cycles - 1
PY
