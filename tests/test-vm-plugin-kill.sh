#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# vm/host-kill.sh against the nbdkit plugin,
# at commit=medium, 8 kills in one boot (with
# test-vm-*-kill-none.sh, 12 kill points per front end).
frontend=plugin
vm_commit=medium
vm_kill_rounds=8
source "$(dirname "$0")/vm/host-kill.sh"
