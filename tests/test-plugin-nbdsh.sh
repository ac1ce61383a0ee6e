#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-nbdsh.sh against the nbd-loopback plugin in nbdkit.
frontend=plugin
source "$(dirname "$0")/frontend-nbdsh.sh"
