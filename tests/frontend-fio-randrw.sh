# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-fio-randrw.sh, test-daemon-fio-randrw.sh):
# fio's nbd engine, 4 jobs on their own connections and 16 MiB regions,
# random 16 KiB reads and writes at depth 16 for a bounded time, every
# read of a written block verified (crc32c), through a cache a quarter
# the size of the data.  serialize_overlap=1 keeps a job from reading
# a block while its own write to it is in flight (a torn read the
# protocol allows); with that, no read may ever see stale or mixed
# data.  Then fio's verify_only pass over the host file.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires fio --version
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"
make_tmpdir
export tmp
truncate -s 64M "$tmp/disk.img"
secs=${FIO_RANDRW_SECS:-10}

cat > "$tmp/job.fio" <<JOB
[global]
rw=randrw
bs=16k
size=16m
offset_increment=16m
numjobs=4
iodepth=16
verify=crc32c
verify_fatal=1
serialize_overlap=1
time_based=1
runtime=$secs
verify_state_save=0

[randrw]
JOB

fio_frontend "$frontend" "$tmp/job.fio" 4
echo "figures: $frontend randrw: $(grep -E '^ +(read|write):' "$tmp/fio.out" | tr -s ' ' | cut -d, -f1 | tr '\n' ' ')"
