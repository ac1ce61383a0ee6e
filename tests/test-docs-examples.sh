#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Every shell example of README.md and of the man pages' EXAMPLES runs
# and exits 0, against a real daemon.
#
# Which examples: in README.md, every ```sh block (run whole) and
# every ```console block (its "$ " lines); in the POD man pages, every
# verbatim paragraph of EXAMPLES.  An example right after a
# "<!-- not run: REASON -->" line (README) or a "=for comment not run:
# REASON" paragraph (POD) is skipped, and the reason printed.
#
# How: each example runs with bash -e in a scratch directory holding
# disk.img, image.raw and my.img, after these substitutions: HOST is
# 127.0.0.1, 10809 a free port, /srv/ and /tmp/ scratch directories
# (holding cd.iso and disk.img), contrib/ the source tree's (and
# "nbd-loopback ctl" runs as is).  An example that starts a server
# (nbd-loopback or nbdkit) runs with no other server up; any other
# runs while a reference server serves: for README.md, what
# "./quickstart run" serves (its own command line, read from the
# script: lo0 = a sparse 1 GiB demo image), so that its client
# examples are known to work against the quick start; for the man
# pages, their first example (lo0 = /srv/cd.iso read-only, lo1 =
# /srv/disk.img), and the files
# are made afresh before each example that starts a server.  Servers an
# example starts get a pidfile and are ended by PID after it; nbdkit
# loads the plugin from the build tree; qemu-system-x86_64 starts its
# machine paused (-S) and quits through QMP once it has opened the
# drive; attaching /dev/nbdN needs root and the nbd module.  A
# program that is not installed skips that example, saying so.
source ./functions.sh
set -e

requires perl -e 1
make_tmpdir
work=$tmp/work
mkdir -p "$work" "$tmp/srv" "$tmp/tmp" "$tmp/pids" "$tmp/blocks"
# Fresh files for each example that starts a server (no server has
# them open then).
fresh_files ()
{
    rm -f "$tmp/srv/cd.iso" "$tmp/srv/disk.img" "$work/disk.img" \
        "$work/my.img"
    truncate -s 4M "$tmp/srv/cd.iso"
    truncate -s 256M "$tmp/srv/disk.img"
    truncate -s 64M "$work/disk.img" "$work/my.img"
}
fresh_files
head -c 8M /dev/urandom > "$work/image.raw"

# Cut the examples out, one file each: its origin on the first line,
# then "not run: REASON" or the commands.
perl - "$tmp/blocks" "$abs_top_srcdir/README.md" \
    "$abs_top_srcdir"/man/*.pod <<'EOF'
use strict;
my $out = shift;
my $n = 0;
sub emit {
    my ($where, $reason, @lines) = @_;
    my $f = sprintf "%s/%03d", $out, $n++;
    open my $fh, '>', $f or die "$f: $!";
    print $fh "# $where\n";
    print $fh defined $reason ? "not run: $reason\n" : join '', @lines;
    close $fh;
}
for my $file (@ARGV) {
    open my $fh, '<', $file or die "$file: $!";
    my @l = <$fh>;
    (my $name = $file) =~ s{.*/}{};
    if ($file =~ /\.md$/) {
        my ($notrun, $last) = (undef, '');
        for (my $i = 0; $i < @l; $i++) {
            if ($l[$i] =~ /^```(sh|console)\s*$/) {
                my ($kind, $start, @body) = ($1, $i + 1);
                for ($i++; $i < @l && $l[$i] !~ /^```\s*$/; $i++) {
                    push @body, $l[$i];
                }
                my $reason = $last =~ /<!-- not run: (.*?) -->/ ? $1 : undef;
                if ($kind eq 'console') {
                    my (@cmds, $cont);
                    for (@body) {
                        if (s/^\$ // || $cont) {
                            push @cmds, $_;
                            $cont = /\\$/;
                        }
                    }
                    @body = @cmds;
                }
                emit ("$name:$start", $reason, @body);
                $last = '';
                next;
            }
            $last = $l[$i] if $l[$i] =~ /\S/;
        }
    }
    else {
        my $text = join '', @l;
        next unless $text =~ /^=head1 EXAMPLES\n(.*?)(?=^=head1 )/ms;
        my $section = $1;
        my $line = 1 + (() = substr ($text, 0, $-[1]) =~ /\n/g);
        my $reason;
        for my $para (split /(\n\s*\n)/, $section) {
            if ($para =~ /^=for comment\s+not run:\s*(.*)/s) {
                ($reason = $1) =~ s/\s+/ /g;
            }
            elsif ($para =~ /^[ \t]/ && $para =~ /\S/) {
                my @body = map { s/^ //; "$_\n" } split /\n/, $para;
                emit ("$name:$line", $reason, @body);
                undef $reason;
            }
            $line += () = $para =~ /\n/g;
        }
    }
}
EOF
nblocks=$(ls "$tmp/blocks" | wc -l)
test "$nblocks" -gt 20 || fail "only $nblocks examples found: is the marking intact?"

