#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-fault-writeback.sh against the nbdkit plugin, nbdkit under valgrind
# memcheck (NBDL_VALGRIND=1, see functions.sh): an error or a definite
# leak in any nbdkit process fails the test.
NBDL_VALGRIND=1
frontend=plugin
source "$(dirname "$0")/frontend-fault-writeback.sh"
