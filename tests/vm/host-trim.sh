# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-vm-daemon-trim.sh, test-vm-plugin-trim.sh), sourced
# with $frontend set: the kernel client's discards (guest-trim.sh:
# blkdiscard on the raw device, fstrim on ext4) arrive as NBD_CMD_TRIM,
# the trimmed range of the host file reads as zeros (a hole) and the
# rest is unchanged, and the file system stays clean.
source ./functions.sh
set -e
set -x

source "$abs_top_srcdir/tests/vm/vm-functions.sh"
vm_host_setup
fs="$tmp/fs.img"
raw="$tmp/raw.img"
truncate -s 64M "$fs"
truncate -s 32M "$raw"

vm_start_server "$frontend" loopback fd="$fs",fd="$raw" blk cache=16m
vm_run guest-trim.sh
stop_frontend
vm_log_has_trim

# raw.img: 0xab at 8-9 MiB and 11-16 MiB, zeros at 9-11 MiB and
# everywhere else.
head -c 8M /dev/zero | tr '\0' '\253' > "$tmp/pattern"
cmp -n 1M "$raw" /dev/zero || fail "raw.img: the first MiB is not zero"
cmp -n 1M -i 8M:0 "$raw" "$tmp/pattern" || fail "raw.img: 8-9 MiB is not the pattern"
cmp -n 2M -i 9M:0 "$raw" /dev/zero || fail "raw.img: the discarded 9-11 MiB is not zero"
cmp -n 5M -i 11M:0 "$raw" "$tmp/pattern" || fail "raw.img: 11-16 MiB is not the pattern"
cmp -n 16M -i 16M:0 "$raw" /dev/zero || fail "raw.img: 16-32 MiB is not zero"
echo "vm: host: raw.img allocates $(( $(stat -c %b "$raw") * 512 )) bytes (6 MiB of data)"

vm_check_image "$fs"
