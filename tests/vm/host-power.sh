# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-power.sh, test-vm-plugin-power.sh),
# sourced with $frontend set: power cuts.  The server runs inside the
# guest (guest-power.sh) on a file on ext4 on the guest's virtio disk,
# whose image QEMU writes with cache=writeback (a guest flush becomes
# an fdatasync of the image on the host).  tests/power-client writes
# to it with FUA and FLUSH and records every reply on the serial
# console, which the host keeps in a file.  The host SIGKILLs QEMU at
# a random moment (0.2 to 3 s after the client connected): the
# guest's page cache and the server's cache are gone, as in a power
# cut.  Then the host replays the file system's journal (e2fsck -fy on
# the image), takes the export's file out (debugfs) and checks that
# every write the replies made durable is there (power-client check),
# by commit level:
#   high      every acknowledged write
#   medium    FUA writes and writes acknowledged before a FLUSH
#   low-sync  the same, with the host file opened O_SYNC (commit=low)
#   none      FUA not advertised: writes before a FLUSH
# high, medium and none open the host file with async (no O_SYNC, the
# default being sync), so that only the server's fdatasync makes
# anything durable.
# What the guest's kernel wrote to the virtual disk without a flush
# survives too (QEMU wrote it into the host's page cache): the cut
# takes the guest's memory, not a disk's volatile write cache.
# delwri=30 keeps plain writes in the cache for the whole run.  One
# boot per cycle, the levels in turn; $vm_power_cycles cycles (LONG=1:
# 200, NBDL_VM_POWER_CYCLES=N: N).  The figures of each cycle and
# their sum are printed ("figures: ...").
source ./functions.sh
set -e

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
requires_frontend "$frontend"
requires mkfs.ext4 -V
requires e2fsck -V
requires debugfs -V
vm_requires_image
make_tmpdir

cycles=${NBDL_VM_POWER_CYCLES:-$vm_power_cycles}
[ "${LONG:-0}" = 1 ] && cycles=${NBDL_VM_POWER_CYCLES:-200}
client="$abs_top_builddir/tests/power-client"
test -x "$client" || fail "$client was not built"

# The programs the guest runs, with their libraries, in an archive
# appended to the image.
root="$tmp/power-root"
vm_copy_prog "$root" "$client" /opt/power/power-client
case $frontend in
daemon)
    vm_copy_prog "$root" "$(command -v nbd-loopback)" /opt/power/nbd-loopback
    server="/opt/power/nbd-loopback -f -U @SOCK@ -P @PID@"
    export=lo0
    ;;
plugin)
    test -z "$(plugin_asan_runtime)" ||
        skip "an ASan plugin: nbdkit in the guest would need the runtime preloaded"
    vm_copy_prog "$root" "$(command -v nbdkit)" /usr/sbin/nbdkit
    vm_copy_prog "$root" "$loopback_plugin" /opt/power/plugin.so
    server="/usr/sbin/nbdkit -f -U @SOCK@ -P @PID@ /opt/power/plugin.so"
    export=lo0
    ;;
esac
(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$tmp/power.cpio.gz"
vm_cpio=("$tmp/power.cpio.gz")

img="$tmp/vda.img"
# A boot that fails ends the test from inside vm_run: its output (kept
# in run.log, without the client's records) is shown at exit.
# The exit can come while vm_run's output still goes to run.log: the
# test's own output is kept as fd 3.
exec 3>&1
power_show_run ()
{
    test -s "$tmp/run.log" || return 0
    {
        echo "--- the failed boot (the client's P A lines left out):"
        grep -v '^P A ' "$tmp/run.log" | tail -n 100
    } >&3
}
cleanup_fn power_show_run
levels=(high medium low-sync none)
vm_host_request ()
{
    local i delay
    case $1 in
    cut)
        # From the client's first line on, a random moment.
        for (( i = 0; i < 600; ++i )); do
            grep -q '^P READY' "$vm_console" && break
            kill -0 "$vm_qemu_pid" 2>/dev/null || return 0
            sleep 0.1
        done
        delay=$(( 200 + RANDOM % 2800 ))
        sleep "$(( delay / 1000 )).$(printf %03d $(( delay % 1000 )))"
        echo "vm: power cut $delay ms after the client connected"
        vm_power_cut
        ;;
    *) fail "unknown request '$1' from the guest" ;;
    esac
}

