#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-qemu-io.sh against the nbd-loopback daemon, with
# the newest clients (libnbd 1.22, qemu 10).
newest=yes
frontend=daemon
source "$(dirname "$0")/frontend-qemu-io.sh"
