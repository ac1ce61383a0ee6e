#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Type=notify: with NOTIFY_SOCKET set, the daemon sends READY=1 (with
# its MAINPID) only once its socket accepts connections, STOPPING=1 at
# SIGTERM, and STATUS= lines with the bytes left while a slow
# write-back runs; to a socket path or an abstract name ('@...').  The
# --run command does not inherit NOTIFY_SOCKET, and an unusable one is
# an error.  The service manager here is a Python listener on a
# datagram socket that, on READY=1, checks the NBD socket at once.
source ./functions.sh
source "$(dirname "$0")/fault-functions.sh"
set -e
set -x

requires_faultinject daemon
requires python3 --version
make_tmpdir
f="$tmp/disk.img"
truncate -s 4M "$f"

cat > "$tmp/listen.py" <<'EOF'
import os, socket, sys
# listen.py ADDRESS OUT NBD-SOCKET: log every datagram to OUT; after
# one with READY=1, say whether NBD-SOCKET accepts a connection.
addr, out, nbd = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
s.settimeout(120)
with open(out + ".tmp", "w") as f:
    f.write("bound\n")
os.rename(out + ".tmp", out)
while True:
    msg = s.recv(4096).decode()
    lines = msg.split("\n")
    if "READY=1" in lines:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(nbd)
            lines.append("nbd-socket=listening")
        except OSError as e:
            lines.append("nbd-socket=" + str(e))
        c.close()
    with open(out, "a") as f:
        f.write("".join(l + "\n" for l in lines) + "--\n")
EOF

# listen ADDRESS: the listener, logging to $tmp/notify.out.
listen ()
{
    rm -f "$tmp/notify.out"
    case $1 in @*) ;; *) rm -f "$1" ;; esac
    python3 "$tmp/listen.py" "$1" "$tmp/notify.out" "$tmp/sock" &
    listener=$!
    cleanup_fn kill_pid $listener
    wait_for 30 test -s "$tmp/notify.out"
}
got () { grep -qx -- "$1" "$tmp/notify.out"; }

# A socket path.
listen "$tmp/notify"
NOTIFY_SOCKET="$tmp/notify" start_server_unix \
    loopback fd="$f" blk commit=medium,delwri=60
wait_for 30 got READY=1
cat "$tmp/notify.out"
got nbd-socket=listening || fail "READY=1 came before the socket listened"
got "MAINPID=$server_pid"
got 'STATUS=serving 1 export'
got STOPPING=1 && fail "STOPPING=1 before SIGTERM"

stop_server
wait_for 10 got STOPPING=1

# Dirty blocks apart on a slow disk: the status follows the write-back.
# (The shim goes into the server only; it slows the disk only.)
kill_pid $listener
listen "$tmp/notify"
NOTIFY_SOCKET="$tmp/notify" start_fault_frontend daemon "$f" \
    loopback fd="$f" blk commit=medium,delwri=60
set_faults 'write slow ms=300'
wait_for 30 got READY=1
client-frontend-io "$uri" write 0 4k 0x11 write 8k 4k 0x12 write 16k 4k 0x13 \
    write 24k 4k 0x14 write 32k 4k 0x15 write 40k 4k 0x16 \
    write 48k 4k 0x17 write 56k 4k 0x18
kill -TERM "$frontend_pid"
wait_frontend_exit
test "$frontend_status" -eq 0
wait_for 10 grep -q '^STATUS=written back' "$tmp/notify.out"
cat "$tmp/notify.out"
grep -Eq '^STATUS=writing back: 32\.0 KiB left' "$tmp/notify.out" ||
    fail "no write-back status"
# In this order: ready, stopping, writing back, written back.
order=$(grep -E '^(READY=1|STOPPING=1|STATUS=writing|STATUS=written)' \
        "$tmp/notify.out" | cut -c1-14 | uniq | tr '\n' ' ')
test "$order" = "READY=1 STOPPING=1 STATUS=writing STATUS=written " ||
    fail "notifications out of order: $order"

# An abstract socket name.
kill_pid $listener
name="@nbdl-test-$$-$RANDOM"
listen "$name"
NOTIFY_SOCKET="$name" start_server_unix loopback fd="$f"
wait_for 30 got READY=1
got nbd-socket=listening || fail "READY=1 came before the socket listened"
stop_server
wait_for 10 got STOPPING=1

# The --run command is not the service: no NOTIFY_SOCKET for it.
rm -f "$tmp/sock"
out=$(NOTIFY_SOCKET="$name" nbd-loopback --run \
      'echo "notify=[${NOTIFY_SOCKET-unset}]"' loopback fd="$f")
test "$out" = "notify=[unset]" || fail "--run saw NOTIFY_SOCKET: $out"

# One that cannot be used is an error.
expect_fail_with 'NOTIFY_SOCKET=notify: expected an absolute path' \
    env NOTIFY_SOCKET=notify nbd-loopback -f -U "$tmp/sock" loopback fd="$f"
expect_fail_with "NOTIFY_SOCKET=$tmp/none: connect: No such file" \
    env NOTIFY_SOCKET="$tmp/none" nbd-loopback -f -U "$tmp/sock" loopback fd="$f"
