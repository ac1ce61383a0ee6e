#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Option haggling with libnbd: LIST, INFO (the empty name is lo0,
# unknown exports are errors), LIST/SET_META_CONTEXT, ABORT, GO,
# simple replies when structured replies are not asked for, and
# NBD_OPT_EXPORT_NAME from a client without fixed newstyle.
source ./functions.sh
set -e
set -x

test -x ./client-libnbd || skip "client-libnbd not built (no libnbd-dev)"
make_tmpdir
start_fixture_server

for mode in opt-list opt-info opt-meta no-structured export-name; do
    ./client-libnbd "$sock" $mode
done
stop_server
