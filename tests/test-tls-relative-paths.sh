#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Relative --tls-certificates and --tls-psk work for a daemon that
# detaches (and so changes directory to /): the credentials are found
# from where it was started.
source ./functions.sh
source "$abs_top_srcdir/tests/tls-functions.sh"
set -e
set -x

tls_setup -c nbdinfo -x -k alice 16M

( cd "$tmp" && nbd-loopback -P server.pid -U sock --tls=require \
      --tls-certificates=pki --tls-psk=keys.psk loopback fd=disk.img )
pid=$(cat "$tmp/server.pid")
cleanup_fn kill_pid "$pid"
sock="$tmp/sock"
test "$(nbdinfo --size "$(nbd_tls_uri "$tmp/pki")")" = 16777216
test "$(nbdinfo --size "$(nbd_psk_uri "$tmp/keys.psk" alice)")" = 16777216
kill_pid "$pid"
