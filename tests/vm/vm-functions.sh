# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the VM tests (tests/test-vm-*.sh): the Linux kernel's NBD
# client (nbd.ko and nbd-client in a QEMU guest) against our server.
# Source after functions.sh:
#
#   vm_host_setup [nonet]    the start of every host-*.sh (see below)
#   vm_requires              skip unless root, QEMU, netns and the
#                            image (built once by build-image.sh) are here
#   vm_requires_image        only QEMU and the image (no network, no root)
#   vm_net                   a network namespace with a tap device for
#                            the guest; only addresses inside it are used
#   vm_start_server FE ARGS  the daemon (FE=daemon) or the plugin under
#                            nbdkit (FE=plugin) in that namespace, on
#                            $vm_server_addr:$vm_port, verbose, its log
#                            in $tmp/server.log; sets $frontend_pid
#                            (stop_frontend etc. from functions.sh work);
#                            the array $vm_server_opts holds options
#                            both servers spell alike (--tls=...);
#                            with $vm_unix_socket set, it listens there
#                            instead
#   vm_run SCRIPT [VAR=VALUE...]
#                            boot the guest with tests/vm/SCRIPT as its
#                            scenario and the variables in
#                            /vmtest/params, within a hard time bound;
#                            fail unless the console says VMTEST: PASS;
#                            the files in the array $vm_files are in
#                            the guest's /vmtest too, the archives in
#                            $vm_cpio are unpacked into its root, and
#                            $vm_qemu_args are added to QEMU's options;
#                            without vm_net the guest has no network;
#                            QEMU's own PID is in $vm_qemu_pidfile;
#                            after vm_power_cut it returns 0 without
#                            a result line
#   vm_power_cut             SIGKILL QEMU itself (from vm_host_request):
#                            the guest's memory is gone at once, as in
#                            a power cut
#   vm_copy_prog DEST PROG [AS]
#                            PROG and the shared libraries ldd names
#                            into the tree DEST (PROG as DEST/AS), for
#                            an archive in $vm_cpio
#
# Every process is started here by PID and ended at exit; the namespace
# is deleted at exit.  The guest asks the host for actions with console
# lines "VMTEST: HOST WORD": the test defines vm_host_request WORD.

vm_srcdir="$abs_top_srcdir/tests/vm"
vm_imgdir="$abs_top_builddir/tests/vm"
vm_server_addr=10.213.0.1
vm_guest_addr=10.213.0.2
vm_port=10809

# vm_host_setup [nonet]: what every host-*.sh does first, with
# $frontend set: skip unless that front end, e2fsprogs and the VM
# (vm_requires; with nonet, vm_requires_image and socat in the image)
# are here, then make $tmp and, unless nonet, the network (vm_net).
vm_host_setup ()
{
    requires_frontend "$frontend"
    requires mkfs.ext4 -V
    requires e2fsck -V
    requires debugfs -V
    if [ "${1:-}" = nonet ]; then
        vm_requires_image
        test -s "$vm_imgdir/socat.cpio.gz" ||
            skip "the VM image has no socat (install socat and rebuild: make clean-vm)"
        make_tmpdir
    else
        vm_requires
        make_tmpdir
        vm_net
    fi
}

vm_requires ()
{
    requires_root
    requires ip -V
    test -c /dev/net/tun || skip "no /dev/net/tun for the guest's tap device"
    # A namespace of our own is needed for the network.
    local probe="nbdl-vm-probe-$$"
    ip netns add "$probe" 2>/dev/null || skip "cannot create a network namespace (ip netns add)"
    ip netns del "$probe"
    vm_requires_image
}
# vm_requires_image: QEMU and the image only (a guest without network,
# which needs no root).
vm_requires_image ()
{
    # One build runs them: in a second, sanitized build they would
    # double the suite's time for little more.
    if ldd "$(command -v nbd-loopback)" 2>/dev/null | grep -q libasan &&
       [ "${NBDL_VM_SAN:-0}" != 1 ]; then
        skip "a sanitizer build: the VM tests run in the build without sanitizers (NBDL_VM_SAN=1 runs them here too)"
    fi
    requires qemu-system-x86_64 --version
    requires cpio --version
    # The whole test's time, last in its log (after the clean-up).
    cleanup_fn 'echo "vm: the test took $SECONDS s"'
    local status=0
    "$vm_srcdir/build-image.sh" "$vm_imgdir" || status=$?
    case $status in
    0) ;;
    77) skip "the VM image cannot be built here (see above)" ;;
    *) fail "building the VM image failed" ;;
    esac
    vm_pick_accel
}

