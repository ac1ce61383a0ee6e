#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The cache micro-benchmark runs (in --quick mode: a smoke test of the
# benchmark itself, well under 2 s, that asserts nothing about speed).
source ./functions.sh
set -e
set -x

test -x ./cache-micro || skip "cache-micro was not built"
./cache-micro --quick
