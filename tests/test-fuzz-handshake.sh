#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# libFuzzer on the daemon's handshake and option haggling, through its
# real connection code (fuzzing/fuzz-handshake.c); see fuzz-run.sh.
target=handshake
source "$(dirname "$0")/fuzz-run.sh"
