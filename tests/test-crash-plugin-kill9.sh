#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-crash-kill9.sh against the nbdkit plugin.
frontend=plugin
source "$(dirname "$0")/frontend-crash-kill9.sh"
