# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-disconnect-writeback.sh,
# test-daemon-disconnect-writeback.sh): a client that writes and
# disconnects without FLUSH starts the write-back of what it left dirty
# at once, in both front ends, although delwri=60 would wait a minute;
# a client that only reads starts nothing.  The server keeps running.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires /usr/bin/python3 -c 'import nbd'
make_tmpdir
truncate -s 8M "$tmp/disk.img"

start_frontend "$frontend" "$tmp/pid" "$tmp/sock" \
    loopback fd="$tmp/disk.img" blk cache=4m,commit=low,delwri=60

# client URI OFFSET BYTE(hex; empty: read only) DISCONNECT(shutdown|stay)
client ()
{
    /usr/bin/python3 -c '
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
off = int(sys.argv[2])
if sys.argv[3]:
    h.pwrite(bytes([int(sys.argv[3], 16)]) * 65536, off)
else:
    h.pread(65536, off)
h.shutdown()' "$@"
}

# in_host OFFSET BYTE: the host file holds 64 KiB of BYTE at OFFSET.
in_host ()
{
    cmp -s -i "$1:0" -n 65536 "$tmp/disk.img" \
        <(head -c 65536 /dev/zero | tr '\0' "\\$(printf %03o $((16#$2)))")
}

# A writer leaves 64 KiB dirty and goes: in the file within 5 s.
client "$(frontend_uri lo0)" 1048576 a7
for (( i = 0; i < 50; i++ )); do
    in_host 1048576 a7 && break
    sleep 0.1
done
in_host 1048576 a7 ||
    fail "data a client left dirty was not written back within 5 s of its disconnect"
echo "written back $(( i * 100 )) ms after the disconnect"

# A reader leaving starts no write-back of another client's data: a
# writer that stays connected keeps its delwri= (60 s).
/usr/bin/python3 -c '
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\xb8" * 65536, 2 * 1048576)
open(sys.argv[2], "w").close()
time.sleep(4)
h.shutdown()' "$(frontend_uri lo0)" "$tmp/wrote" &
writer=$!
for (( i = 0; i < 100 && ! -e $tmp/wrote; i++ )); do sleep 0.1; done
client "$(frontend_uri lo0)" 0 ""
sleep 2
in_host 2097152 b8 &&
    fail "a reader's disconnect wrote back another client's dirty data"
wait "$writer"
for (( i = 0; i < 50; i++ )); do
    in_host 2097152 b8 && break
    sleep 0.1
done
in_host 2097152 b8 ||
    fail "the writer's data was not written back after it disconnected"

kill -0 "$frontend_pid" || fail "the server is gone"
stop_frontend
