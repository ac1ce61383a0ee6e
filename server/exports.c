/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the table of exports.
 *
 * One export per fd= (lo0, lo1, ... in command-line order), then ram0
 * when blk ramdisk= is given.  Devices are opened before the daemon
 * listens, so a bad file stops it with the device's own message; the
 * cache exports are made once the cache exists.  The table is fixed
 * from then on and read by every thread without locks.  This file
 * also decides the transmission flags, which is where the durability
 * promises of SPEC section 6 turn into what clients are told.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "internal.h"
#include "iothreads.h"
#include "log.h"
#include "opts.h"

struct export *exports;
size_t nr_exports;

int
exports_open_devices (const struct config *cfg)
{
  size_t n = cfg->nr_exports + (cfg->blk.ramdisk ? 1 : 0);

  exports = calloc (n, sizeof *exports);
  if (exports == NULL) {
    log_error ("calloc: %m");
    return -1;
  }
  if (device_check_distinct (cfg->exports, cfg->nr_exports) == -1)
    return -1;
  for (size_t i = 0; i < cfg->nr_exports; i++) {
    struct export *exp = &exports[nr_exports];

    exp->dev = device_open (&cfg->exports[i]);
    if (exp->dev == NULL)
      return -1;                /* device_open said why */
    exp->name = strdup (cfg->exports[i].name);
    if (exp->name == NULL) {
      log_error ("strdup: %m");
      device_close (exp->dev);
      return -1;
    }
    nr_exports++;
  }
  if (cfg->blk.ramdisk) {
    exports[nr_exports].name = strdup ("ram0");
    if (exports[nr_exports].name == NULL) {
      log_error ("strdup: %m");
      return -1;
    }
    nr_exports++;
  }
  return 0;
}

static int
fill_export (struct export *exp, const struct export_config *ec)
{
  exp->size = cache_export_size (exp->ce);
  exp->blksz = cache_export_blksz (exp->ce);
  exp->readonly = cache_export_readonly (exp->ce);
  exp->can_fua = cache_export_can_fua (exp->ce);
  exp->description = export_description (ec, exp->size, exp->readonly,
                                         exp->blksz);
  if (exp->description == NULL) {
    log_error ("%s: describing the export: %m", exp->name);
    return -1;
  }
  log_debug ("%s: %s", exp->name, exp->description);
  return 0;
}

int
exports_open_cache (const struct config *cfg)
{
  for (size_t i = 0; i < nr_exports; i++) {
    struct export *exp = &exports[i];
    const struct export_config *ec = NULL;

    if (exp->dev) {
      ec = &cfg->exports[i];
      exp->ce = cache_export_open (exp->dev);
    }
    else
      exp->ce = cache_export_open_ram (exp->name, cfg->blk.ramdisk,
                                       cfg->blk.ramdisk_sector,
                                       cfg->blk.readonly);
    if (exp->ce == NULL) {
      log_error ("%s: opening the cache export: %m", exp->name);
      return -1;
    }
    /* Tracking that cannot start leaves the export serving without
     * it (cache_export_track said why).
     */
    if (ec && ec->cbt)
      cache_export_track (exp->ce, ec->cbt, ec->cbt_image, ec->cbt_file);
    if (fill_export (exp, ec) == -1)
      return -1;
    /* io_uring reads at offsets: not for seek-mode devices. */
    exp->uring_fd = exp->dev && device_get_info (exp->dev)->positional
      ? device_fd (exp->dev) : -1;
  }
  return 0;
}

int
exports_close (void)
{
  int status = 0;

  /* Write back and forget each export, then the whole cache; only
   * then may the I/O threads stop and the devices (and their locks)
   * go.
   */
  for (size_t i = 0; i < nr_exports; i++) {
    if (exports[i].ce && cache_export_close (exports[i].ce) == -1) {
      log_error ("%s: writing back the cache: %m", exports[i].name);
      status = -1;
    }
    exports[i].ce = NULL;
  }
  if (cache_shutdown () == -1) {
    log_error ("writing back the cache: %m");
    status = -1;
  }
  iothreads_stop ();
  for (size_t i = 0; i < nr_exports; i++) {
    if (exports[i].dev)
      device_close (exports[i].dev);
    free (exports[i].name);
    free (exports[i].description);
  }
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
