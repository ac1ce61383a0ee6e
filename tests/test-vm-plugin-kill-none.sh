#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# vm/host-kill.sh against the nbdkit plugin,
# at commit=none (no FUA: flushes only), 20 kills in one boot.
frontend=plugin
vm_commit=none
vm_kill_rounds=20
source "$(dirname "$0")/vm/host-kill.sh"