# What the examples run in: the wrappers described above.
cat > "$tmp/prelude.sh" <<'EOF'
set -e
cd "$work"
command_not_found_handle ()
{
    echo "SKIP: $1 is not installed" >&2
    return 77
}
record_pidfile () { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac >> "$pids"; }
nbd-loopback ()
{
    local a extra=() pid=0 addr=0 next=
    # The control client talks to a server the example started.
    if [ "${1:-}" = ctl ]; then command nbd-loopback "$@"; return; fi
    for a; do
        case $a in
        --dump-config|--help|-h|--version|-V) command nbd-loopback "$@"; return ;;
        esac
    done
    for a; do
        if [ "$next" = P ]; then record_pidfile "$a"; pid=1; fi
        next=
        case $a in
        -P|--pidfile) next=P ;;
        --pidfile=*) record_pidfile "${a#*=}"; pid=1 ;;
        -p|-U|-i|--run|--port*|--unix*|--ipaddr*|--run=*) addr=1 ;;
        esac
    done
    if [ $pid = 0 ]; then
        extra+=(-P "$tmp/pids/nbdl.$RANDOM.pid")
        record_pidfile "${extra[1]}"
    fi
    [ $addr = 1 ] || extra+=(-p "$port")
    command nbd-loopback "${extra[@]}" "$@"
}
nbdkit ()
{
    local a args=() extra=() plugin_seen=0 takes=0 addr=0
    [ -f "$loopback_plugin" ] ||
        { echo "SKIP: the nbdkit plugin was not built" >&2; return 77; }
    for a; do
        if [ $takes = 1 ]; then
            takes=0
            [ "$prev" = --run ] && [ -n "$nbdkit_asan" ] && a="unset LD_PRELOAD"$'\n'"$a"
            args+=("$a")
            continue
        fi
        case $a in
        -U|-p|-i|--run|--unix|--port|--ipaddr) addr=1; takes=1 ;;
        -P|-e|-t|-D|-u|-g|--filter|--log|--pidfile|--exportname|--threads) takes=1 ;;
        -*) ;;
        *)
            if [ $plugin_seen = 0 ]; then
                plugin_seen=1
                case $a in
                loopback|*/nbdkit-loopback-plugin.so) a=$loopback_plugin ;;
                esac
            fi
            ;;
        esac
        prev=$a
        args+=("$a")
    done
    extra=(-P "$tmp/pids/nbdkit.$RANDOM.pid")
    record_pidfile "${extra[1]}"
    [ $addr = 1 ] || extra+=(-p "$port")
    if [ -n "$nbdkit_asan" ]; then
        env LD_PRELOAD="$nbdkit_asan" ASAN_OPTIONS="$nbdkit_asan_options" \
            timeout -k 10 120 nbdkit "${extra[@]}" "${args[@]}"
    else
        command nbdkit "${extra[@]}" "${args[@]}"
    fi
}
qemu-system-x86_64 ()
{
    command -v qemu-system-x86_64 >/dev/null ||
        { echo "SKIP: qemu-system-x86_64 is not installed" >&2; return 77; }
    printf '%s\n' '{"execute":"qmp_capabilities"}' \
        '{"execute":"query-block"}' '{"execute":"quit"}' |
        command qemu-system-x86_64 "$@" -S -display none -monitor none \
            -serial none -qmp stdio > "$tmp/qemu.out"
    grep -q '"inserted"' "$tmp/qemu.out" ||
        { cat "$tmp/qemu.out"; echo "qemu did not open the drive" >&2; return 1; }
}
nbd-client ()
{
    local a dev=
    for a; do case $a in /dev/nbd*) dev=$a ;; esac; done
    for a; do [ "$a" = -d ] && dev=; done
    if [ -n "$dev" ]; then
        [ "$(id -u)" = 0 ] || { echo "SKIP: attaching $dev needs root" >&2; return 77; }
        [ -e "/sys/block/${dev#/dev/}" ] ||
            { echo "SKIP: no $dev here (modprobe nbd)" >&2; return 77; }
        [ ! -e "/sys/block/${dev#/dev/}/pid" ] ||
            { echo "SKIP: $dev is in use" >&2; return 77; }
        echo "$dev" >> "$tmp/nbd-devices"
    fi
    command nbd-client "$@"
}
EOF

nbdkit_asan=$(plugin_asan_preload)
nbdkit_asan_options=$(plugin_asan_options)
export work tmp loopback_plugin nbdkit_asan nbdkit_asan_options
export pids=$tmp/pidfiles

