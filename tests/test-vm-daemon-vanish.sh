#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A kernel client's host vanishes over TCP (vm/guest-vanish.sh: QEMU
# SIGKILLed while the guest writes): no FIN or RST ever reaches the
# daemon.  With --stall-timeout 4 the daemon's keepalive and TCP user
# timeout close that connection within a bound, with a warning that
# says why; meanwhile and afterwards it serves another client, and it
# exits 0 on SIGTERM.  (nbdkit owns the plugin's sockets: this is the
# daemon's.)
source ./functions.sh
set -e
set -x

frontend=daemon
source "$abs_top_srcdir/tests/vm/vm-functions.sh"
requires /usr/bin/python3 -c 'import nbd'
requires ss -V
vm_host_setup
truncate -s 64M "$tmp/disk.img"
vm_server_opts=(--stall-timeout 4)

vm_host_request ()
{
    case $1 in
    kill-qemu) kill -KILL "$(cat "$vm_qemu_pidfile")" ;;
    *) fail "unknown request '$1' from the guest" ;;
    esac
}
established ()
{
    vm_in ss -Htn state established "( sport = :$vm_port )" | wc -l
}

vm_start_server daemon loopback fd="$tmp/disk.img" blk cache=16m
vm_run guest-vanish.sh
start=$SECONDS
n=$(established)
echo "vm: $n connections established after QEMU was killed"
# Another client is served while the dead one is still open.
vm_in /usr/bin/python3 - "$vm_server_addr" "$vm_port" <<'PY'
import sys, nbd
h = nbd.NBD()
h.set_export_name("lo0")
h.connect_tcp(sys.argv[1], sys.argv[2])
h.pwrite(b"x" * 4096, 0)
h.flush()
assert h.pread(4096, 0) == b"x" * 4096
h.shutdown()
print("vm: host: lo0 served beside the vanished client")
PY
# The vanished client's connection: closed, with a warning, within
# the stall timeout and a few keepalive intervals (bounded: 30 s).
for (( i = 0; i < 300; ++i )); do
    grep -q "stopped answering" "$tmp/server.log" && break
    sleep 0.1
done 2>/dev/null
vm_in ss -tnoi "( sport = :$vm_port )" || :
grep -v -E 'NBD_CMD_(READ|WRITE)' "$tmp/server.log" | tail -8
grep "stopped answering" "$tmp/server.log" ||
    fail "no warning about the vanished client within 30 s"
echo "vm: the vanished client was closed after $(( SECONDS - start )) s"
test "$(established)" -eq 0 || fail "a connection is still established"
stop_frontend
