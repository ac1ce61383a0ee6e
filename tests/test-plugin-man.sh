#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdkit-loopback-plugin(1), which the plugin's --help points to, is
# built and renders without warnings, documents its parameters, and
# every nbdkit command line in it has options the plugin accepts
# (checked with --dump-plugin, which runs .config on each parameter).
source ./functions.sh
set -e
set -x

requires_frontend plugin
make_tmpdir
pod="$abs_top_srcdir/man/nbdkit-loopback-plugin.1.pod"
page="$abs_top_builddir/man/nbdkit-loopback-plugin.1"
test -f "$page" || fail "$page was not built"

if command -v man >/dev/null; then
    out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
    test -z "$out" || fail "man page warnings: $out"
fi
for section in NAME SYNOPSIS DESCRIPTION PARAMETERS EXPORTS DURABILITY \
               EXAMPLES FILES 'SEE ALSO' AUTHORS COPYRIGHT; do
    grep -qx "=head1 $section" "$pod" || fail "no $section section"
done
for param in 'B<loopback=>' 'B<blk=>' 'I<OPTION>B<=>I<VALUE>' \
              'L<nbd-loopback(8)>' 'commit='; do
    grep -qF "$param" "$pod" || fail "$param is not documented"
done

# Every verbatim "nbdkit ..." line but the usage, with its continuation
# lines, goes through check_example: it drops -U and --run, loads the
# built plugin in place of "loopback" and only parses the parameters.
check_example ()
{
    local args=() plugin_seen=
    while [ $# -gt 0 ]; do
        case $1 in
        -U|--run) shift ;;
        loopback|*/nbdkit-loopback-plugin.so)
            if [ -z "$plugin_seen" ]; then
                args+=("$loopback_plugin")
                plugin_seen=yes
            else
                args+=("$1")
            fi
            ;;
        *) args+=("$1") ;;
        esac
        shift
    done
    test -n "$plugin_seen" || fail "no plugin on the line"
    loopback_nbdkit "${args[@]}" --dump-plugin > "$tmp/dump"
    grep -q '^loopback_version=' "$tmp/dump"
}
sed -n '/^ nbdkit /{:a;/\\$/{N;ba};s/\\\n */ /g;p}' "$pod" |
    grep -vF '[OPTION=VALUE ...]' > "$tmp/lines"
cat "$tmp/lines"
test "$(wc -l < "$tmp/lines")" -ge 8
while read -r line; do
    eval "check_example ${line#nbdkit }" ||
        fail "the man page's example does not parse: $line"
done < "$tmp/lines"
