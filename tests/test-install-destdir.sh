#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# make install DESTDIR=... puts the daemon in sbin, the man pages, the
# example systemd units (with the installed paths) and the nbdkit
# plugin where they belong under DESTDIR; what is installed runs; and
# make uninstall leaves no file behind.
source ./functions.sh
set -e
set -x

make_tmpdir
dest=$tmp/root
# make, not the make running this test: its flags (-w, jobserver) stay out.
unset MAKEFLAGS MAKELEVEL MFLAGS
mk () { make -C "$abs_top_builddir" "$@" DESTDIR="$dest" > "$tmp/make.log" 2>&1 ||
        { cat "$tmp/make.log"; fail "make $* failed"; }; }
# var NAME DIR: a make variable of DIR's Makefile, expanded.
var ()
{
    printf 'print-var:\n\t@echo $(%s)\n' "$1" |
        make -s --no-print-directory -C "$abs_top_builddir/$2" \
            -f Makefile -f - print-var
}

mk install
find "$dest" \( -type f -o -type l \) | sort | sed "s|^$dest||" | tee "$tmp/installed"

prefix=$(var prefix .)
sbin=$dest$prefix/sbin/nbd-loopback
test -x "$sbin" || fail "no $sbin"
"$sbin" --version | grep -q '^nbd-loopback [0-9]'
grep -q "/share/man/man8/nbd-loopback\.8$" "$tmp/installed"
grep -q "/share/doc/nbd-loopback/systemd/nbd-loopback@\.service$" "$tmp/installed"
grep -q "/share/doc/nbd-loopback/systemd/nbd-loopback\.socket$" "$tmp/installed"
grep -q "/share/doc/nbd-loopback/systemd/example\.conf$" "$tmp/installed"
# The units name the installed daemon, not the build tree.
unit=$(find "$dest" -name 'nbd-loopback@.service')
grep -q "^ExecStart=$prefix/sbin/nbd-loopback " "$unit"
! grep -rIq "$abs_top_builddir\|@sbindir@\|@sysconfdir@" "$dest" ||
    fail "an installed text file names the build tree or a placeholder"
# Nothing installed outside DESTDIR: every path is under it already
# (find ran there); nothing a user does not want: no libtool archives.
! grep -q '\.la$' "$tmp/installed" || fail "a libtool .la was installed"

plugindir=$(var plugindir plugin)
if [ -n "$plugindir" ]; then
    test -f "$dest$plugindir/nbdkit-loopback-plugin.so" ||
        fail "the plugin is not in $dest$plugindir"
    grep -q "/share/man/man1/nbdkit-loopback-plugin\.1$" "$tmp/installed"
    if command -v nbdkit >/dev/null && [ -z "$(plugin_asan_runtime)" ]; then
        nbdkit "$dest$plugindir/nbdkit-loopback-plugin.so" --dump-plugin |
            grep -q '^loopback_version='
    fi
fi
if command -v man >/dev/null; then
    out=$(MANWIDTH=80 man --warnings -l "$(find "$dest" -name nbd-loopback.8)" \
          2>&1 >/dev/null)
    test -z "$out" || fail "the installed man page has warnings: $out"
fi

mk uninstall
left=$(find "$dest" \( -type f -o -type l \))
test -z "$left" || fail "make uninstall left: $left"
