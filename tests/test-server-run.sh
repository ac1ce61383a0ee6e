#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Captive mode: --run CMD serves on a private socket (or TCP), sets
# $uri, $nbd, $unixsocket, $port and $exportname, and exits with CMD's
# status (128+N when a signal N killed it); the private socket and its
# directory are gone afterwards.
source ./functions.sh
set -e
set -x

requires nbdinfo --version
make_tmpdir
truncate -s 16M "$tmp/a.img" "$tmp/b.img"
lb () { nbd-loopback "$@" loopback fd="$tmp/a.img",fd="$tmp/b.img"; }

lb --run 'test -S "$unixsocket" &&
          test "$uri" = "nbd+unix:///?socket=$unixsocket" &&
          test "$nbd" = "$uri" && test -z "$port" && test -z "$exportname" &&
          echo "$unixsocket" > '"$tmp/path"' &&
          nbdinfo --size "$uri"' > "$tmp/out"
test "$(cat "$tmp/out")" = 16777216
test ! -e "$(cat "$tmp/path")"
test ! -e "$(dirname "$(cat "$tmp/path")")"

lb -e lo1 --run 'test "$exportname" = lo1 && nbdinfo --can write "$uri"'

# Exit statuses.
set +e
lb --run 'exit 7'; status=$?
set -e
test $status -eq 7
set +e
lb --run 'kill -TERM $$'; status=$?
set -e
test $status -eq $((128 + 15))

# TCP on a port the kernel picks (-p 0): $port and $uri say which.
lb -i 127.0.0.1 -p 0 --run 'test -n "$port" && test -z "$unixsocket" &&
    test "$uri" = "nbd://127.0.0.1:$port/" && nbdinfo --size "$uri"' > "$tmp/out"
test "$(cat "$tmp/out")" = 16777216
