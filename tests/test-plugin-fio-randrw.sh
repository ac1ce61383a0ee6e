#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# frontend-fio-randrw.sh against the nbdkit plugin.
frontend=plugin
source "$(dirname "$0")/frontend-fio-randrw.sh"
