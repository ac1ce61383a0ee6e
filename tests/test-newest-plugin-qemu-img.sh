#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-qemu-img.sh against the nbd-loopback plugin in nbdkit, with
# the newest clients (libnbd 1.22, qemu 10).
newest=yes
frontend=plugin
source "$(dirname "$0")/frontend-qemu-img.sh"
