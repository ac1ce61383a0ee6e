/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: configuration values as words.
 *
 * The spelling of modes, commit levels and times as the options take
 * them, shared by --dump-config (dump.c) and blk.c's messages.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>

#include "opts.h"

const char *
access_mode_name (enum access_mode m)
{
  return m == ACCESS_RO ? "ro" : "rw";
}

const char *
sync_mode_name (enum sync_mode m)
{
  return m == SYNC_SYNC ? "sync" : "async";
}

const char *
deny_mode_name (enum deny_mode m)
{
  static const char *const names[] = {
    [DENY_NO] = "denyno", [DENY_RD] = "denyrd",
    [DENY_WR] = "denywr", [DENY_RW] = "denyrw",
  };
  return names[m];
}

const char *
io_mode_name (enum io_mode m)
{
  static const char *const names[] = {
    [IO_PROBE] = "probe", [IO_XTYPE] = "xtype", [IO_SEEK] = "seek",
  };
  return names[m];
}

const char *
commit_level_name (enum commit_level c)
{
  static const char *const names[] = {
    [COMMIT_NONE] = "none", [COMMIT_LOW] = "low",
    [COMMIT_MEDIUM] = "medium", [COMMIT_HIGH] = "high",
  };
  return names[c];
}

void
format_seconds (char *buf, size_t len, uint64_t ms)
{
  int n = snprintf (buf, len, "%" PRIu64 ".%03" PRIu64, ms / 1000, ms % 1000);

  /* Drop trailing zeroes of the fraction, and the point if bare. */
  while (n > 0 && (size_t) n < len && buf[n - 1] == '0')
    buf[--n] = '\0';
  if (n > 0 && (size_t) n < len && buf[n - 1] == '.')
    buf[--n] = '\0';
}
