#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# 1000 sockets that never start the handshake, reopened as soon as the
# daemon closes them: a real client from another address (or user)
# still gets in (NBD_OPT_GO with nbdinfo) within 2 s every time,
# because connections in the handshake have a budget of their own
# (--max-handshakes, --max-handshakes-per-address) and the oldest idle
# one makes room for a newcomer.  Before, they took the --max-
# connections slots and everyone else got NBD_REP_ERR_POLICY until the
# handshake timeout.  Over TCP (per address) and the Unix socket (per
# user).  (From the very address of the idle ones a client may be
# taken for one of them before it has sent its first bytes.)
source ./functions.sh
source "$(dirname "$0")/hostile-functions.sh"
set -e
set -x

requires_frontend daemon
requires hostile-client --help
requires nbdinfo --version
make_tmpdir
truncate -s 8M "$tmp/disk.img"
n=1000
if [ "$(ulimit -n)" -lt $((n + 200)) ]; then
    ulimit -n $((n + 200)) 2>/dev/null ||
        skip "needs $((n + 200)) file descriptors (ulimit -n is $(ulimit -n))"
fi

# try URI: nbdinfo (a full handshake, NBD_OPT_GO) within 2 s, 10 times.
try ()
{
    local i t0 ms worst=0
    for (( i = 0; i < 10; i++ )); do
        t0=$(date +%s%N)
        timeout 10 nbdinfo --size "$1" > /dev/null ||
            fail "attempt $i: nbdinfo $1 failed"
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        [ "$ms" -gt "$worst" ] && worst=$ms
        [ "$ms" -le 2000 ] || fail "attempt $i: the handshake took $ms ms"
        sleep 0.2
    done
    echo "figures: $2: 10 real clients among $n idle ones: slowest $worst ms"
}

# TCP: the idle sockets come from 127.0.0.1, the real client from ::1
# (the daemon socket-activated on both).
requires systemd-socket-activate --version
for (( i = 0; i < 20; ++i )); do
    port=$(( 20000 + RANDOM % 40000 ))
    systemd-socket-activate -l "127.0.0.1:$port" -l "[::1]:$port" \
        nbd-loopback --max-connections $n loopback fd="$tmp/disk.img" \
        > "$tmp/server.log" 2>&1 &
    server_pid=$!
    cleanup_fn kill_pid $server_pid
    wait_for 30 answers_or_gone $server_pid \
        nbdinfo --size "nbd://[::1]:$port/lo0"
    kill -0 $server_pid 2>/dev/null && break
done
hostile-client hold tcp:127.0.0.1:$port $n 12 > "$tmp/hold.out" &
holder=$!
cleanup_fn kill_pid $holder
wait_for 30 grep -q "^holding $n" "$tmp/hold.out"
try "nbd://[::1]:$port/lo0" "TCP (idle ones from 127.0.0.1, the client from ::1)"
wait "$holder" || fail "hostile-client hold failed"
cat "$tmp/hold.out"
grep -q "closed before it finished the handshake, to make room for a newer one (--max-handshakes-per-address 16)" \
    "$tmp/server.log"
nbdinfo --size "nbd://127.0.0.1:$port/lo0"      # 127.0.0.1 is served again
stop_server

# The Unix socket: the idle ones from another user (nobody).
requires setpriv --version
chmod 755 "$tmp"
( umask 0; start_server_unix --max-connections $n loopback fd="$tmp/disk.img"
  echo "$server_pid" > "$tmp/unix.pid" )
server_pid=$(cat "$tmp/unix.pid")
sock=$tmp/sock
cleanup_fn kill_pid $server_pid
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$(command -v hostile-client)" hold "$sock" $n 12 > "$tmp/hold.out" &
holder=$!
cleanup_fn kill_pid $holder
wait_for 30 grep -q "^holding $n" "$tmp/hold.out"
try "$(nbd_uri lo0)" "Unix socket (idle ones from user nobody)"
wait "$holder" || fail "hostile-client hold failed"
cat "$tmp/hold.out"
grep -q "closed before it finished the handshake, to make room for a newer one (--max-handshakes-per-address 16)" \
    "$tmp/server.log"
kill -TERM "$server_pid"
for (( i = 0; i < 300; i++ )); do alive "$server_pid" || break; sleep 0.1; done
alive "$server_pid" && fail "the server did not stop"
grep -q "shutting down" "$tmp/server.log"
