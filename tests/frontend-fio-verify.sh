# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-fio-verify.sh, test-daemon-fio-verify.sh):
# fio's nbd engine, 4 jobs each on its own connection and its own 8 MiB
# region, random writes of 4-64 KiB with crc32c verification, through
# a cache half the size of the data.  fio must report no error; once
# the server has exited, fio's verify_only pass over the host file
# must find every block it wrote.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires fio --version
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"
make_tmpdir
export tmp
truncate -s 32M "$tmp/disk.img"

cat > "$tmp/job.fio" <<'JOB'
[global]
rw=randwrite
bsrange=4k-64k
size=8m
offset_increment=8m
numjobs=4
iodepth=16
verify=crc32c
verify_fatal=1
do_verify=1
# Otherwise fio leaves local-verify-N-verify.state in the current
# directory (the build tree, which make distcheck wants clean).
verify_state_save=0

[verify]
JOB

fio_frontend "$frontend" "$tmp/job.fio" 4

# The same jobs, only verifying, on the host file.
fio --ioengine=psync --filename="$tmp/disk.img" --verify_only \
    "$tmp/job.fio" > "$tmp/fio-host.out" 2>&1 ||
    { cat "$tmp/fio-host.out"; fail "the host file lost fio's writes"; }
cat "$tmp/fio-host.out"
test "$(grep -c 'err= 0:' "$tmp/fio-host.out")" -eq 4
