#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# 1200 broken clients in a row (random bytes, ClientHellos cut short,
# garbage after STARTTLS, EOF in the middle of the TLS handshake) leave
# the daemon serving, and its memory flat: VmRSS after them is what it
# was after a warm-up of 300.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -x -k alice 16M

# Under ASan, freed memory waits in a quarantine (256 MiB by default)
# before it is reused: keep it small here so the warm-up fills it.
slack=1024
if ldd "$(command -v nbd-loopback)" | grep -q libasan; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
    slack=4096
fi
start_server_unix --tls=on --tls-certificates="$tmp/pki" \
    --tls-psk="$tmp/keys.psk" loopback fd="$tmp/disk.img"
rss () { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"; }

./client-tls-fuzz "$sock" 300 1
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
before=$(rss)
./client-tls-fuzz "$sock" 1200 2
after=$(rss)
echo "figures: VmRSS ${before} kB after the warm-up, ${after} kB after 1200 more"
test "$after" -le $(( before + slack )) ||
    fail "VmRSS grew from $before kB to $after kB over 1200 broken clients"
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
test "$(nbdinfo --size "$(nbd_psk_uri "$tmp/keys.psk" alice)")" = 16777216
kill -0 "$server_pid"
stop_server
