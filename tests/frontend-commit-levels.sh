# SPDX-License-Identifier: BSD-3-Clause
# Shared body (test-plugin-commit-levels.sh, test-daemon-commit-levels.sh):
# what each blk commit= level puts in the host file before the reply,
# checked while the server still runs and the connection is open, with
# delwri=60 so nothing else could have written it.  high: plain and
# FUA writes (and zeroes) at once; medium and low: FUA writes at once,
# plain writes not yet; none: FUA is not advertised.
source ./functions.sh
set -e
set -x

requires_frontend "$frontend"
requires client-frontend-io --help
requires nbdinfo --version
make_tmpdir
f="$tmp/disk.img"

# LEVEL PLAIN FUA: is a plain / FUA write in the host file at once?
table=(
    high    yes yes
    medium  no  yes
    low     no  yes
)
for (( i = 0; i < ${#table[@]}; i += 3 )); do
    level=${table[i]}
    plain=file-is fua=file-is
    test "${table[i+1]}" = yes || plain=file-isnt
    test "${table[i+2]}" = yes || fua=file-isnt
    rm -f "$f"
    truncate -s 1M "$f"
    start_frontend "$frontend" "$tmp/pid" "$tmp/sock" \
        loopback fd="$f" blk commit=$level,delwri=60
    nbdinfo --can fua "$(frontend_uri lo0)"
    client-frontend-io "$(frontend_uri lo0)" \
        write 0 64k 0xab       $plain "$f" 0 64k 0xab \
        write 70000 1000 0xcd  $plain "$f" 70000 1000 0xcd \
        write-fua 128k 64k 0xef  $fua "$f" 128k 64k 0xef \
        write-fua 200001 999 0x12  $fua "$f" 200001 999 0x12
    stop_frontend
done

# commit=high: a plain WRITE_ZEROES reaches the file at once too.
head -c 1M /dev/zero | tr '\0' '\125' > "$f"
start_frontend "$frontend" "$tmp/pid" "$tmp/sock" \
    loopback fd="$f" blk commit=high,delwri=60
client-frontend-io "$(frontend_uri lo0)" \
    zero 4096 8192  file-is "$f" 4096 8192 0  file-is "$f" 0 4096 0x55
stop_frontend

# commit=none: no FUA; nbdinfo --can exits 2 for "no".
rm -f "$f"
truncate -s 1M "$f"
start_frontend "$frontend" "$tmp/pid" "$tmp/sock" \
    loopback fd="$f" blk commit=none,delwri=60
set +e
nbdinfo --can fua "$(frontend_uri lo0)"
status=$?
set -e
test $status -eq 2
nbdinfo --can flush "$(frontend_uri lo0)"
client-frontend-io "$(frontend_uri lo0)" \
    write 0 64k 0xab  file-is "$f" 0 64k 0 \
    flush             file-is "$f" 0 64k 0xab
stop_frontend
