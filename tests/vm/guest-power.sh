# SPDX-License-Identifier: BSD-3-Clause
# Guest side of host-power.sh: the server runs here, in the guest,
# exporting a file on ext4 on the virtio disk /dev/vda (whose image the
# host's QEMU writes with cache=writeback: a flush in the guest becomes
# an fdatasync on the host).  power-client writes to it with FUA and
# FLUSH and records each reply on the console, until the host cuts the
# power (SIGKILL of QEMU) at a random moment after "P READY".
# Parameters: SERVER (the command line, with @FILE@, @SOCK@, @PID@),
# EXPORT, EXPORT_SIZE, SEED.
mkdir -p /mnt/d
mount -t ext4 /dev/vda /mnt/d || fail "mount /dev/vda"
file=/mnt/d/export.img
sock=/tmp/nbd.sock
truncate -s "$EXPORT_SIZE" "$file" || fail "truncate $file"
# The empty file itself is durable before the server starts.
sync
pidfile=/tmp/server.pid
cmd=$(echo "$SERVER" | sed "s|@FILE@|$file|g; s|@SOCK@|$sock|g; s|@PID@|$pidfile|g")
step "server: $cmd"
$cmd > /tmp/server.log 2>&1 &
spid=$!
n=0
# The pidfile is written once the server accepts connections.
until [ -s "$pidfile" ]; do
    n=$((n + 1))
    if [ "$n" -ge 600 ] || ! kill -0 "$spid" 2>/dev/null; then
        cat /tmp/server.log
        fail "the server did not listen on $sock"
    fi
    sleep 0.1
done
step "server listening"
host_request cut
/opt/power/power-client run "$sock" "$EXPORT" "$SEED" 300 ||
    { cat /tmp/server.log; fail "power-client"; }
fail "the client ran to its end: the host never cut the power"
