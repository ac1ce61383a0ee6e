# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-fault-daemon-espipe.sh, test-fault-plugin-espipe.sh):
# the positional → seek fallback.  With the shim failing every
# positional transfer on the host file with ESPIPE (as a file without
# positional I/O does), the probe picks seek I/O (lseek + read/write),
# says so with -v, and data written through the export reaches the
# host file and reads back; no positional call is tried after the
# probe.  seek given explicitly does the same without a probe.
source ./functions.sh
source "$(dirname "$0")/fault-functions.sh"
set -e
set -x

requires_faultinject "$frontend"
make_tmpdir
f="$tmp/disk.img"
head -c 4M /dev/zero | tr '\0' '\132' >"$f"     # 0x5a everywhere

initial_faults='positional ESPIPE'
start_fault_frontend "$frontend" "$f" -v \
    loopback fd="$f" blk cache=1m,delwri=0,verbose
probes=$(faults_injected 'ESPIPE')
test "$probes" -ge 1                            # the probe's pread
grep -F "positional I/O fails (ESPIPE): using seek" "$tmp/server.log"

client-frontend-io "$uri" \
    read 0 64k 0x5a \
    write 1M 64k 0xc3 \
    write-fua 3M 4k 0xd4 \
    read 1M 64k 0xc3 \
    read 2M 1M 0x5a
# Every ESPIPE was a probe: I/O went through lseek + read/write.
test "$(faults_injected 'ESPIPE')" -eq "$probes"
server_alive
stop_frontend
cmp -i 1M:0 -n 64k "$f" <(head -c 64k /dev/zero | tr '\0' '\303')
cmp -i 3M:0 -n 4k "$f" <(head -c 4k /dev/zero | tr '\0' '\324')
cmp -n 1M "$f" <(head -c 1M /dev/zero | tr '\0' '\132')
