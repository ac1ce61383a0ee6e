#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# tests/long/power-cuts.sh [BUILDDIR [CYCLES]]: the long run of the
# power-cut tests (tests/vm/host-power.sh): CYCLES power cuts (default
# 200) for each front end, the commit levels in turn, then the figures
# of both: acknowledged writes, durable writes, sectors checked,
# durable sectors lost (must be 0), garbage sectors (must be 0), and
# volatile_lost, the sectors whose newest write was not durable and
# did not survive (what the power cuts took).  BUILDDIR defaults to
# build/ in the source tree; it must be configured and built.  About
# 6-10 s per cycle under TCG; the two front ends run one after the
# other.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
cycles=${2:-200}
[ "$cycles" -gt 0 ] 2>/dev/null || { echo "power-cuts.sh: CYCLES must be a positive number" >&2; exit 2; }
test -f "$build/tests/Makefile" || { echo "power-cuts.sh: $build is not a configured build tree" >&2; exit 2; }
status=0
for fe in daemon plugin; do
    t=test-vm-$fe-power.sh
    start=$SECONDS
    LONG=1 NBDL_VM_POWER_CYCLES=$cycles make -s -C "$build/tests" check TESTS="$t" >/dev/null 2>&1 || status=1
    result=$(sed -n 's/^:test-result: //p' "$build/tests/$t.trs" 2>/dev/null | head -1)
    echo "$fe: ${result:-no result} in $(( SECONDS - start )) s ($build/tests/$t.log)"
    grep -E '^figures: power cuts|^vm: cycle .*LOST|^SKIP' "$build/tests/$t.log" || :
done
exit "$status"
