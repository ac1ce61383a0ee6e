# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-badinput.sh, test-vm-plugin-badinput.sh),
# sourced with $frontend set: what a kernel client does wrong
# (guest-badinput.sh), against a server on a Unix socket whose exports
# lo0 and lo1 reach the guest through two virtio-serial ports (no
# network, no root).  nbd0 is detached under a mounted file system; a
# second server is started on lo1's file, which the first holds with
# denyrw, and must be refused with a message naming the file; QEMU is
# SIGKILLed while the guest writes to nbd1.  After each the server
# serves on: the guest's other device, and at the end a client of the
# host's on both exports.  The server logs each event, exits 0 on
# SIGTERM, and every file the guest fsynced is in the host files.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
requires /usr/bin/python3 -c 'import nbd'
vm_host_setup nonet
truncate -s 64M "$tmp/a.img" "$tmp/b.img"
sock="$tmp/nbd.sock"
[ "$frontend" = daemon ] && vm_server_opts=(--timeout 600)

vm_host_request ()
{
    case $1 in
    second-server)
        # The same front end on lo1's file, on a socket of its own.
        local st=0
        case $frontend in
        daemon)
            timeout 60 nbd-loopback -f -U "$tmp/second.sock" \
                loopback fd="$tmp/b.img" > "$tmp/second.log" 2>&1 || st=$?
            ;;
        plugin)
            # nbdkit takes the locks when the plugin opens the file,
            # before it listens.
            loopback_nbdkit_args -f -U "$tmp/second.sock" "$loopback_plugin" \
                loopback=fd="$tmp/b.img"
            timeout 60 "${loopback_nbdkit_argv[@]}" > "$tmp/second.log" 2>&1 || st=$?
            ;;
        esac
        cat "$tmp/second.log"
        test "$st" -ne 0 && test "$st" -ne 124 ||
            fail "a second server on a file held with denyrw was not refused (status $st)"
        grep -q "$tmp/b.img" "$tmp/second.log" ||
            fail "the refusal does not name the file"
        ;;
    kill-qemu)
        kill -KILL "$(cat "$vm_qemu_pidfile")"
        ;;
    *) fail "unknown request '$1' from the guest" ;;
    esac
}

vm_unix_socket=$sock vm_start_server "$frontend" \
    loopback fd="$tmp/a.img",fd="$tmp/b.img" blk cache=16m
vm_cpio=("$vm_imgdir/socat.cpio.gz")
vm_qemu_args=(
    -device virtio-serial-pci,romfile=
    -chardev "socket,id=c0,path=$sock" -device virtserialport,chardev=c0,name=nbd0
    -chardev "socket,id=c1,path=$sock" -device virtserialport,chardev=c1,name=nbd1
)
vm_run guest-badinput.sh
# QEMU is gone; the server serves a new client on both exports.
kill -0 "$frontend_pid" || fail "the server died with the guest"
/usr/bin/python3 - "$sock" <<'PY'
import sys, nbd
for name in ("lo0", "lo1"):
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(sys.argv[1])
    buf = h.pread(4096, 0)
    h.pwrite(buf, 0)
    h.flush()
    h.shutdown()
print("vm: host: lo0 and lo1 served after the guest vanished")
PY
stop_frontend
grep -v -E 'NBD_CMD_(READ|WRITE|FLUSH)|pread|pwrite|flush|worker thread|: debug: loopback: (can_|is_|get_size|block_size|prepare|finalize|open|close)' "$tmp/server.log" | tail -60
# The daemon says how each connection ended.  nbdkit (1.32) logs a
# client's end only with -v, and not when it vanishes in the middle of
# a request: for the plugin, serving on is the check.
if [ "$frontend" = daemon ]; then
    vm_log_require "the guest's vanishing" \
        'client closed the connection|connection reset by the client' x
fi
# nbd0's detach, and the host's two clients.
vm_log_disc_count 3

# The host files, their journals replayed on copies: the guest's
# fsynced files.
for x in a b; do
    cp "$tmp/$x.img" "$tmp/$x.copy"
    st=0
    e2fsck -fy "$tmp/$x.copy" || st=$?
    [ "$st" -le 1 ] || fail "e2fsck -fy on a copy of $x.img: status $st"
done
debugfs -R 'cat /a1' "$tmp/a.copy" > "$tmp/a1" 2>/dev/null
tr -d '\r' < "$vm_console" | grep -q "$(sha256sum < "$tmp/a1" | cut -d' ' -f1)" ||
    fail "a1 on the host differs from the file the guest wrote"
vm_check_image "$tmp/b.copy"