# vm_pick_accel: KVM when it boots the guest's kernel, TCG (software)
# otherwise; NBDL_VM_ACCEL=kvm or tcg forces one.  /dev/kvm can exist
# and still not run this kernel (nested virtualization: "KVM internal
# error", or stuck early in boot), so the probe is a real boot, bounded
# to 10 s (KVM boots it in 1-2 s), and its answer is kept next to the
# image (redone when the image is rebuilt).  Sets $vm_accel_args and $vm_slow (1 under TCG).
vm_pick_accel ()
{
    local cache="$vm_imgdir/accel"
    if [ -z "${NBDL_VM_ACCEL:-}" ]; then
        (
            flock -w 120 9 || exit 1
            if [ ! -s "$cache" ] || [ "$cache" -ot "$vm_imgdir/base.cpio.gz" ]; then
                vm_probe_kvm > "$cache.new" && mv "$cache.new" "$cache"
            fi
        ) 9>"$vm_imgdir/lock"
        NBDL_VM_ACCEL=$(cat "$cache" 2>/dev/null || echo tcg)
    fi
    case $NBDL_VM_ACCEL in
    kvm) vm_accel_args=(-accel kvm -cpu host); vm_slow=0 ;;
    tcg) vm_accel_args=(-accel tcg -cpu max); vm_slow=1 ;;
    *) fail "NBDL_VM_ACCEL=$NBDL_VM_ACCEL: kvm or tcg" ;;
    esac
    echo "vm: accelerator $NBDL_VM_ACCEL"
}
vm_probe_kvm ()
{
    local con
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        con=$(mktemp "${TMPDIR:-/tmp}/nbdl-vm-probe.XXXXXXXX")
        timeout -k 5 10 qemu-system-x86_64 -nodefaults -no-user-config \
            -display none -no-reboot -accel kvm -cpu host -smp 1 -m 256 \
            -kernel "$vm_imgdir/vmlinuz" -initrd "$vm_imgdir/base.cpio.gz" \
            -append "console=ttyS0 panic=-1 quiet no_timer_check vmtest.probe" \
            -serial file:"$con" >/dev/null 2>&1 </dev/null || :
        if grep -q '^VMTEST: PASS' "$con"; then
            rm -f "$con"
            echo kvm
            return
        fi
        rm -f "$con"
        echo "vm: KVM does not boot the guest here; using TCG" >&2
    fi
    echo tcg
}

# vm_net: the namespace $vm_ns with tap0 ($vm_server_addr/24) for the
# guest.  The server and QEMU run inside it (ip netns exec).
vm_net ()
{
    vm_ns="nbdl-vm-$$-$RANDOM"
    ip netns add "$vm_ns" || fail "ip netns add $vm_ns"
    cleanup_fn vm_net_delete "$vm_ns"
    vm_in ip link set lo up
    vm_in ip tuntap add dev tap0 mode tap
    vm_in ip addr add "$vm_server_addr/24" dev tap0
    vm_in ip link set tap0 up
}
vm_net_delete ()
{
    ip netns del "$1" || echo "$0: could not delete network namespace $1" >&2
}
vm_in () { ip netns exec "$vm_ns" "$@"; }
# vm_exec_argv: what the server and QEMU run under, the namespace once
# vm_net made it (as an array, to start them by PID).
vm_exec_argv ()
{
    vm_exec=()
    [ -z "${vm_ns:-}" ] || vm_exec=(ip netns exec "$vm_ns")
}

# vm_start_server FRONTEND ARGS...: the server in the namespace, in
# the foreground of a background job, verbose enough to log each
# request; waits (at most 30 s) for its pidfile.
vm_start_server ()
{
    local fe=$1 pidfile="$tmp/server.pid" i listen
    shift
    frontend_args "$fe" "$@"
    rm -f "$pidfile"
    vm_exec_argv
    listen=(-i "$vm_server_addr" -p "$vm_port")
    if [ -n "${vm_unix_socket:-}" ]; then
        # nbdkit neither removes its socket at exit nor replaces one.
        rm -f "$vm_unix_socket"
        listen=(-U "$vm_unix_socket")
    fi
    echo "--- vm_start_server $fe ${frontend_argv[*]}" >> "$tmp/server.log"
    case $fe in
    plugin)
        loopback_nbdkit_args -f -v -P "$pidfile" "${listen[@]}" \
            "${vm_server_opts[@]}" "$loopback_plugin" "${frontend_argv[@]}"
        "${vm_exec[@]}" "${loopback_nbdkit_argv[@]}" \
            >>"$tmp/server.log" 2>&1 &
        ;;
    daemon)
        "${vm_exec[@]}" nbd-loopback -f -v -v -P "$pidfile" \
            "${listen[@]}" "${vm_server_opts[@]}" "${frontend_argv[@]}" \
            >>"$tmp/server.log" 2>&1 &
        ;;
    *) fail "unknown front end '$fe'" ;;
    esac
    frontend_pid=$!
    vm_frontend=$fe
    cleanup_fn kill_pid "$frontend_pid"
    for (( i = 0; i < 300; ++i )); do
        if [ -s "$pidfile" ]; then
            test "$(cat "$pidfile")" = "$frontend_pid" ||
                fail "$pidfile does not hold the server's PID $frontend_pid"
            return 0
        fi
        kill -0 "$frontend_pid" 2>/dev/null || {
            cat "$tmp/server.log" >&2
            fail "the $fe server exited instead of starting"
        }
        sleep 0.1
    done
    fail "the $fe server did not write $pidfile within 30 s"
}

