#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-direct.sh against the nbdkit plugin.
frontend=plugin
source "$(dirname "$0")/frontend-direct.sh"
