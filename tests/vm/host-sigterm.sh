# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-sigterm.sh, test-vm-plugin-sigterm.sh),
# sourced with $frontend set: the server stopped with SIGTERM while the
# kernel client is attached and writing (guest-sigterm.sh).  The
# guest's writes are direct and never flushed, and delwri=600 keeps
# them in the cache, so only the write-back at SIGTERM puts them in
# the host file.  The guest sees I/O errors, the server exits 0, and
# every chunk the server acknowledged is in the file.
#
# The daemon writes back, closes the connections and exits.  nbdkit
# (1.32) keeps the connection open and fails each request with
# ESHUTDOWN until the client goes; the kernel client turns that into
# I/O errors, and nbdkit exits (and the plugin writes back) once the
# guest detaches.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
requires /usr/bin/python3 --version
vm_host_setup
img="$tmp/disk.img"
chunks=1024
truncate -s $(( chunks * 64 ))K "$img"
head -c 1M /dev/urandom > "$tmp/data"
vm_files=("$tmp/data")

stopped=0
vm_host_request ()
{
    case $1 in
    sigterm-server)
        kill -TERM "$frontend_pid"
        stopped=1
        ;;
    *) fail "unknown request '$1' from the guest" ;;
    esac
}

vm_start_server "$frontend" loopback fd="$img" blk cache=96m,delwri=600
vm_run guest-sigterm.sh CHUNKS=$chunks NBD_TIMEOUT=30
test "$stopped" = 1 || fail "the guest never asked for the SIGTERM"
# The daemon exits at once; nbdkit once the client has detached.
wait_frontend_exit
test "$frontend_status" -eq 0 ||
    fail "the server exited with status $frontend_status after SIGTERM"
# No flush came: what is in the file was written back at SIGTERM.
n=$(vm_log_count 'NBD_CMD_FLUSH|debug: loopback: flush')
test "$n" -eq 0 || fail "the kernel sent $n flushes"
acked=$(tr -d '\r' < "$vm_console" | sed -n 's/^VMTEST: ACKED \([0-9][0-9]*\)$/\1/p')
test -n "$acked" || fail "the guest did not say how many chunks were acknowledged"
echo "vm: $acked chunks acknowledged before the server stopped"
/usr/bin/python3 - "$img" "$tmp/data" "$acked" <<'PY'
import sys
img = open(sys.argv[1], 'rb').read()
data = open(sys.argv[2], 'rb').read()
acked = int(sys.argv[3])
c = 65536
bad = [i for i in range(acked)
       if img[i * c:(i + 1) * c] != data[(i % 16) * c:(i % 16 + 1) * c]]
if bad:
    sys.exit("%d of %d acknowledged chunks are not in the file, first %d"
             % (len(bad), acked, bad[0]))
print("vm: host: all %d acknowledged chunks are in the file" % acked)
PY
