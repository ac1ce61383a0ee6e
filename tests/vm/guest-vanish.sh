# SPDX-License-Identifier: BSD-3-Clause
# Guest side of test-vm-daemon-vanish.sh: attach lo0 over TCP, keep a
# direct writer busy, and ask the host to SIGKILL QEMU.  The guest's
# checks end here, so it says so first; the host checks the rest.

attach -N lo0
write_until_killed /dev/nbd0 100000
