#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# vm/host-kill.sh against the nbd-loopback daemon,
# at commit=medium with delwri=30, 20 kills in one boot.
frontend=daemon
vm_commit=medium
vm_kill_rounds=20
source "$(dirname "$0")/vm/host-kill.sh"
