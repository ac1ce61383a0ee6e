#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What lands in git is enough for a new user: clone the repository
# (committed files only) into a temporary directory and follow the
# README's quick start there.  "./quickstart run" builds and serves;
# "./quickstart test" would run this suite again inside itself, so
# only its build half is taken: "./quickstart run --version" (install
# check, autoreconf, configure, make, then the daemon's --version).
# Then "./quickstart run" serves the demo image in the background, the
# hints it prints are run against it, and it is stopped by PID (SIGTERM
# writes back and exits 0).  The build must leave the clone clean for
# git.  The clone is built once, in the normal build: the sanitizer
# build skips this test.
source ./functions.sh
set -e
set -x

if "$abs_top_builddir/config.status" --config | grep -q -- '--enable-sanitizers'; then
    skip "this is the sanitizer build: the fresh clone is built and" \
         "checked by the normal build only"
fi
requires git --version
requires nbdinfo --version
# A release tarball is not a git checkout, even when it is unpacked
# inside one (make distcheck in a build directory of a checkout): the
# source directory must be the top of its own work tree.
git_top=$(git -C "$abs_top_srcdir" rev-parse --show-toplevel 2>/dev/null) ||
    skip "$abs_top_srcdir is not a git checkout (a release tarball?)"
test "$(cd "$git_top" && pwd -P)" = "$(cd "$abs_top_srcdir" && pwd -P)" ||
    skip "$abs_top_srcdir is not a git checkout but inside $git_top" \
         "(a release tarball unpacked there, as make distcheck does)"
git -C "$abs_top_srcdir" cat-file -e HEAD:quickstart 2>/dev/null ||
    skip "quickstart is not committed yet"

# quickstart installs missing packages with apt-get: run it only where
# nothing is missing, so a test never installs anything.
command -v dpkg-query >/dev/null || skip "not a Debian system (no dpkg-query)"
packages=$(git -C "$abs_top_srcdir" show HEAD:quickstart |
           sed -n '/^packages=(/,/^)/p' | sed '1d;$d')
missing=
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
test -z "$missing" || skip "quickstart would install:$missing"

make_tmpdir
# Nothing of this build's environment leaks into the clone's build.
unset MAKEFLAGS MAKELEVEL MFLAGS srcdir abs_srcdir CONFIG_SITE
git clone -q "$abs_top_srcdir" "$tmp/clone"
cd "$tmp/clone"

# The commands run here are the ones the README shows.
sed -n '/^## Quick start/,/^## /p' README.md > "$tmp/quickstart.md"
grep -q '^\./quickstart run' "$tmp/quickstart.md" ||
    fail "README's quick start does not show ./quickstart run"
grep -q '^\./quickstart test' "$tmp/quickstart.md" ||
    fail "README's quick start does not show ./quickstart test"

SECONDS=0
./quickstart run --version > "$tmp/version" 2> "$tmp/build.log" ||
    { cat "$tmp/build.log"; fail "./quickstart run --version failed"; }
build_secs=$SECONDS
cat "$tmp/build.log"
grep -q '^nbd-loopback [0-9]' "$tmp/version"
build/server/nbd-loopback --version | grep -q '^nbd-loopback [0-9]'
test -x build/server/nbd-loopback

# Serve.  The README's own command uses 127.0.0.1:10809; if that port
# is taken on this machine, the same demo image on another port.
port=10809
if nbdinfo --size nbd://127.0.0.1:10809 >/dev/null 2>&1 ||
   (exec 3<>/dev/tcp/127.0.0.1/10809) 2>/dev/null; then
    port=$(( 20000 + RANDOM % 40000 ))
    set -- -i 127.0.0.1 -p "$port" loopback fd="$tmp/clone/data/demo.img"
    mkdir -p data
    truncate -s 1G data/demo.img
else
    set --
fi
SECONDS=0
./quickstart run "$@" > "$tmp/run.out" 2> "$tmp/run.log" &
qs_pid=$!
cleanup_fn kill_pid $qs_pid
serving () {
    kill -0 $qs_pid || { cat "$tmp/run.log"; fail "./quickstart run exited"; }
    nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null
}
wait_for 60 serving
serve_secs=$SECONDS
nbdinfo --size "nbd://127.0.0.1:$port/lo0" | grep -qx 1073741824

# The hints it printed work (on this port).
sed -n '/From another terminal:/,$p' "$tmp/run.log" | tail -n +2 |
    sed -e 's/^ *//' -e "s/10809/$port/g" > "$tmp/hints"
test "$(wc -l < "$tmp/hints")" -ge 3
while read -r hint; do
    echo "hint: $hint"
    bash -c "$hint" > /dev/null || fail "the printed hint failed: $hint"
done < "$tmp/hints"

kill -TERM $qs_pid
server_pid=$qs_pid
wait_server_exit
cat "$tmp/run.log"
test "$server_status" -eq 0 ||
    fail "./quickstart run exited with $server_status after SIGTERM"

# With arguments, still this machine only unless -i or -U says
# otherwise, with hints that work; a missing fd= file is not made
# (only the demo image is), the daemon says how to make one.
port2=$(( 20000 + RANDOM % 40000 ))
truncate -s 128M "$tmp/mine.img"
./quickstart run -p "$port2" loopback fd="$tmp/mine.img" \
    > "$tmp/run2.out" 2> "$tmp/run2.log" &
qs_pid=$!
cleanup_fn kill_pid $qs_pid
serving2 () {
    kill -0 $qs_pid || { cat "$tmp/run2.log"; fail "./quickstart run -p $port2 exited"; }
    nbdinfo --size "nbd://127.0.0.1:$port2" >/dev/null
}
wait_for 60 serving2
cat "$tmp/run2.log"
ss -ltnH "sport = :$port2" > "$tmp/listening"
cat "$tmp/listening"
grep -q "127.0.0.1:$port2" "$tmp/listening"
if grep -Eq "(0\.0\.0\.0|\[::\]|\*):$port2" "$tmp/listening"; then
    fail "./quickstart run ARGS listens on every address"
fi
sed -n '/From another terminal:/,$p' "$tmp/run2.log" | tail -n +2 |
    sed -n 's/^ *\([a-z].*\)/\1/p' | grep -v '^nbd-loopback' > "$tmp/hints2"
test "$(wc -l < "$tmp/hints2")" -ge 3
while read -r hint; do
    echo "hint: $hint"
    bash -c "$hint" > /dev/null || fail "the printed hint failed: $hint"
done < "$tmp/hints2"
kill -TERM $qs_pid
server_pid=$qs_pid
wait_server_exit
test "$server_status" -eq 0

if ./quickstart run -p "$port2" loopback fd="$tmp/missing.img" 2> "$tmp/run3.log"; then
    fail "./quickstart run served a missing file"
fi
cat "$tmp/run3.log"
test ! -e "$tmp/missing.img" || fail "./quickstart run made $tmp/missing.img"
grep -F "truncate -s 1G $tmp/missing.img" "$tmp/run3.log"

# Building and serving left nothing git does not ignore.
untracked=$(git status --porcelain)
test -z "$untracked" || fail "the build left files git does not ignore: $untracked"
echo "figures: fresh clone built in ${build_secs}s, serving ${serve_secs}s after ./quickstart run"
