# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-load-daemon-soak.sh, test-load-plugin-soak.sh):
# load and soak.  64 connections (multi-conn), each with 4 requests in
# flight, of mixed random I/O (writes up to 256 KiB, FUA, zeroes,
# flushes, prefetch, reads verified against the newest acknowledged
# write) on a 64 MiB export with cache=32m; then SIGTERM with requests
# in flight.  Checked: no request fails, the server exits 0, the host
# file holds every acknowledged write, no request waits more than
# 30 s, and the server's resident memory (VmHWM, sampled every 50 ms)
# grows by no more than cache= plus the per-connection bound.
#
# The per-connection bound, what one client can make the server hold
# besides the cache: for the daemon, the requests it has in flight
# (here 4 x 256 KiB; the daemon stops reading a connection at 128
# requests or 64 MiB held, connection.c), its 64 KiB input buffer and
# 64 KiB of bookkeeping.  For nbdkit, run with --threads 4 (one thread
# per request in flight), per thread: the request buffer nbdkit
# allocates (here at most 256 KiB), the 1 MiB bounce buffer of a
# write-back the thread may do in the cache meanwhile (cache/flush.c),
# and 64 KiB of stack.  Plus 32 MiB for the process as a whole (stacks,
# malloc arenas, the daemon's worker threads' bounce buffers).
#
# nbdkit mallocs a buffer for every request, on 256 threads here:
# glibc keeps much of what they free, so the resident size creeps up
# for minutes whatever the plugin (nbdkit's own file plugin, no cache:
# 270 MiB in 60 s with its default 16 threads per connection; this
# plugin: 245 MiB in 20 s at --threads 4 even with one malloc arena).
# No leak: ASan finds none in the plugin, and 4 connections plateau at
# 60 MiB.  So nbdkit runs with MALLOC_MMAP_THRESHOLD_=128k: freed
# request buffers go back to the system and VmHWM measures what is
# held, which is what the bound is about (140-340 MiB measured, the
# more the busier the machine: more threads in a write-back at once).
#
# CI: 15 s.  LONG=1: 120 s.  SOAK_SECONDS=N overrides.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires stress-client --help
make_tmpdir
f="$tmp/disk.img"

if [ "${LONG:-0}" != 0 ]; then seconds=${SOAK_SECONDS:-120}
else seconds=${SOAK_SECONDS:-15}; fi
conns=64 depth=4 max_len=$((256 * 1024))
cache_mib=32
case $frontend in
daemon) per_conn=$(( depth * max_len + 128 * 1024 )) ;;
plugin) per_conn=$(( 4 * (1024 * 1024 + max_len + 64 * 1024) )) ;;
esac
allowed=$(( cache_mib * 1024 * 1024 + conns * per_conn + 32 * 1024 * 1024 ))
# ASan keeps freed memory in quarantine and shadows the rest: the
# figures are printed, the bound is checked in the normal build only.
if [ -n "$(plugin_asan_runtime)" ]; then allowed=0; fi
echo "allowed growth of the server's VmHWM: $allowed bytes"

frontend_args "$frontend" \
    loopback nio=@NIO@,async,blksz=512,fd="$f" \
    blk cache=@CACHE@,commit=@COMMIT@,delwri=@DELWRI@
case $frontend in
plugin)
    loopback_nbdkit_args --threads 4 -f -P "$tmp/pid" -U "$tmp/sock" \
        "$loopback_plugin" "${frontend_argv[@]}"
    server=(env MALLOC_MMAP_THRESHOLD_=131072 "${loopback_nbdkit_argv[@]}")
    ;;
daemon)
    server=(nbd-loopback -f -P "$tmp/pid" -U "$tmp/sock"
            "${frontend_argv[@]}")
    ;;
esac

stress-client soak --file "$f" --socket "$tmp/sock" --pidfile "$tmp/pid" \
    --size 64M --conns $conns --depth $depth --max-len $max_len \
    --seconds "$seconds" --cache ${cache_mib}m --delwri 2 --nio 2 \
    --max-growth $allowed ${SOAK_SEED:+--seed "$SOAK_SEED"} \
    -- "${server[@]}" >"$tmp/figures" 2>"$tmp/stderr" || {
    status=$?
    tail -50 "$tmp/stderr" >&2
    cat "$tmp/figures"
    fail "the soak failed (status $status)"
}
head -5 "$tmp/stderr"
sed "s/^figures: /figures: $frontend /" "$tmp/figures"
if [ "$allowed" -eq 0 ]; then checked=" (not checked under ASan)"; else checked=; fi
echo "figures: $frontend soak bound: cache=${cache_mib}m +" \
     "$conns x $((per_conn / 1024)) KiB per connection + 32 MiB" \
     "of process overhead${checked}"
