/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the table of exports.
 *
 * The exports are opened and closed as the plugin's are, by
 * exports/export-set.c: devices before the daemon listens, so a bad
 * file stops it with the device's own message, the cache exports once
 * the cache exists.  exports[] borrows the names, devices and cache
 * exports from that set and adds what the daemon needs of each (its
 * flags, an io_uring's fd, counters); it is fixed from then on and
 * read by every thread without locks.  This file also decides the
 * transmission flags, which is where the durability promises of SPEC
 * section 6 turn into what clients are told.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "export-set.h"
#include "internal.h"
#include "log.h"

struct export *exports;
size_t nr_exports;
static struct export_set set;   /* what exports[] borrows from */

int
exports_open_devices (const struct config *cfg)
{
  if (export_set_open_devices (&set, cfg) == -1)
    return -1;
  exports = calloc (set.n, sizeof *exports);
  if (exports == NULL) {
    log_error ("calloc: %m");
    return -1;
  }
  for (size_t i = 0; i < set.n; i++) {
    exports[i].name = set.v[i].name;
    exports[i].dev = set.v[i].dev;
  }
  nr_exports = set.n;
  return 0;
}

int
exports_open_cache (const struct config *cfg)
{
  if (export_set_open_cache (&set, cfg) == -1)
    return -1;
  for (size_t i = 0; i < nr_exports; i++) {
    struct export *exp = &exports[i];

    exp->ce = set.v[i].ce;
    exp->description = set.v[i].description;
    exp->size = cache_export_size (exp->ce);
    exp->blksz = cache_export_blksz (exp->ce);
    exp->readonly = cache_export_readonly (exp->ce);
    exp->can_fua = cache_export_can_fua (exp->ce);
    /* io_uring reads at offsets: not for seek-mode devices. */
    exp->uring_fd = exp->dev && device_get_info (exp->dev)->positional
      ? device_fd (exp->dev) : -1;
  }
  return 0;
}

int
exports_close (void)
{
  int status = export_set_close (&set);

  free (exports);
  exports = NULL;
  nr_exports = 0;
  return status;
}

struct export *
export_find (const char *name, size_t len)
{
  if (nr_exports == 0)
    return NULL;
  if (len == 0)
    return &exports[0];
  for (size_t i = 0; i < nr_exports; i++)
    if (strlen (exports[i].name) == len
        && memcmp (exports[i].name, name, len) == 0)
      return &exports[i];
  return NULL;
}

/* The flags say what the cache promises (SPEC section 6, cache.h):
 *
 * - SEND_FLUSH always: cache_flush writes back every dirty block of
 *   the export, whichever connection dirtied it, and fdatasyncs before
 *   the reply, at every commit level.
 * - SEND_FUA unless commit=none: a FUA write (or zero or trim) is
 *   durable before its reply at commit=medium and high, and reaches
 *   the host file (unsynced) at commit=low.  At commit=none FUA would
 *   promise nothing, so it is not offered and clients FLUSH instead.
 *   At commit=high every write is durable before its reply anyway.
 * - CAN_MULTI_CONN: there is one cache per process shared by all
 *   connections, so a FLUSH or FUA on one connection covers writes
 *   replied to on any other, and reads see the newest write from any.
 * - FUA, TRIM, WRITE_ZEROES and FAST_ZERO only when writable (FAST_ZERO
 *   must not be set without WRITE_ZEROES); READ_ONLY otherwise, and
 *   writes then fail with EPERM.
 * - CACHE: NBD_CMD_CACHE prefetches into the cache.
 * - DF only with structured replies, as the protocol requires.
 */
uint16_t
export_transmission_flags (const struct export *exp, bool structured)
{
  uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH
    | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;

  if (exp->can_fua && !exp->readonly)
    flags |= NBD_FLAG_SEND_FUA;
  if (exp->readonly)
    flags |= NBD_FLAG_READ_ONLY;
  else
    flags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES
      | NBD_FLAG_SEND_FAST_ZERO;
  if (structured)
    flags |= NBD_FLAG_SEND_DF;
  return flags;
}
