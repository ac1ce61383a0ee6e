# SPDX-License-Identifier: BSD-3-Clause
# Shared body of test-fuzz-opts.sh, test-fuzz-handshake.sh,
# test-fuzz-request.sh and test-fuzz-tls.sh ($target set): run one libFuzzer target
# (fuzzing/fuzz-$target.c, built with clang, ASan and UBSan by
# fuzzing/build.sh) for FUZZ_SECONDS (60; LONG=1: 600), starting from
# the committed seed corpus, which also holds the regression inputs of
# crashes found before.  A crash, sanitizer report, leak (checked at
# exit) or hang (20 s per input) fails the test; the input is kept in
# tests/fuzz-artifacts/ and the command to replay it is printed.
#
# The targets are built only where configure enabled fuzzing: by
# default in the --enable-sanitizers build, so ./quickstart test, which
# builds both, fuzzes once.  Elsewhere this test skips.
source ./functions.sh
set -e

fuzzer="$abs_builddir/fuzz/fuzz-$target"
seeds="$abs_top_srcdir/fuzzing/corpus/$target"
test -x "$fuzzer" ||
    skip "the fuzz targets are built only in the --enable-sanitizers" \
         "build (or with --enable-fuzzing=yes); this build has none"
if [ "${LONG:-0}" != 0 ]; then seconds=${FUZZ_SECONDS:-600}
else seconds=${FUZZ_SECONDS:-60}; fi
make_tmpdir
mkdir "$tmp/corpus"

# New inputs go to $tmp/corpus (thrown away); the seeds are only read.
# Leaks are checked once, at exit (per input it costs 2-5x the speed).
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
    -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$tmp/" \
    "$tmp/corpus" "$seeds" >"$tmp/log" 2>&1
status=$?
set -e
if [ "$status" -ne 0 ]; then
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$tmp/log" | tail -80
    mkdir -p "$abs_builddir/fuzz-artifacts"
    for a in "$tmp"/crash-* "$tmp"/leak-* "$tmp"/timeout-* "$tmp"/oom-*; do
        [ -e "$a" ] || continue
        cp "$a" "$abs_builddir/fuzz-artifacts/"
        echo "input (base64) $(basename "$a"):"
        base64 "$a" | head -40
        echo "replay: $fuzzer $abs_builddir/fuzz-artifacts/$(basename "$a")"
    done
    fail "fuzz-$target found a bug (status $status): add the input to" \
         "fuzzing/corpus/$target/ as a regression seed once fixed"
fi
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/log")
cov=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$tmp/log" |
      sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/\1 edges, \2 features/p')
echo "figures: fuzz-$target: $execs executions in $seconds s" \
     "($((execs / seconds)) exec/s), coverage $cov," \
     "$(ls "$seeds" | wc -l) seeds, $(ls "$tmp/corpus" | wc -l) new inputs"
