# SPDX-License-Identifier: BSD-3-Clause
# Helpers of the hostile-client tests (test-hostile-*.sh), sourced
# after functions.sh.

# vm_kib PID FIELD: a /proc/PID/status figure (VmRSS, VmHWM) in KiB.
vm_kib ()
{
    sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB$/\1/p" "/proc/$1/status"
}

# open_fds PID: how many file descriptors the process has open.
open_fds ()
{
    ls "/proc/$1/fd" | wc -l
}

# is_asan_build: memory bounds are not checked under ASan (quarantine).
is_asan_build ()
{
    test -n "$(ldd "$(command -v nbd-loopback)" | grep libasan)"
}

# check_growth PID BASE_KIB ALLOWED_MIB WHAT: the server's VmHWM grew
# by at most ALLOWED_MIB over BASE_KIB (printed either way).
check_growth ()
{
    local hwm growth
    hwm=$(vm_kib "$1" VmHWM)
    growth=$(( (hwm - $2) / 1024 ))
    echo "figures: $4: server VmHWM $((hwm / 1024)) MiB, grew by" \
         "$growth MiB (allowed: $3 MiB)"
    if is_asan_build; then
        echo "(ASan build: the bound is not checked)"
    elif [ "$growth" -gt "$3" ]; then
        fail "$4: the server's resident memory grew by $growth MiB," \
             "more than the $3 MiB allowed"
    fi
}

# good_client SECONDS EXPORT FILE: the well-behaved client (2
# connections x depth 4, verified) next to the hostile ones; no
# request may wait more than 10 s.
good_client ()
{
    stress-client load --socket "$sock" --export "$2" --file "$3" \
        --size 8M --conns 2 --depth 4 --seconds "$1" --max-latency 10
}
