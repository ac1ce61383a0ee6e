#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdkit --dump-plugin describes the plugin (name, parallel thread
# model, loopback_version = the package version, the callbacks SPEC
# asks for), and nbdkit --help shows its configuration help.
source ./functions.sh
set -e
set -x

requires_frontend plugin
make_tmpdir

loopback_nbdkit "$loopback_plugin" --dump-plugin > "$tmp/dump"
cat "$tmp/dump"
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$abs_top_builddir/config.h")
test -n "$version"
grep -Fx "name=loopback" "$tmp/dump"
grep -Fx "loopback_version=$version" "$tmp/dump"
grep -Fx "version=$version" "$tmp/dump"
grep -Fx "api_version=2" "$tmp/dump"
grep -Fx "thread_model=parallel" "$tmp/dump"
grep -Fx "magic_config_key=loopback" "$tmp/dump"
for cb in list_exports default_export export_description block_size \
          can_fua can_multi_conn can_cache can_fast_zero extents cache \
          get_ready after_fork cleanup; do
    grep -Fx "has_$cb=1" "$tmp/dump"
done

loopback_nbdkit "$loopback_plugin" --help > "$tmp/help"
cat "$tmp/help"
grep -F 'plugin: loopback' "$tmp/help"
grep -E '^\[loopback=\]OPTS ' "$tmp/help"
grep -E '^blk=OPTS ' "$tmp/help"
grep -F 'fd=PATH' "$tmp/help"
grep -F 'commit=' "$tmp/help"
grep -F 'nbdkit-loopback-plugin(1)' "$tmp/help"
