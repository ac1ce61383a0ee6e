#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# libFuzzer on NBD_OPT_STARTTLS and the options around it, over a fake
# TLS transport that asserts nothing sent in the clear after STARTTLS
# is parsed and nothing negotiated before it survives
# (fuzzing/fuzz-tls.c, fuzzing/fake-tls.c); see fuzz-run.sh.
target=tls
source "$(dirname "$0")/fuzz-run.sh"
