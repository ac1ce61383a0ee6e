#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-crash-kill9.sh against the nbdkit plugin, nbdkit under valgrind
# memcheck (NBDL_VALGRIND=1, see functions.sh): an error or a definite
# leak in any nbdkit process fails the test.
# 12 kill cycles (LONG=1: the body's 2000), each killed within 1.5 s,
# not 150 ms (valgrind runs nbdkit some 20 times slower).  A killed
# nbdkit leaves no leak summary: this checks the accesses while
# serving and recovering; the leaks are the fault tests' (SIGTERM).
NBDL_VALGRIND=1
[ "${LONG:-0}" != 0 ] || : "${CRASH_CYCLES:=12}"
: "${CRASH_MAX_MS:=1500}"
frontend=plugin
source "$(dirname "$0")/frontend-crash-kill9.sh"
