#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# vm/host-tls.sh against the nbdkit plugin.
frontend=plugin
source "$(dirname "$0")/vm/host-tls.sh"
