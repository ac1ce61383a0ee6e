/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: opening and closing the exports, for both front ends.
 *
 * The order is the point of this file (export-set.h has the whole
 * sequence): devices before the cache exports over them, cache
 * exports closed (written back) before cache_shutdown writes back
 * whatever is left, and the devices, whose locks tell other programs
 * the file is in use, closed last, once no I/O thread can touch them.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "device.h"
#include "export-set.h"
#include "iothreads.h"
#include "log.h"
#include "opts.h"

/* Add an entry named name; NULL (logged) if out of memory. */
static struct export_entry *
add_entry (struct export_set *set, const char *name)
{
  struct export_entry *e = &set->v[set->n];

  memset (e, 0, sizeof *e);
  e->name = strdup (name);
  if (e->name == NULL) {
    log_error ("strdup: %m");
    return NULL;
  }
  set->n++;
  return e;
}

int
export_set_open_devices (struct export_set *set, const struct config *cfg)
{
  size_t n = cfg->nr_exports + (cfg->blk.ramdisk ? 1 : 0);

  set->n = 0;
  set->v = calloc (n ? n : 1, sizeof *set->v);
  if (set->v == NULL) {
    log_error ("calloc: %m");
    return -1;
  }
  if (device_check_distinct (cfg->exports, cfg->nr_exports) == -1)
    return -1;
  for (size_t i = 0; i < cfg->nr_exports; i++) {
    const struct export_config *ec = &cfg->exports[i];
    struct device *dev = device_open (ec);
    struct export_entry *e;

    if (dev == NULL)
      return -1;                /* device_open said why */
    e = add_entry (set, ec->name);
    if (e == NULL) {
      device_close (dev);
      return -1;
    }
    e->ec = ec;
    e->dev = dev;
  }
  if (cfg->blk.ramdisk && add_entry (set, "ram0") == NULL)
    return -1;
  return 0;
}

int
export_set_open_cache (struct export_set *set, const struct config *cfg)
{
  for (size_t i = 0; i < set->n; i++) {
    struct export_entry *e = &set->v[i];
    const struct export_config *ec = e->ec;

    if (e->dev)
      e->ce = cache_export_open (e->dev);
    else
      e->ce = cache_export_open_ram (e->name, cfg->blk.ramdisk,
                                     cfg->blk.ramdisk_sector,
                                     cfg->blk.readonly);
    if (e->ce == NULL) {
      log_error ("%s: opening the cache export: %m", e->name);
      return -1;
    }
    /* Tracking that cannot start leaves the export serving without
     * it (cache_export_track said why).  nbdkit offers plugins
     * base:allocation only: the plugin tracks and keeps the sidecar,
     * which the daemon serves later.
     */
    if (ec && ec->cbt)
      cache_export_track (e->ce, ec->cbt, ec->cbt_image, ec->cbt_file);
    e->description = export_description (ec, cache_export_size (e->ce),
                                         cache_export_readonly (e->ce),
                                         cache_export_blksz (e->ce));
    if (e->description == NULL) {
      log_error ("%s: describing the export: %m", e->name);
      return -1;
    }
    log_debug ("%s: %s", e->name, e->description);
  }
  return 0;
}

int
export_set_close (struct export_set *set)
{
  int status = 0;

  /* Write back and forget each export, then the whole cache; only
   * then may the I/O threads stop and the devices (and their locks)
   * go.
   */
  for (size_t i = 0; i < set->n; i++) {
    struct export_entry *e = &set->v[i];

    if (e->ce && cache_export_close (e->ce) == -1) {
      log_error ("%s: writing back the cache: %m", e->name);
      status = -1;
    }
    e->ce = NULL;
  }
  if (cache_shutdown () == -1) {
    log_error ("writing back the cache: %m");
    status = -1;
  }
  iothreads_stop ();
  for (size_t i = 0; i < set->n; i++) {
    struct export_entry *e = &set->v[i];

    if (e->dev)
      device_close (e->dev);
    free (e->name);
    free (e->description);
  }
  free (set->v);
  set->v = NULL;
  set->n = 0;
  return status;
}
