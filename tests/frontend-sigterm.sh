# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-sigterm.sh, test-daemon-sigterm.sh): at
# commit=medium with delwri=60 a plain write stays in the cache (it is
# not in the host file while the server runs), and SIGTERM writes it
# back: the server exits 0 with the data in the file, although the
# client never flushed.  (nbdkit does not end a connection on SIGTERM
# but waits for the client to leave, so the client disconnects right
# after sending the signal.)
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires client-frontend-io --help
requires qemu-io --version
make_tmpdir
f="$tmp/disk.img"
truncate -s 4M "$f"

start_frontend "$frontend" "$tmp/pid" "$tmp/sock" \
    loopback fd="$f" blk commit=medium,delwri=60
client-frontend-io "$(frontend_uri lo0)" \
    write 0 2M 0xab \
    write 3000001 77 0xcd \
    read 0 2M 0xab \
    file-is "$f" 0 2M 0 \
    file-is "$f" 3000001 77 0 \
    shell "kill -TERM $frontend_pid"
wait_frontend_exit
test "$frontend_status" -eq 0

qemu-io -f raw -r "$f" \
    -c 'read -P 0xab 0 2M' \
    -c 'read -P 0 2M 902849' \
    -c 'read -P 0xcd 3000001 77' \
    -c 'read -P 0 3000078 1194226'
