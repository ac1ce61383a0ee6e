#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# vm/host-power.sh against the nbdkit plugin:
# 4 power cuts, one per commit level (high, medium, low with sync,
# none).  LONG=1 runs 200.
frontend=plugin
vm_power_cycles=4
source "$(dirname "$0")/vm/host-power.sh"
