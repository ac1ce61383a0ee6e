#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Build the libFuzzer targets with clang, ASan and UBSan:
#
#   fuzzing/build.sh TOP_SRCDIR TOP_BUILDDIR OUTDIR CLANG
#
# The product is built with the configured compiler (gcc); libFuzzer
# needs clang's coverage instrumentation in the code under test, so
# the sources of common/ opts/ device/ cache/ exports/ and server/ are compiled
# again here, with clang, into OUTDIR/obj.  Which sources, and with
# which -I/-D flags, comes from each directory's generated Makefile
# (printvars.mk), so files other engineers add are picked up.
# server/main.c is compiled with its main() renamed (the daemon keeps
# its globals in cli.c); libFuzzer brings the main().  Objects are
# rebuilt when their source or any header of the project is newer.
# Called by make check
# (tests/reliability-tests.am) in builds configured with fuzzing.
set -euo pipefail

src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
out=$3
cc=$4
mkdir -p "$out/obj"
out=$(cd "$out" && pwd)

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer -pthread $san"
# Any header newer than the last build: recompile everything.
if [ -e "$out/obj/.stamp" ]; then
    newest_header=$(find "$src" -path "$src/build*" -prune -o -name '*.h' \
                         -newer "$out/obj/.stamp" -print | head -1)
else
    newest_header=all
fi

vars () # DIR WHAT
{
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        make -s --no-print-directory -C "$build/$1" -f Makefile \
        -f "$src/fuzzing/printvars.mk" "fuzz-print-$2"
}

# Compile in the background, as many at a time as there are CPUs.
jobs_max=$(nproc 2>/dev/null || echo 2)
failed=0
compile () # DIR OBJECT ARGS...
{
    local dir=$1
    shift
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n || failed=1
    done
    (cd "$build/$dir" && $cc "$@") &
}

# Keep only what matters to compile (-I -D -U -include -pthread) or
# to link (-l -L -pthread).
keep_flags () # DIR compile|link
{
    local w next=
    for w in $(cat); do
        if [ -n "$next" ]; then echo "$next $w"; next=; continue; fi
        case $2:$w in
        compile:-include) next=$w ;;
        compile:-I/*|compile:-D*|compile:-U*|*:-pthread) echo "$w" ;;
        compile:-I*) echo "-I$build/$1/${w#-I}" ;;
        link:-l*|link:-L*) echo "$w" ;;
        esac
    done
}

objs=()
libs=()
for dir in common opts device cache exports server; do
    cppflags=$(vars $dir cppflags | keep_flags $dir compile | tr '\n' ' ')
    for f in $(vars $dir sources); do
        case $f in
        /*) s=$f ;;
        *) s=$(cd "$build/$dir" && realpath -m "$f") ;;
        esac
        base=$(basename "$f" .c)
        o="$out/obj/$dir-$base.o"
        extra=
        [ "$dir/$base" = server/main ] && extra=-Dmain=nbdl_main_unused
        objs+=("$o")
        if [ -e "$o" ] && [ "$o" -nt "$s" ] && [ -z "$newest_header" ]; then
            continue
        fi
        echo "  CLANG    $dir/$base.c"
        rm -f "$o"
        compile "$dir" $cflags -fsanitize=fuzzer-no-link $cppflags $extra \
            -c "$s" -o "$o"
    done
    for l in $(vars $dir libs | keep_flags $dir link); do
        libs+=("$l")
    done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
    wait -n || failed=1
done
[ "$failed" -eq 0 ] || { echo "fuzzing/build.sh: compiling failed" >&2; exit 1; }
touch "$out/obj/.stamp"

# Deduplicated link flags, in first-seen order.
declare -A seen
linklibs=()
for l in "${libs[@]}"; do
    [ -n "${seen[$l]:-}" ] && continue
    seen[$l]=1
    linklibs+=("$l")
done

server_objs=() opts_objs=() notls_objs=()
for o in "${objs[@]}"; do
    case $(basename "$o") in
    common-*|opts-*) opts_objs+=("$o"); server_objs+=("$o")
                     notls_objs+=("$o") ;;
    server-tls.o|server-tls-creds.o) server_objs+=("$o") ;;
    *) server_objs+=("$o"); notls_objs+=("$o") ;;
    esac
done

link () # TARGET SOURCES... -- OBJECTS...
{
    local target=$1 sources=() newer=
    shift
    while [ "$1" != -- ]; do sources+=("$1"); shift; done
    shift
    for f in "${sources[@]}" "$@"; do
        [ "$f" -nt "$out/$target" ] && newer=1
    done
    [ -e "$out/$target" ] && [ -z "$newer" ] && return 0
    echo "  LINK     $target"
    $cc $cflags -fsanitize=fuzzer -I"$build" -I"$src/server" -I"$src/common" \
        -I"$src/opts" -I"$src/device" -I"$src/cache" -DHAVE_CONFIG_H \
        "${sources[@]}" "$@" "${linklibs[@]}" -o "$out/$target"
}

link fuzz-opts "$src/fuzzing/fuzz-opts.c" -- "${opts_objs[@]}"
link fuzz-handshake "$src/fuzzing/fuzz-handshake.c" \
    "$src/fuzzing/harness.c" -- "${server_objs[@]}"
link fuzz-request "$src/fuzzing/fuzz-request.c" \
    "$src/fuzzing/harness.c" -- "${server_objs[@]}"
# STARTTLS: the server with fake-tls.c in place of OpenSSL (tls.c and
# tls-creds.c are left out).
link fuzz-tls "$src/fuzzing/fuzz-tls.c" "$src/fuzzing/fake-tls.c" \
    "$src/fuzzing/harness.c" -- "${notls_objs[@]}"
