#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The daemon's command line as a newcomer meets it: every hint works
# when pasted, out-of-range ports are refused, messages name the
# program and the file the user gave; -r/--readonly, --print-uri and
# --exit-with-parent behave as nbdkit's.
source ./functions.sh
set -e
set -x

requires nbdinfo --version
make_tmpdir
cd "$tmp"
truncate -s 4M disk.img

# expect_hint EXPECTED-MESSAGE ARGS...: nbd-loopback ARGS fails with
# the message; prints the hint (the text between the last quotes).
expect_error ()
{
    local want=$1
    shift
    if nbd-loopback --dump-config "$@" > out 2> err; then
        fail "nbd-loopback $* was accepted"
    fi
    cat err
    grep -F -- "$want" err || fail "expected: $want"
}

# A bare file name: the hint, pasted, works.
expect_error "'disk.img': options must follow a group keyword, 'loopback' or 'blk'; to serve a file, write 'loopback fd=disk.img'" disk.img
nbd-loopback --dump-config loopback fd=disk.img | grep -x lo0.path=disk.img

# A trailing ro is refused; the line it shows works.
expect_error "loopback option 'ro' comes after the last fd= and would leave disk.img writable: order-dependent options apply to the fd= after them, so write 'loopback ro,fd=disk.img'" loopback fd=disk.img,ro
nbd-loopback --dump-config loopback ro,fd=disk.img | grep -x lo0.access=ro
# Other trailing options only warn, as on QNX.
nbd-loopback --dump-config loopback fd=disk.img,blksz=4096 2> err > /dev/null
grep -F "'blksz=4096' comes after the last fd=" err

# A QNX line pasted with its program name.
nbd-loopback --dump-config devb-loopback loopback fd=disk.img blk cache=1m > out
grep -x lo0.path=disk.img out
grep -x cache=1048576 out

# Ports: 0 to 65535 only.
for p in 99999 65536 -1 12x; do
    if nbd-loopback -p "$p" loopback fd=disk.img 2> err; then
        fail "-p $p was accepted"
    fi
    cat err
    grep -F "expected a port number from 0 to 65535" err ||
        grep -F -- "-p $p" err || fail "-p $p: no clear error"
done

# getopt's messages name the program, not its path.
if "$(command -v nbd-loopback)" --no-such-option 2> err; then
    fail "--no-such-option was accepted"
fi
cat err
grep -x "nbd-loopback: unrecognized option '--no-such-option'" err

# An error in a --config-file names the file.
echo 'loopback fd=disk.img blk cache=zz' > bad.conf
expect_error "--config-file bad.conf: cache=zz: expected a size" --config-file bad.conf

# -r: every export read-only; --print-uri prints the URI once listening.
nbd-loopback -r -U - --print-uri \
    --run 'nbdinfo --json "$uri" > info.json' \
    loopback fd=disk.img blk ramdisk=1m > uri.out
cat uri.out info.json
grep -E '^nbd\+unix:///lo0\?socket=/.*$' uri.out
grep -F '"is_read_only": true' info.json
nbd-loopback -r --dump-config loopback fd=disk.img blk ramdisk=1m > out
grep -x lo0.access=ro out
grep -x ram0.access=ro out

port_uri=$(nbd-loopback -p 0 -i 127.0.0.1 --print-uri --run 'true' \
               loopback fd=disk.img)
[[ $port_uri =~ ^nbd://127\.0\.0\.1:[0-9]+/lo0$ ]] ||
    fail "--print-uri printed '$port_uri'"

# --exit-with-parent: when the parent goes, the server stops cleanly,
# writing back what it held (delwri=60 would keep it a minute).
rm -f pid sock
( nbd-loopback --exit-with-parent -P "$tmp/pid" -U "$tmp/sock" \
      loopback fd="$tmp/disk.img" blk delwri=60,commit=low \
      > server.log 2>&1 &
  echo $! > server.pid
  for (( i = 0; i < 100; i++ )); do [ -s pid ] && break; sleep 0.1; done
  qemu-io -f raw -c 'write -P 0x6b 1M 64k' "nbd+unix:///lo0?socket=$tmp/sock"
) || fail "starting the server under a parent failed"
server=$(cat server.pid)
for (( i = 0; i < 100; i++ )); do
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$server" 2>/dev/null &&
    { kill "$server"; fail "the server outlived its parent by 10 s"; }
cat server.log
cmp -i 1M:0 -n 64k disk.img <(head -c 64k /dev/zero | tr '\0' '\153')
