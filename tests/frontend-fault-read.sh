# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-fault-daemon-read.sh, test-fault-plugin-read.sh):
# host read errors.  With the shim failing pread on the host file, a
# READ of data the cache does not hold fails with EIO at the client,
# the failed block is not cached (once the fault clears the data
# reads back right), other exports keep working, short host reads are
# retried transparently, and the server neither crashes nor hangs.
source ./functions.sh
source "$(dirname "$0")/fault-functions.sh"
set -e
set -x

requires_faultinject "$frontend"
make_tmpdir
f="$tmp/disk.img"
head -c 4M /dev/zero | tr '\0' '\132' >"$f"     # 0x5a everywhere

# nora: every miss is exactly the host read the client asked for.
# The daemon reads misses through io_uring, which the shim cannot see:
# noaiod puts them on the I/O threads' pread (test-server-uring.sh has
# host read errors through io_uring).
aiod=
[ "$frontend" = daemon ] && aiod=,noaiod
start_fault_frontend "$frontend" "$f" \
    loopback async,fd="$f" blk cache=2m,nora,ramdisk=1m$aiod

set_faults 'read EIO'
client-frontend-io "$uri" \
    expect EIO read 0 64k 0x5a \
    expect EIO read 1M 4k 0x5a \
    expect EIO read 3M 1M 0x5a
# ram0 has no host file: untouched by the fault.
client-frontend-io "$(frontend_uri ram0)" write 0 64k 0x11 read 0 64k 0x11
test "$(faults_injected 'EIO')" -ge 3
server_alive

# One failure, then the retry of the same block succeeds: nothing bad
# was cached.
set_faults 'read EIO count=1'
client-frontend-io "$uri" \
    expect EIO read 2M 4k 0x5a \
    read 2M 4k 0x5a

# Short host reads are retried until complete.
set_faults 'read short'
client-frontend-io "$uri" read 1M 256k 0x5a read 3M 8k 0x5a
test "$(faults_injected 'short')" -ge 2

# Faults in one range only: reads elsewhere are unaffected.
set_faults 'read EIO from=3670016 to=3674112'
client-frontend-io "$uri" \
    read 3M 64k 0x5a \
    expect EIO read 3584k 4k 0x5a \
    read 3588k 4k 0x5a

clear_faults
client-frontend-io "$uri" read 0 4M 0x5a
server_alive
fault_figures
stop_frontend
