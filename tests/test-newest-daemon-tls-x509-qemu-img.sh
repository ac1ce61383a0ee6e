#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-tls-x509-qemu-img.sh with the newest clients (libnbd 1.22, qemu 10).
newest=yes
source "$(dirname "$0")/test-tls-x509-qemu-img.sh"
