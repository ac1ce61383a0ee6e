#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# libFuzzer on the devb-loopback option parser (opts_parse_words,
# opts_parse_group, opts_finish, --dump-config) (fuzzing/fuzz-opts.c);
# see fuzz-run.sh.
target=opts
source "$(dirname "$0")/fuzz-run.sh"
