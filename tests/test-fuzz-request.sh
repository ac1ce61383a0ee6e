#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# libFuzzer on the daemon's request decoder and request paths, after a
# valid handshake (fuzzing/fuzz-request.c); see fuzz-run.sh.
target=request
source "$(dirname "$0")/fuzz-run.sh"
