# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-crash-daemon-kill9.sh, test-crash-plugin-kill9.sh):
# crash consistency under kill -9 and power cuts (SPEC section 6).
# stress-client runs kill cycles: a fresh host file, the server,
# several connections of random writes, zeroes, FUA writes, flushes and
# verified reads, SIGKILL at a random moment, then every write that had
# to survive is looked for, chunk by chunk (the rules are at the top of
# stress-client.c): in the host file (kill -9), and in the image a host
# power cut would have left, rebuilt from the journal the preloaded
# shim (faultinject.c) keeps of host writes and syncs.  The cycles
# rotate over commit=none, low, medium and high, and over delwri=,
# nio=, cache= and sync/async.
#
# CI: 52 cycles (13 per commit level), and for the daemon 26 more of
# its io_uring path.  LONG=1: 2000 cycles.
# CRASH_CYCLES=N, CRASH_MAX_MS=N (the kill comes at most N ms into a
# cycle) and CRASH_SEED=N override; a failure prints the seed
# and cycle to replay.
source ./functions.sh
source "$(dirname "$0")/fault-functions.sh"
set -e
set -x

requires_frontend "$frontend"
requires stress-client --help
make_tmpdir
f="$tmp/disk.img"

if [ "${LONG:-0}" != 0 ]; then cycles=${CRASH_CYCLES:-2000}
else cycles=${CRASH_CYCLES:-52}; fi

# run_cycles AIOD CYCLES: the cycles, the daemon with blk option AIOD
# (noaiod or nothing).  The shim journals the pwrite and fdatasync
# calls it sees, not io_uring's: the daemon's power-cut cycles run with
# noaiod (host writes and syncs on the I/O threads), and its io_uring
# path (durable writes linked to their fdatasync) gets kill -9 cycles
# of its own, checked in the host file.
run_cycles ()
{
local aiod=$1 cycles=$2
frontend_args "$frontend" \
    loopback nio=@NIO@,@SYNC@,blksz=512,fd="$f" \
    blk cache=@CACHE@,commit=@COMMIT@,delwri=@DELWRI@$aiod
env=()
case $frontend in
plugin)
    asan=$(plugin_asan_preload)
    server=(nbdkit -f -P "$tmp/pid" -U "$tmp/sock" "$loopback_plugin"
            "${frontend_argv[@]}")
    if plugin_valgrind; then
        valgrind_args
        server=("${valgrind_argv[@]}" "${server[@]}")
    fi
    test -z "$asan" || env=(ASAN_OPTIONS="$(plugin_asan_options)")
    ;;
daemon)
    asan=$(asan_runtime_of "$(command -v nbd-loopback)")
    server=(nbd-loopback -f -P "$tmp/pid" -U "$tmp/sock"
            "${frontend_argv[@]}")
    ;;
esac
# The journal of host writes and syncs, for the power-cut images.
# (An ASan build needs its runtime first in LD_PRELOAD.)
journal=()
preload=$asan
if [ "$frontend" = daemon ] && [ -z "$aiod" ]; then
    echo "io_uring cycles: checking kill -9 only, not power cuts"
elif [ -f "$faultinject_so" ]; then
    preload="${asan:+$asan:}$faultinject_so"
    env+=(FAULTINJECT_FILE="$f" FAULTINJECT_JOURNAL="$tmp/journal")
    journal=(--journal "$tmp/journal")
else
    echo "the shim is not built: checking kill -9 only, not power cuts"
fi
server=(env ${preload:+LD_PRELOAD="$preload"} "${env[@]}" "${server[@]}")

# The client starts, kills and reaps every server itself (and a
# server outlives it by no more than its own death: PR_SET_PDEATHSIG).
stress-client crash --file "$f" --socket "$tmp/sock" --pidfile "$tmp/pid" \
    --size 8M --conns 4 --depth 8 --cycles "$cycles" \
    --max-ms "${CRASH_MAX_MS:-150}" \
    ${CRASH_SEED:+--seed "$CRASH_SEED"} "${journal[@]}" \
    -- "${server[@]}" >"$tmp/figures" 2>"$tmp/stderr" || {
    status=$?
    tail -50 "$tmp/stderr" >&2
    cat "$tmp/figures"
    fail "crash consistency failed (status $status); to replay:" \
         "CRASH_SEED=<seed above> $0"
}
grep -E 'seed|^stress' "$tmp/stderr" | head -5
sed "s/^figures: /figures: $frontend${aiod:+ ${aiod#,}} /" "$tmp/figures"
}

if [ "$frontend" = daemon ]; then
    run_cycles ,noaiod "$cycles"
    run_cycles "" $(( (cycles + 1) / 2 ))
else
    run_cycles "" "$cycles"
fi
