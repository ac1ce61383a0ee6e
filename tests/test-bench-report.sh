#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/report.pl on made-up samples: in a full run and in a quick one
# (fewer servers, so the columns shift) every server has the same
# colour in the chart, and no two servers share one; a quick run's
# report and chart say it was not load-filtered, a full run's do not.
# The run times in README.md, bench/README.md and bench/run agree, and
# the benchmark's documents speak of the product, not of its tracker.
source ./functions.sh
set -e
set -x

requires perl -v
make_tmpdir
report="$abs_top_srcdir/bench/report.pl"

# fake_run DIR MODE LOAD_FILTERED SERVERS...: samples as bench/run
# writes them.
fake_run ()
{
    local dir=$1 mode=$2 filtered=$3 id w r
    shift 3
    mkdir -p "$dir/work" "$dir/out"
    printf 'date\t2026-01-01 00:00 UTC\nmachine\t2 CPUs\nmode\t%s: 1s runs\n' \
        "$mode" > "$dir/work/meta.txt"
    printf 'load_filtered\t%s\nretries\t0\nduration\t100\n' "$filtered" \
        >> "$dir/work/meta.txt"
    echo 'group,workload,server,round,iops,mbs,p50_us,p99_us,foreign_cores,load1,attempts,flush_s' \
        > "$dir/work/raw.csv"
    for w in rr32 rw32; do
        for id in "$@"; do
            for r in 1 2; do
                echo "main,$w,$id,$r,$((RANDOM + 1000)),1.0,10,20,0.1,1.0,1," \
                    >> "$dir/work/raw.csv"
            done
        done
    done
    perl "$report" "$dir/work" "$dir/out" ||
        fail "report.pl failed on the $mode run"
}

# colours DIR: "label<TAB>colour" lines of DIR/out's chart.
colours ()
{
    perl -e '
        open my $d, "<", "$ARGV[0]/chart.dat" or die; my @l = <$d> =~ /"([^"]*)"/g;
        open my $g, "<", "$ARGV[0]/chart.gp" or die; local $/; my $gp = <$g>;
        while ($gp =~ /using (\d+)\S* title columnheader\(\d+\) lc rgb "(#[0-9a-f]+)"/g) {
            print "$l[$1 - 1]\t$2\n";
        }' "$1/out"
}

fake_run "$tmp/full" full yes lo-async lo-sync plugin nbdkit-file \
    nbdkit-cache qemu-nbd nbd-server nbdkit-memory
fake_run "$tmp/quick" quick no nbdkit-memory nbd-server qemu-nbd \
    nbdkit-cache nbdkit-file plugin lo-async
colours "$tmp/full" | sort > "$tmp/full.colours"
colours "$tmp/quick" | sort > "$tmp/quick.colours"
cat "$tmp/full.colours" "$tmp/quick.colours"
test "$(wc -l < "$tmp/full.colours")" -eq 8 ||
    fail "the full chart does not give each of its 8 servers a colour"
test "$(wc -l < "$tmp/quick.colours")" -eq 7 ||
    fail "the quick chart does not give each of its 7 servers a colour"
test "$(cut -f2 "$tmp/full.colours" | sort -u | wc -l)" -eq 8 ||
    fail "two servers share a colour"
# Every server of the quick chart has its colour of the full one.
missing=$(comm -23 "$tmp/quick.colours" "$tmp/full.colours")
test -z "$missing" || fail "colours differ between full and quick: $missing"

grep -q 'not load-filtered' "$tmp/quick/out/results.md" ||
    fail "the quick report does not say it was not load-filtered"
grep -q 'not load-filtered' "$tmp/quick/out/chart.gp" ||
    fail "the quick chart does not say it was not load-filtered"
if grep -q 'not load-filtered' "$tmp/full/out/results.md" "$tmp/full/out/chart.gp"; then
    fail "the full run calls itself not load-filtered"
fi

# One set of run times: full about 15-20 minutes, quick about 3.
for f in README.md bench/README.md bench/run; do
    tr '\n' ' ' < "$abs_top_srcdir/$f" | tr -s ' #' ' ' > "$tmp/flat"
    grep -q 'about 15-20 minutes' "$tmp/flat" ||
        fail "$f does not give the full run as about 15-20 minutes"
    grep -Eq 'about 3( minutes)?[,;) ]' "$tmp/flat" ||
        fail "$f does not give the quick run as about 3 minutes"
    if grep -Eo '(about|under) [0-9-]+ minutes' "$tmp/flat" |
       grep -Ev 'about (15-20|3) minutes'; then
        fail "$f gives another run time"
    fi
done

# The product, not the tracker.
for f in bench/README.md bench/run bench/report.pl bench/cache-micro.c \
         bench/results/results.md "$tmp/full/out/results.md"; do
    case $f in /*) ;; *) f=$abs_top_srcdir/$f ;; esac
    if grep -Eni 'issue[s]? *[0-9]' "$f"; then
        fail "$f speaks of issue numbers"
    fi
done
