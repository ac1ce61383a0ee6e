/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the exports both front ends serve, opened and closed
 * one way.
 *
 * One export per fd= (lo0, lo1, ... in command-line order), then ram0
 * for blk ramdisk=.  The daemon (server/exports.c) and the nbdkit
 * plugin (plugin/loopback.c) differ only in when they call these:
 *
 *   export_set_open_devices   before anything listens, so a bad file
 *                             stops the front end with the device's
 *                             own message
 *   (the front end: cache_init, and the nio= I/O threads)
 *   export_set_open_cache     a cache export over each device, and
 *                             over memory for ram0; changed-block
 *                             tracking; the descriptions
 *   ... serving ...
 *   export_set_close          the reverse: each cache export written
 *                             back and closed, cache_shutdown, the I/O
 *                             threads stopped, only then the devices
 *                             (and their locks)
 *
 * Errors are logged here, once, through log.h (the plugin's sink
 * hands them to nbdkit_error).  The set is filled in by one thread
 * before serving and read-only while serving.
 */
#ifndef NBDL_EXPORT_SET_H
#define NBDL_EXPORT_SET_H

#include <stddef.h>

#include "configuration.h"

struct device;
struct cache_export;

/* One export: an fd= target through the cache, or the RAM disk. */
struct export_entry {
  char *name;                   /* "lo0", ..., "ram0" */
  const struct export_config *ec; /* its fd= (in the caller's config,
                                   which outlives the set); NULL: ram0 */
  struct device *dev;           /* NULL for ram0 */
  struct cache_export *ce;      /* NULL until export_set_open_cache */
  char *description;            /* for LIST and NBD_INFO_DESCRIPTION,
                                   made by export_set_open_cache */
};

struct export_set {
  struct export_entry *v;       /* n entries */
  size_t n;
};

/* Check that no two fd= are the same file, open and lock each, then
 * add ram0 if cfg asks for a RAM disk.  Returns -1 (logged) on
 * failure; export_set_close still closes what was opened.
 */
extern int export_set_open_devices (struct export_set *set,
                                    const struct config *cfg);
/* After cache_init: the cache exports, tracking where cbt asks for it
 * (tracking that cannot start leaves the export serving without it,
 * logged by the cache), and the descriptions.  Returns -1 (logged).
 */
extern int export_set_open_cache (struct export_set *set,
                                  const struct config *cfg);
/* Write everything back and close it all: cache exports, then the
 * cache (cache_shutdown), the I/O threads, the devices.  Returns -1 if
 * any write-back failed (logged); everything is closed either way and
 * the set is empty again.
 */
extern int export_set_close (struct export_set *set);

#endif /* NBDL_EXPORT_SET_H */
