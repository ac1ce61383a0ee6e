#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-nbdsh.sh against the nbd-loopback daemon.
frontend=daemon
source "$(dirname "$0")/frontend-nbdsh.sh"
