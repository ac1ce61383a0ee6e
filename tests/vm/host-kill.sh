# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-kill.sh, test-vm-plugin-kill.sh), sourced
# with $frontend set: the server SIGKILLed while the kernel client uses
# it, several times in one boot (guest-kill.sh).  Each time the guest's
# device must fail with I/O errors (not hang), and after the server is
# restarted and the device attached again, e2fsck replays the journal
# and every file fsynced before a kill is intact.  At the end the host
# file holds them all.  The caller sets $vm_commit (the blk commit=
# level) and $vm_kill_rounds; delwri=30 keeps plain writes in the cache
# for the whole run, so only the kernel's flushes (and FUA writes, at
# commit=medium) make anything durable.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
img="$tmp/disk.img"
truncate -s 32M "$img"
rounds=${NBDL_VM_KILL_ROUNDS:-$vm_kill_rounds}
server_args=(loopback fd="$img" blk cache=16m,commit=$vm_commit,delwri=30)

kills=0 log_from=1
write_re='NBD_CMD_WRITE|debug: loopback: pwrite'
flush_re='NBD_CMD_FLUSH|debug: loopback: flush'
vm_host_request ()
{
    case $1 in
    kill-server)
        kill -KILL "$frontend_pid"
        wait_frontend_exit
        kills=$(( kills + 1 ))
        # What this server was sent before it died.
        echo "vm: kill $kills: after" \
            "$(tail -n +"$log_from" "$tmp/server.log" | grep -c -E "$write_re" || :) writes," \
            "$(tail -n +"$log_from" "$tmp/server.log" | grep -c -E "$flush_re" || :) flushes"
        log_from=$(( $(wc -l < "$tmp/server.log") + 1 ))
        vm_start_server "$frontend" "${server_args[@]}"
        ;;
    *) fail "unknown request '$1' from the guest" ;;
    esac
}

vm_start_server "$frontend" "${server_args[@]}"
vm_timeout=$(( 60 + 10 * rounds )) vm_run guest-kill.sh KILL_ROUNDS="$rounds" \
    NBD_TIMEOUT=10 \
    EXPECT_FUA=$([ "$vm_commit" = none ] && echo 0 || echo 1)
stop_frontend
test "$kills" -eq "$rounds" || fail "the server was killed $kills times, expected $rounds"
vm_check_image "$img"
