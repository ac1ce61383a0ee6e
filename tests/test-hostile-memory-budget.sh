#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Sixteen clients that pipeline 1 MiB READs and never read a reply
# cost the daemon no more than its memory budget (--max-buffered,
# 64 MiB by default) and a request each, not 64 MiB each: resident
# memory stays within cache= + 96 MiB while they hold on, the
# well-behaved client next to them is served without errors or long
# waits, and once --stall-timeout has cut them off the memory goes
# back to the system (within cache= + 32 MiB).
source ./functions.sh
source "$(dirname "$0")/hostile-functions.sh"
set -e
set -x

requires_frontend daemon
requires stress-client --help
requires hostile-client --help
is_asan_build && skip "memory bounds are not measured under ASan (quarantine)"
make_tmpdir
truncate -s 8M "$tmp/good.img"
head -c 256M /dev/urandom > "$tmp/big.img"   # data, not holes

cache_mib=32
start_server_unix --stall-timeout 8 \
    loopback blksz=512,async,fd="$tmp/good.img",fd="$tmp/big.img" \
    blk cache=${cache_mib}m

hostiles=()
for (( i = 0; i < 16; i++ )); do
    hostile-client stop-reading "$sock" lo1 40 > "$tmp/hostile$i.out" &
    hostiles+=($!)
    cleanup_fn kill_pid $!
done
good_client 5 lo0 "$tmp/good.img"
held=$(( $(vm_kib "$server_pid" VmRSS) / 1024 ))
peak=$(( $(vm_kib "$server_pid" VmHWM) / 1024 ))
echo "figures: 16 stop-reading clients: server RSS $held MiB, peak $peak MiB" \
     "(cache= $cache_mib MiB; allowed: cache= + 96 MiB)"
[ "$peak" -le $(( cache_mib + 96 )) ] ||
    fail "16 stop-reading clients took the server to $peak MiB resident"

for pid in "${hostiles[@]}"; do
    wait "$pid" || fail "a stop-reading client was not cut off"
done
grep -c 'client read no reply for 8 s: closing' "$tmp/server.log"
sleep 2                                 # the next close trims at most 1/s
nbdinfo --size "$(nbd_uri lo0)"         # still serving (and a close)
sleep 0.5
after=$(( $(vm_kib "$server_pid" VmRSS) / 1024 ))
echo "figures: after they left: server RSS $after MiB (allowed: cache= + 32 MiB)"
[ "$after" -le $(( cache_mib + 32 )) ] ||
    fail "the server held $after MiB after the clients left"
stop_server
