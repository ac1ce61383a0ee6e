#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-commit-levels.sh against the nbdkit plugin.
frontend=plugin
source "$(dirname "$0")/frontend-commit-levels.sh"
