# SPDX-License-Identifier: BSD-3-Clause
# Guest side of test-vm-daemon-vanish.sh: attach lo0 over TCP, keep a
# direct writer busy, and ask the host to SIGKILL QEMU.  The guest's
# checks end here, so it says so first; the host checks the rest.

attach -N lo0
head -c 262144 /dev/urandom > /tmp/junk
(
    i=0
    while [ $i -lt 100000 ]; do
        dd if=/tmp/junk of=/dev/nbd0 bs=65536 seek=$(( i % 64 * 4 )) \
            oflag=direct conv=notrunc status=none 2>/dev/null || exit 0
        i=$((i + 1))
        echo $i > /tmp/written
    done
) &
# The writer is at work (a few writes done) before the guest goes.
n=0
until [ "$(cat /tmp/written 2>/dev/null || echo 0)" -ge 4 ]; do
    n=$((n + 1))
    [ "$n" -lt 300 ] || fail "the writer did not get going within 30 s"
    sleep 0.1
done
say PASS
host_request kill-qemu
# QEMU ends here; the bound is the host's.
sleep 600
