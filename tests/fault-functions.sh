# SPDX-License-Identifier: BSD-3-Clause
# Helpers of the fault-injection tests (test-fault-*.sh), sourced after
# functions.sh.  The shim is tests/faultinject.c (its top comment has
# the rule syntax); it is preloaded into the server only, never into
# the clients or the test itself.

faultinject_so="$abs_builddir/.libs/faultinject.so"

# asan_runtime_of BINARY: the ASan runtime BINARY links, or nothing.
asan_runtime_of ()
{
    ldd "$1" 2>/dev/null |
        sed -n 's/^[[:space:]]*libasan\.so[^ ]* => \([^ ]*\) .*/\1/p'
}

# requires_faultinject FRONTEND: skip unless the shim and the front end
# are there.  An ASan build preloads the ASan runtime first.
requires_faultinject ()
{
    requires_frontend "$1"
    test -f "$faultinject_so" || skip "the shim was not built ($faultinject_so)"
    requires client-frontend-io --help
}

# start_fault_frontend FRONTEND FILE ARGS...: start_frontend (on
# $tmp/sock, pidfile $tmp/pid) with the shim preloaded and aimed at
# FILE; rules go in $fault_control (set_faults; $initial_faults, if
# set, are in force from the start), injected faults are
# logged in $fault_log, the server's output in $tmp/server.log.  Sets
# $frontend_pid, $frontend_sock, $uri.
start_fault_frontend ()
{
    local fe=$1 file=$2 pidfile="$tmp/pid" asan= i
    local -a cmd env
    shift 2
    fault_control="$tmp/faults"
    fault_log="$tmp/faults.log"
    frontend_sock="$tmp/sock"
    rm -f "$pidfile" "$frontend_sock" "$fault_control"
    test -z "${initial_faults:-}" ||
        printf '%s\n' "$initial_faults" >"$fault_control"
    : >>"$fault_log"
    frontend_args "$fe" "$@"
    case $fe in
    plugin)
        asan=$(plugin_asan_preload)
        cmd=(nbdkit -f -P "$pidfile" -U "$frontend_sock"
             "$loopback_plugin" "${frontend_argv[@]}")
        if plugin_valgrind; then
            valgrind_args
            cmd=("${valgrind_argv[@]}" "${cmd[@]}")
        fi
        test -z "$asan" || env=(ASAN_OPTIONS="$(plugin_asan_options)")
        ;;
    daemon)
        asan=$(asan_runtime_of "$(command -v nbd-loopback)")
        cmd=(nbd-loopback -f -P "$pidfile" -U "$frontend_sock"
             "${frontend_argv[@]}")
        ;;
    esac
    env LD_PRELOAD="${asan:+$asan:}$faultinject_so" \
        FAULTINJECT_FILE="$file" FAULTINJECT_CONTROL="$fault_control" \
        FAULTINJECT_LOG="$fault_log" "${env[@]}" \
        "${cmd[@]}" >>"$tmp/server.log" 2>&1 &
    frontend_pid=$!
    cleanup_fn kill_pid "$frontend_pid"
    cleanup_fn '[ "$status" -eq 0 ] || [ "$status" -eq 77 ] ||
        { echo "--- server log:"; cat "$tmp/server.log"; } >&2'
    for (( i = 0; i < 300; ++i )); do
        test -s "$pidfile" && break
        kill -0 "$frontend_pid" 2>/dev/null || {
            cat "$tmp/server.log" >&2
            fail "the $fe server exited instead of starting"
        }
        sleep 0.1
    done
    test -s "$pidfile" || fail "the $fe server did not start within 30 s"
    uri=$(frontend_uri lo0)
}

# set_faults RULE...: replace the rules (one argument per rule line).
# The shim sees the new file at the next host I/O; counters restart.
set_faults ()
{
    printf '%s\n' "$@" >"$fault_control.new"
    mv "$fault_control.new" "$fault_control"
}
clear_faults ()
{
    rm -f "$fault_control"
}

# faults_injected [PATTERN]: how many faults the shim injected
# (matching the grep -E PATTERN, e.g. 'pwrite.* EIO').
faults_injected ()
{
    grep -Ec -- "${1:-.}" "$fault_log" || :
}

# server_alive: the server has neither crashed nor exited.
server_alive ()
{
    kill -0 "$frontend_pid" 2>/dev/null ||
        fail "the server died (see its log)"
}

# fault_figures: one line of figures for the test's log.
fault_figures ()
{
    echo "figures: $frontend faults injected: " \
         "EIO $(faults_injected ' EIO ')" \
         "ENOSPC $(faults_injected ' ENOSPC ')" \
         "short $(faults_injected ' short ')" \
         "(read $(faults_injected '^(pread|preadv|read)')," \
         "write $(faults_injected '^(pwrite|pwritev|write)')," \
         "sync $(faults_injected '^(fdatasync|fsync)')," \
         "fallocate $(faults_injected '^fallocate'))"
}

# faults_at_least N [PATTERN]: for wait_for.
faults_at_least ()
{
    test "$(faults_injected "${2:-.}")" -ge "$1"
}
