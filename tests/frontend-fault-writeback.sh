# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-fault-daemon-writeback.sh,
# test-fault-plugin-writeback.sh): host write and sync errors (SPEC
# section 6, last promise).  With the shim failing pwrite, fdatasync or
# fallocate on the host file: cached writes still succeed and read
# back, a failed write-back keeps the blocks dirty so every FLUSH
# fails (EIO, ENOSPC) until the fault clears, a FUA write fails, the
# flusher thread keeps retrying without spinning, short host writes
# are completed, and once the fault is gone one FLUSH puts every
# acknowledged write in the host file.  The server never crashes or
# hangs, and exits 0 on SIGTERM once it could write everything back.
source ./functions.sh
source "$(dirname "$0")/fault-functions.sh"
set -e
set -x

requires_faultinject "$frontend"
make_tmpdir
f="$tmp/disk.img"
truncate -s 8M "$f"

# async: FLUSH and FUA use fdatasync (sync would open O_SYNC instead).
# delwri=60: only FLUSH and FUA write back, until the flusher part.
# The daemon writes durable writes back through io_uring, which the
# shim cannot see: noaiod puts them on the I/O threads' pwrite
# (test-daemon-enospc.sh has failing host writes through io_uring).
aiod=
[ "$frontend" = daemon ] && aiod=,noaiod
start_fault_frontend "$frontend" "$f" \
    loopback async,fd="$f" blk cache=4m,delwri=60,commit=medium$aiod

# 1. EIO on every host write: the FLUSH fails, and again (still
# dirty), while reads return the data; then the fault clears.
client-frontend-io "$uri" \
    write 0 1M 0xab \
    write 5000 3000 0xcd \
    shell "echo 'write EIO' >$fault_control" \
    expect EIO flush \
    expect EIO flush \
    expect EIO write-fua 2M 4k 0x99 \
    read 0 4096 0xab \
    read 5000 3000 0xcd \
    file-is "$f" 0 4096 0 \
    shell "rm -f $fault_control" \
    flush \
    file-is "$f" 0 5000 0xab \
    file-is "$f" 5000 3000 0xcd \
    file-is "$f" 8000 1040576 0xab
test "$(faults_injected '^pwrite.* EIO')" -ge 2

# 2. ENOSPC, reported as ENOSPC, also to another connection than the
# writer's (FLUSH covers the whole export).  The writer stays
# connected: the daemon writes back at once when a writer disconnects.
client-frontend-io "$uri" \
    write 1M 256k 0x12 \
    shell "echo 'write ENOSPC' >$fault_control" \
    shell "client-frontend-io '$uri' expect ENOSPC flush" \
    expect ENOSPC flush \
    expect ENOSPC write-fua 3M 4k 0x34 \
    read 1M 256k 0x12 \
    shell "rm -f $fault_control" \
    flush \
    file-is "$f" 1M 256k 0x12
test "$(faults_injected '^pwrite.* ENOSPC')" -ge 3

# 3. fdatasync fails once: that FLUSH fails, the next one succeeds.
client-frontend-io "$uri" \
    write 2M 64k 0x56 \
    shell "echo 'sync EIO count=1' >$fault_control" \
    expect EIO flush \
    flush \
    file-is "$f" 2M 64k 0x56
test "$(faults_injected '^(fdatasync|fsync)')" -eq 1
clear_faults

# 4. Short host writes are completed by the device layer.
set_faults 'write short'
client-frontend-io "$uri" \
    write 4M 128k 0x78 \
    write-fua 4352k 8k 0x79 \
    flush \
    file-is "$f" 4M 128k 0x78 \
    file-is "$f" 4352k 8k 0x79
test "$(faults_injected 'short')" -ge 2

# 5. A failing range: the FLUSH reports the error but still writes
# back everything else (cache.h: it keeps going after an error).
set_faults 'write EIO from=5242880 to=5246976'
client-frontend-io "$uri" \
    write 5M 64k 0x9a \
    write 5632k 64k 0x9b \
    expect EIO flush \
    file-is "$f" 5632k 64k 0x9b
clear_faults
client-frontend-io "$uri" flush file-is "$f" 5M 64k 0x9a

# 6. fallocate fails: WRITE_ZEROES either reports the error or falls
# back to writing zeroes; what was acknowledged is in the file.
client-frontend-io "$uri" write 6M 64k 0xbc flush
set_faults 'fallocate EIO'
if client-frontend-io "$uri" zero 6M 64k flush; then
    clear_faults
    client-frontend-io "$uri" read 6M 64k 0 file-is "$f" 6M 64k 0
else
    clear_faults
    client-frontend-io "$uri" zero 6M 64k flush read 6M 64k 0 \
        file-is "$f" 6M 64k 0
fi
server_alive

# 7. The flusher thread meets a lasting fault: it keeps the blocks
# dirty and retries (about once a second, not in a loop), the server
# goes on serving, and the next FLUSH after the fault reports it.
stop_frontend
: >"$tmp/server.log"
start_fault_frontend "$frontend" "$f" \
    loopback async,fd="$f" blk cache=4m,delwri=0.1,commit=medium
before=$(faults_injected '^pwrite')
set_faults 'write EIO'
client-frontend-io "$uri" write 7M 64k 0xde
wait_for 20 faults_at_least $((before + 2)) '^pwrite'
client-frontend-io "$uri" read 7M 64k 0xde write 0 4k 0xef read 0 4k 0xef
retries=$(( $(faults_injected '^pwrite') - before ))
client-frontend-io "$uri" expect EIO flush
clear_faults
client-frontend-io "$uri" flush \
    file-is "$f" 7M 64k 0xde file-is "$f" 0 4k 0xef
echo "write-back attempts during the lasting fault: $retries"
server_alive
fault_figures
stop_frontend
