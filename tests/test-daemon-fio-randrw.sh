#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-fio-randrw.sh against the nbd-loopback daemon.
frontend=daemon
source "$(dirname "$0")/frontend-fio-randrw.sh"