# vm_host_request WORD: the test's answer to "VMTEST: HOST WORD".
vm_host_request ()
{
    fail "the guest asked for '$1', which this test does not know"
}

# vm_run SCRIPT [VAR=VALUE...]: boot one scenario.  The bound is
# $vm_timeout seconds (default 60) with KVM and 4 times that under TCG.
vm_run ()
{
    local script=$1 kv bound start now line n=0 status
    shift
    # One CPU under TCG unless the test asks for more ($vm_smp): the
    # suite runs two tests at once on two cores.
    local smp=${vm_smp:-2}
    [ "$vm_slow" = 1 ] && smp=${vm_smp:-1}
    bound=${vm_timeout:-60}
    [ "$vm_slow" = 1 ] && bound=$(( bound * 4 ))
    local d="$tmp/vm-run"
    rm -rf "$d"
    mkdir -p "$d/vmtest"
    cp "$vm_srcdir/$script" "$d/vmtest/guest.sh"
    # Files the scenario reads, as /vmtest/NAME.
    local f
    for f in "${vm_files[@]}"; do
        cp "$f" "$d/vmtest/"
    done
    local net=()
    if [ -n "${vm_ns:-}" ]; then
        net=(-netdev tap,id=n0,ifname=tap0,script=no,downscript=no
             -device virtio-net-pci,netdev=n0,romfile=)
    fi
    {
        if [ -n "${vm_ns:-}" ]; then
            echo "VM_GUEST_ADDR=$vm_guest_addr/24"
            echo "VM_SERVER=$vm_server_addr"
            echo "VM_PORT=$vm_port"
        fi
        echo "VM_SLOW=$vm_slow"
        for kv in "$@"; do
            printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
        done
    } > "$d/vmtest/params"
    (cd "$d" && find vmtest | cpio -o -H newc --quiet) | gzip -1 > "$d/extra.cpio.gz"
    # The kernel unpacks concatenated archives in turn.
    cat "$vm_imgdir/base.cpio.gz" "${vm_cpio[@]}" "$d/extra.cpio.gz" > "$d/initrd.gz"
    vm_console="$tmp/console.log"
    : > "$vm_console"
    vm_cut=0
    start=$SECONDS
    # mitigations=off: no page-table switch on every system call and
    # interrupt, which software emulation pays for dearly.
    # no_timer_check: on a loaded host the emulated timer can miss the
    # kernel's early check, which then panics ("IO-APIC + timer doesn't
    # work!").
    vm_exec_argv
    timeout -k 5 "$bound" "${vm_exec[@]}" qemu-system-x86_64 \
        -nodefaults -no-user-config -display none -no-reboot \
        "${vm_accel_args[@]}" -smp "$smp" -m 512 \
        -kernel "$vm_imgdir/vmlinuz" -initrd "$d/initrd.gz" \
        -append "console=ttyS0 panic=-1 quiet mitigations=off no_timer_check" \
        -chardev file,id=con,path="$vm_console" -serial chardev:con \
        -pidfile "$d/qemu.pid" "${net[@]}" "${vm_qemu_args[@]}" \
        > "$tmp/qemu.log" 2>&1 &
    vm_qemu_pid=$!
    vm_qemu_pidfile="$d/qemu.pid"
    cleanup_fn kill_pid "$vm_qemu_pid"
    # Follow the console until QEMU exits (timeout ends it at the bound),
    # without tracing each poll.
    local xtrace=0
    case $- in *x*) xtrace=1; set +x ;; esac
    while :; do
        local running=0
        kill -0 "$vm_qemu_pid" 2>/dev/null && running=1
        while IFS= read -r line; do
            n=$(( n + 1 ))
            line=${line%$'\r'}
            case $line in
            "VMTEST: HOST "*)
                echo "vm: $(( SECONDS - start ))s: guest asks: ${line#VMTEST: HOST }"
                vm_host_request ${line#VMTEST: HOST }
                ;;
            esac
        done < <(tail -n +$(( n + 1 )) "$vm_console")
        [ "$running" = 1 ] || break
        sleep 0.1
    done
    [ "$xtrace" = 0 ] || set -x
    status=0
    wait "$vm_qemu_pid" || status=$?
    vm_elapsed=$(( SECONDS - start ))
    echo "--- guest console ($vm_elapsed s, QEMU status $status):"
    tr -d '\r' < "$vm_console"
    if [ -s "$tmp/qemu.log" ]; then
        echo "--- QEMU:"
        cat "$tmp/qemu.log"
    fi
    echo "---"
    if grep -q '^VMTEST: PASS' <(tr -d '\r' < "$vm_console"); then
        echo "vm: $script passed in $vm_elapsed s"
        return 0
    fi
    if [ "$vm_cut" = 1 ]; then
        # timeout reports its child's SIGKILL as 128 + 9.
        test "$status" -eq 137 ||
            fail "$script: QEMU exited with status $status after the power cut"
        line=$(tr -d '\r' < "$vm_console" | grep -m1 '^VMTEST: FAIL' || :)
        test -z "$line" || fail "$script: before the power cut: $line"
        echo "vm: $script: power cut after $vm_elapsed s"
        return 0
    fi
    # A guest stuck on a request: what the server did last says which.
    if [ -s "$tmp/server.log" ]; then
        echo "--- server log (its last 200 lines):"
        tail -n 200 "$tmp/server.log"
        echo "---"
    fi
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        fail "$script: the guest did not finish within $bound s"
    fi
    line=$(tr -d '\r' < "$vm_console" | grep -m1 '^VMTEST: FAIL' || :)
    fail "$script: ${line:-no result from the guest (QEMU status $status)}"
}

