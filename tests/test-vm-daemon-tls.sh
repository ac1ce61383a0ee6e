#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# vm/host-tls.sh against the nbd-loopback daemon.
frontend=daemon
source "$(dirname "$0")/vm/host-tls.sh"
