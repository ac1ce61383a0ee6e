# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-flush-kill9.sh, test-daemon-flush-kill9.sh):
# data survives kill -9 of the server once a FLUSH was acknowledged,
# including data another connection wrote (FLUSH writes back the whole
# export, which is why multi-conn is advertised), and a FUA write
# survives at commit=medium.  delwri=60 keeps the flusher out of the
# way; a plain write nobody flushed is checked to be still missing, so
# the kill really did stop all write-back.
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
uri=$(frontend_uri lo0)

# Connection 1 writes without flushing and stays open while
# connection 2 writes and flushes; then a FUA write, an unflushed
# write, and kill -9 with connection 1 still open.  Connection 2
# leaving starts a write-back of the export in the background (as a
# client that wrote and went away does); the unflushed write comes
# after that has written connection 1's data, so that nothing but
# delwri=60 would write it.
head -c 1M /dev/zero | tr '\0' '\021' > "$tmp/ref11"
cat > "$tmp/wait-written.sh" <<WAIT
for i in \$(seq 300); do
    cmp -s -i 1048576:0 -n 1048576 "$f" "$tmp/ref11" && exit 0
    sleep 0.1
done
echo "connection 1's data was not written back after connection 2 left" >&2
exit 1
WAIT
client-frontend-io "$uri" \
    write 1M 1M 0x11 \
    shell "client-frontend-io '$uri' write 0 1M 0xab write 5000 3000 0xcd flush" \
    shell "sh '$tmp/wait-written.sh'" \
    write-fua 2M 64k 0xef \
    write 3M 64k 0x77 \
    shell "kill -9 $frontend_pid" \
    wait-gone "$frontend_pid"
wait_frontend_exit
test "$frontend_status" -eq 137

qemu-io -f raw -r "$f" \
    -c 'read -P 0xab 0 5000' \
    -c 'read -P 0xcd 5000 3000' \
    -c 'read -P 0xab 8000 1040576' \
    -c 'read -P 0x11 1M 1M' \
    -c 'read -P 0xef 2M 64k' \
    -c 'read -P 0 3M 64k'