vm_power_cut ()
{
    local pid
    pid=$(cat "$vm_qemu_pidfile" 2>/dev/null || :)
    test -n "$pid" || fail "no QEMU PID in $vm_qemu_pidfile"
    # A guest that already powered off (after a failure) was not cut.
    vm_cut=1
    kill -KILL "$pid" 2>/dev/null || vm_cut=0
}

vm_copy_prog ()
{
    local dest=$1 path=$2 as=${3:-$2} lib
    mkdir -p "$dest$(dirname "$as")"
    # Without debugging information: a smaller archive to unpack.
    objcopy --strip-debug "$path" "$dest$as" 2>/dev/null || cp -L "$path" "$dest$as"
    while read -r lib; do
        [ -e "$dest$lib" ] && continue
        mkdir -p "$dest$(dirname "$lib")"
        cp -L "$lib" "$dest$lib"
    done < <(ldd "$path" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p')
}

# What the server logged about the kernel client's requests (the
# daemon with -v -v logs each request by name; nbdkit -v logs each
# call into the plugin).
vm_log_count ()
{
    grep -E -c "$1" "$tmp/server.log" || :
}
vm_log_require ()
{
    local what=$1 daemon_re=$2 plugin_re=$3 n re=$2
    [ "$vm_frontend" = plugin ] && re=$plugin_re
    n=$(vm_log_count "$re")
    echo "vm: server log: $n $what (/$re/)"
    test "$n" -gt 0 || fail "the server log shows no $what (/$re/)"
}
vm_log_has_flush ()
{
    vm_log_require flushes 'NBD_CMD_FLUSH flags' 'debug: loopback: flush'
}
vm_log_has_fua_write ()
{
    vm_log_require "FUA writes" 'NBD_CMD_WRITE flags 0x1 ' \
        'debug: loopback: pwrite .*fua=1'
}
vm_log_has_trim ()
{
    vm_log_require trims 'NBD_CMD_TRIM flags' 'debug: loopback: trim '
}
# vm_log_disc_count N: exactly N connections ended with NBD_CMD_DISC.
vm_log_disc_count ()
{
    local n
    n=$(vm_log_count 'client sent NBD_CMD_DISC')
    echo "vm: server log: $n connections closed with NBD_CMD_DISC"
    test "$n" -eq "$1" ||
        fail "$n connections closed with NBD_CMD_DISC, expected $1"
}

# vm_check_image IMAGE: the host file alone, after the server stopped:
# e2fsck -fn finds it clean, and debugfs reads back every file listed
# in its /SUMS (sha256sum lines the guest wrote) with that checksum.
vm_check_image ()
{
    local img=$1 n sum name got
    e2fsck -fn "$img" || fail "e2fsck -fn $img on the host"
    debugfs -R 'cat /SUMS' "$img" > "$tmp/sums" 2>/dev/null
    n=$(wc -l < "$tmp/sums")
    test "$n" -gt 0 || fail "no /SUMS in $img"
    while read -r sum name; do
        got=$(debugfs -R "cat /$name" "$img" 2>/dev/null | sha256sum | cut -d' ' -f1)
        test "$got" = "$sum" ||
            fail "$name in $img on the host: sha256 $got, the guest wrote $sum"
    done < "$tmp/sums"
    echo "vm: host: $n files in $img have the guest's checksums"
}