# The quick start's server: the words after "set --" in quickstart's
# demo branch, with its -p and the demo image made here.
quickstart_args=$(sed -n 's/^ *set -- \(-p 10809 loopback fd=.*demo\.img"\)$/\1/p' \
                      "$abs_top_srcdir/quickstart")
test -n "$quickstart_args" || fail "quickstart's demo command line was not found"
mkdir -p "$tmp/qs/data"
truncate -s 1G "$tmp/qs/data/demo.img"
eval "set -- $(top=$tmp/qs; eval "echo $quickstart_args")"
test "$1 $2" = "-p 10809" || fail "quickstart's demo does not use -p 10809"
shift 2
quickstart_words=("$@")

ref=none
ref_start ()                    # ref_start readme|man
{
    [ $ref = "$1" ] && return
    ref_stop
    case $1 in
    readme) start_server_tcp "${quickstart_words[@]}" ;;
    man) start_server_tcp loopback ro,blksz=2048,fd="$tmp/srv/cd.iso",rw,fd="$tmp/srv/disk.img" \
             blk cache=64m ;;
    esac
    ref=$1
}
ref_stop ()
{
    [ $ref = none ] && return
    stop_server
    ref=none
}
# End what an example started, by PID.  A daemon is not our child:
# once it has exited it is a zombie until init reaps it, which can
# take a second here; that counts as ended.
ended ()
{
    ! kill -0 "$1" 2>/dev/null ||
        [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]
}
end_pid ()
{
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for (( i = 0; i < 600; ++i )); do
        ended "$pid" && return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    fail "example server $pid did not exit within 30 s of SIGTERM"
}
end_example ()
{
    local f dev i
    if [ -f "$pids" ]; then
        while read -r f; do
            # A daemonized nbdkit writes its pidfile after the parent
            # has returned: give it a moment, or it is left running.
            for (( i = 0; i < 60; ++i )); do
                [ -s "$f" ] && break
                sleep 0.05
            done
            [ -s "$f" ] && end_pid "$(cat "$f")"
            rm -f "$f"
        done < "$pids"
        rm -f "$pids"
    fi
    if [ -f "$tmp/nbd-devices" ]; then
        while read -r dev; do command nbd-client -d "$dev" || :; done \
            < "$tmp/nbd-devices"
        rm -f "$tmp/nbd-devices"
    fi
}
cleanup_fn end_example

passed=0 skipped=0 failed=0
for f in "$tmp"/blocks/*; do
    where=$(head -1 "$f" | cut -c3-)
    if sed -n 2p "$f" | grep -q '^not run: '; then
        echo "SKIP $where: $(sed -n '2s/^not run: //p' "$f")"
        skipped=$((skipped + 1))
        continue
    fi
    if grep -Eq '(^|[;&|(]|^ *)(nbd-loopback|nbdkit) ' "$f" &&
       grep -E '(^|[;&|(]|^ *)(nbd-loopback|nbdkit) ' "$f" |
           grep -Evq 'nbd-loopback (--dump-config|--help|--version)'; then
        ref_stop
        fresh_files
        port=$(( 20000 + RANDOM % 40000 ))
    else
        case $where in
        README.md*) ref_start readme ;;
        *) ref_start man ;;
        esac
    fi
    export port
    tail -n +2 "$f" |
        sed -e 's/\bHOST\b/127.0.0.1/g' -e "s/\\b10809\\b/$port/g" \
            -e "s|/tmp/|$tmp/tmp/|g" -e "s|/srv/|$tmp/srv/|g" \
            -e "s|\\bcontrib/|$abs_top_srcdir/contrib/|g" > "$tmp/example"
    cat "$tmp/prelude.sh" "$tmp/example" > "$tmp/run.sh"
    t0=$SECONDS
    set +e
    bash "$tmp/run.sh" > "$tmp/out" 2>&1
    status=$?
    set -e
    end_example
    where="$where ($((SECONDS - t0)) s)"
    case $status in
    0)
        echo "PASS $where"
        passed=$((passed + 1))
        ;;
    77)
        echo "SKIP $where: $(grep '^SKIP: ' "$tmp/out" | head -1 | cut -c7-)"
        skipped=$((skipped + 1))
        ;;
    *)
        echo "FAIL $where (exit status $status):"
        sed 's/^/    | /' "$tmp/example"
        sed 's/^/    > /' "$tmp/out"
        failed=$((failed + 1))
        ;;
    esac
done
ref_stop
echo "figures: $passed examples passed, $skipped skipped, $failed failed"
test "$failed" -eq 0 || fail "$failed documentation examples failed"
test "$passed" -ge 15 || fail "only $passed examples ran"