total_acked=0 total_durable=0 total_checked=0 total_lost=0 total_garbage=0
total_volatile=0
failed=0
for (( c = 0; c < cycles; ++c )); do
    level=${levels[c % 4]}
    seed=$(( (RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM ))
    case $level in
    low-sync) lopts="sync,fd=@FILE@" commit=low ;;
    *) lopts="async,fd=@FILE@" commit=$level ;;
    esac
    blk="cache=4m,commit=$commit,delwri=30"
    if [ "$frontend" = plugin ]; then
        cmd="$server loopback=$lopts blk=$blk"
    else
        cmd="$server loopback $lopts blk $blk"
    fi
    echo "=== cycle $(( c + 1 ))/$cycles: $frontend commit=$level seed $seed"
    rm -f "$img"
    truncate -s 48M "$img"
    mkfs.ext4 -q -F "$img"
    vm_qemu_args=(-drive "file=$img,format=raw,if=virtio,cache=writeback")
    vm_timeout=60 vm_run guest-power.sh SERVER="$cmd" EXPORT=$export \
        EXPORT_SIZE=8M SEED=$seed > "$tmp/run.log" 2>&1 || {
        fail "cycle $(( c + 1 )): the boot failed"
    }
    grep '^vm: ' "$tmp/run.log"
    test "$vm_cut" = 1 || fail "cycle $(( c + 1 )): no power cut"
    rm -f "$tmp/run.log"
    # The file system as the power cut left it: replay the journal.
    rc=0
    e2fsck -fy "$img" > "$tmp/fsck.log" 2>&1 || rc=$?
    if [ "$rc" -ge 4 ]; then
        cat "$tmp/fsck.log"
        fail "cycle $(( c + 1 )): e2fsck -fy exited $rc"
    fi
    rm -f "$tmp/export.img"
    debugfs -R "dump /export.img $tmp/export.img" "$img" 2>/dev/null
    test -f "$tmp/export.img" || fail "cycle $(( c + 1 )): no /export.img in the image"
    rc=0
    "$client" check "$tmp/export.img" "$vm_console" "$seed" "$level" \
        > "$tmp/check.log" 2>&1 || rc=$?
    cat "$tmp/check.log"
    if [ "$rc" -ne 0 ]; then
        cp "$vm_console" "$tmp/console-failed-$c.log"
        echo "vm: cycle $(( c + 1 )): DURABLE WRITES LOST (seed $seed, commit=$level)"
        failed=$(( failed + 1 ))
    fi
    f=$(grep '^figures:' "$tmp/check.log") || fail "cycle $(( c + 1 )): no figures from the checker"
    get () { echo "$f" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
    total_acked=$(( total_acked + $(get acked) ))
    total_durable=$(( total_durable + $(get durable) ))
    total_checked=$(( total_checked + $(get sectors_checked) ))
    total_lost=$(( total_lost + $(get lost) ))
    total_garbage=$(( total_garbage + $(get garbage) ))
    total_volatile=$(( total_volatile + $(get volatile_lost) ))
done
echo "figures: power cuts: frontend=$frontend cycles=$cycles acked=$total_acked" \
     "durable=$total_durable sectors_checked=$total_checked" \
     "lost=$total_lost garbage=$total_garbage failed_cycles=$failed" \
     "volatile_lost=$total_volatile"
test "$failed" -eq 0 || fail "$failed of $cycles power cuts lost durable writes"
# A cut can come before the first reply on a slow host, not every time.
test "$total_acked" -gt 0 || fail "no write was acknowledged before any of the power cuts"
