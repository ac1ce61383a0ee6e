/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the nbdkit plugin.
 *
 * The same exports and the same cache as the nbd-loopback daemon,
 * served by nbdkit.  Configuration goes through the daemon's parser
 * in command-line order: the loopback group as the bare word (the
 * magic key) or loopback=..., the blk group as blk=...:
 *
 *   nbdkit loopback 'ro,fd=/srv/cd.iso,rw,fd=/srv/disk.img' blk=cache=64m
 *
 * nbdkit owns sockets, TLS and the handshake; each callback here maps
 * onto one cache call.  Files are opened and locked in .get_ready, so
 * errors reach the terminal, by exports/export-set.c, which opens and
 * closes the daemon's exports too; threads (the nio= I/O threads and the
 * cache flusher) start in .after_fork, because nbdkit forks to run in
 * the background; everything dirty is written back in .cleanup.
 * .open runs more than once per connection (for NBD_OPT_INFO and
 * NBD_OPT_GO): it looks the export up and keeps whether the
 * connection wrote, so that .close starts the write-back of what a
 * client left dirty, as the daemon does.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "cache.h"
#include "cleanup.h"
#include "export-set.h"
#include "iothreads.h"
#include "log.h"
#include "opts.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#define MAX_REQUEST (32 * 1024 * 1024)

/* Set during configuration (single-threaded), read-only afterwards. */
static struct opts *parser;
static struct config *cfg;

/* Set in .get_ready, read-only while serving. */
static struct export_set set;

/* One per connection (nbdkit's handle). */
struct connection {
  const struct export_entry *e;
  bool wrote;                   /* atomic: a write, zero or trim was served */
};

static const struct export_entry *
export_of (void *handle)
{
  return ((struct connection *) handle)->e;
}

static void
note_write (void *handle)
{
  __atomic_store_n (&((struct connection *) handle)->wrote, true,
                    __ATOMIC_RELAXED);
}

/* Whether stderr is /dev/null: nbdkit in the background logs to
 * syslog, and only through nbdkit_error.
 */
static bool
stderr_is_null (void)
{
  struct stat a, b;

  return fstat (STDERR_FILENO, &a) == -1
    || (stat ("/dev/null", &b) == 0 && S_ISCHR (a.st_mode)
        && a.st_rdev == b.st_rdev);
}

static void
nbdkit_sink (enum log_level level, const char *msg)
{
  switch (level) {
  case LOG_LEVEL_ERROR:
    nbdkit_error ("%s", msg);
    break;
  case LOG_LEVEL_WARNING:
    /* nbdkit has no warning level.  On a terminal (or any stderr) a
     * warning line as nbdkit would print one; in the background, an
     * error-level log line that says "warning".
     */
    if (stderr_is_null ())
      nbdkit_error ("warning: %s", msg);
    else
      fprintf (stderr, "nbdkit: loopback: warning: %s\n", msg);
    break;
  case LOG_LEVEL_INFO:
  case LOG_LEVEL_DEBUG:
    nbdkit_debug ("%s", msg);
    break;
  }
}

static void
loopback_load (void)
{
  log_set_sink (nbdkit_sink);
}

static void
loopback_unload (void)
{
  config_free (cfg);
  opts_free (parser);
}

static int
loopback_config (const char *key, const char *value)
{
  CLEANUP_FREE char *err = NULL;
  CLEANUP_FREE char *option = NULL;
  int group;

  if (parser == NULL && (parser = opts_new ()) == NULL) {
    nbdkit_error ("out of memory");
    return -1;
  }
  if (strcmp (key, "loopback") == 0)
    group = OPTS_GROUP_LOOPBACK;
  else if (strcmp (key, "blk") == 0)
    group = OPTS_GROUP_BLK;
  else {
    /* nbdkit splits "fd=/x" into key and value: a single option of
     * either group, given on its own.
     */
    group = opts_group_of (key);
    if (group == -1) {
      nbdkit_error ("unknown parameter '%s': use loopback=OPTIONS, "
                    "blk=OPTIONS or a single option of either group "
                    "(nbd-loopback --help lists them)", key);
      return -1;
    }
    if (asprintf (&option, "%s=%s", key, value) == -1) {
      option = NULL;
      nbdkit_error ("out of memory");
      return -1;
    }
    value = option;
  }
  if (opts_parse_group (parser, group, value, &err) == -1) {
    nbdkit_error ("%s", err ? err : "out of memory");
    return -1;
  }
  return 0;
}

/* nbdkit changes directory when it daemonizes: make fd= absolute.
 * (Whether the file exists is for device_open to say, in the same
 * words as the daemon.)
 */
static int
absolute_paths (void)
{
  for (size_t i = 0; i < cfg->nr_exports; i++) {
    char *abs = nbdkit_absolute_path (cfg->exports[i].path);
    if (abs == NULL)
      return -1;                /* nbdkit_absolute_path said why */
    free (cfg->exports[i].path);
    cfg->exports[i].path = abs;
  }
  return 0;
}

static int
loopback_config_complete (void)
{
  CLEANUP_FREE char *err = NULL;

  if (parser == NULL) {
    nbdkit_error ("nothing to export: give at least one file, e.g. "
                  "nbdkit loopback fd=/path/to/disk.img");
    return -1;
  }
  cfg = opts_finish (parser, &err);
  if (cfg == NULL) {
    nbdkit_error ("%s", err ? err : "out of memory");
    return -1;
  }
  /* blk verbose: debug messages (nbdkit shows them with -v). */
  log_verbose = cfg->blk.verbose;
  /* Still in the foreground: warnings go to the terminal. */
  for (size_t i = 0; i < cfg->nr_warnings; i++)
    fprintf (stderr, "nbdkit: loopback: warning: %s\n", cfg->warnings[i]);
  if (cfg->have_user)
    fprintf (stderr, "nbdkit: loopback: warning: user= has no effect in "
             "the plugin: use nbdkit's -u and -g options\n");
  if (cfg->blk.thread_given || cfg->blk.noaiod)
    fprintf (stderr, "nbdkit: loopback: warning: thread= and noaiod have no "
             "effect in the plugin: nbdkit runs the requests (see its -t "
             "option)\n");
  return absolute_paths ();
}

/* Open and lock every file, set up the cache.  No threads yet. */
static int
loopback_get_ready (void)
{
  if (export_set_open_devices (&set, cfg) == -1
      || cache_init (&cfg->blk, false) == -1
      || export_set_open_cache (&set, cfg) == -1)
    return -1;
  return 0;
}

static int
loopback_after_fork (void)
{
  if (iothreads_start (cfg->nio) == -1) {
    nbdkit_error ("starting %u I/O threads: %m", (unsigned) cfg->nio);
    return -1;
  }
  return cache_start_flusher ();
}

/* Everything written back (failures logged), then closed. */
static void
loopback_cleanup (void)
{
  export_set_close (&set);
}

static void
loopback_dump_plugin (void)
{
  printf ("loopback_version=%s\n", PACKAGE_VERSION);
  printf ("loopback_groups=loopback,blk\n");
}

static int
loopback_list_exports (int readonly, int is_tls,
                       struct nbdkit_exports *list)
{
  for (size_t i = 0; i < set.n; i++)
    if (nbdkit_add_export (list, set.v[i].name, set.v[i].description) == -1)
      return -1;
  return 0;
}

static const char *
loopback_default_export (int readonly, int is_tls)
{
  return set.n > 0 ? set.v[0].name : NULL;
}

static void *
loopback_open (int readonly)
{
  const char *name = nbdkit_export_name ();
  const struct export_entry *e = NULL;
  struct connection *c;

  if (name == NULL || name[0] == '\0')
    e = set.n > 0 ? &set.v[0] : NULL;
  for (size_t i = 0; e == NULL && i < set.n; i++)
    if (strcmp (set.v[i].name, name) == 0)
      e = &set.v[i];
  if (e == NULL) {
    nbdkit_error ("no export named '%s' (nbdinfo --list shows them)", name);
    return NULL;
  }
  c = calloc (1, sizeof *c);
  if (c == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  c->e = e;
  return c;
}

/* A client that wrote went away: start writing back now, as the
 * daemon does (cache_flush_soon).
 */
static void
loopback_close (void *handle)
{
  struct connection *c = handle;

  if (__atomic_load_n (&c->wrote, __ATOMIC_RELAXED))
    cache_flush_soon (c->e->ce);
  free (c);
}

static const char *
loopback_export_description (void *handle)
{
  const struct export_entry *e = export_of (handle);
  return e->description;
}

static int64_t
loopback_get_size (void *handle)
{
  const struct export_entry *e = export_of (handle);
  return cache_export_size (e->ce);
}

static int
loopback_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum)
{
  const struct export_entry *e = export_of (handle);

  *minimum = cache_export_blksz (e->ce);
  *preferred = cache_export_preferred (e->ce);
  *maximum = MAX_REQUEST;
  return 0;
}

static int
loopback_can_write (void *handle)
{
  const struct export_entry *e = export_of (handle);
  return !cache_export_readonly (e->ce);
}

static int
loopback_can_flush (void *handle)
{
  return 1;
}

/* FUA is native: the cache treats a FUA write as "file-system data"
 * and applies the commit level (SPEC section 6).  At commit=none FUA
 * means nothing, so it is not advertised and clients use FLUSH.
 */
static int
loopback_can_fua (void *handle)
{
  const struct export_entry *e = export_of (handle);
  return cache_export_can_fua (e->ce) ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_NONE;
}

/* One cache serves every connection and a flush writes back every
 * dirty block of the export, whoever wrote it: multi-conn is safe.
 */
static int
loopback_can_multi_conn (void *handle)
{
  return 1;
}

static int
loopback_can_trim (void *handle)
{
  return 1;
}

static int
loopback_can_zero (void *handle)
{
  return 1;
}

static int
loopback_can_fast_zero (void *handle)
{
  return 1;
}

static int
loopback_can_extents (void *handle)
{
  return 1;
}

static int
loopback_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

static int
loopback_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  const struct export_entry *e = export_of (handle);
  return cache_read (e->ce, buf, count, offset);
}

static unsigned
cache_flags (uint32_t flags)
{
  return (flags & NBDKIT_FLAG_FUA ? CACHE_FUA : 0)
    | (flags & NBDKIT_FLAG_MAY_TRIM ? CACHE_MAY_TRIM : 0)
    | (flags & NBDKIT_FLAG_FAST_ZERO ? CACHE_FAST_ZERO : 0);
}

static int
loopback_pwrite (void *handle, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags)
{
  const struct export_entry *e = export_of (handle);

  note_write (handle);
  return cache_write (e->ce, buf, count, offset, cache_flags (flags));
}

static int
loopback_flush (void *handle, uint32_t flags)
{
  const struct export_entry *e = export_of (handle);
  return cache_flush (e->ce);
}

static int
loopback_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  const struct export_entry *e = export_of (handle);

  note_write (handle);
  return cache_trim (e->ce, count, offset, cache_flags (flags));
}

static int
loopback_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  const struct export_entry *e = export_of (handle);

  note_write (handle);
  return cache_zero (e->ce, count, offset, cache_flags (flags));
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  return nbdkit_add_extent (opaque, offset, length,
                            hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO
                            : 0);
}

static int
loopback_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  const struct export_entry *e = export_of (handle);
  return cache_extents (e->ce, count, offset, add_extent, extents);
}

static int
loopback_cache (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  const struct export_entry *e = export_of (handle);

  if (flags != 0) {
    errno = EINVAL;
    return -1;
  }
  return cache_prefetch (e->ce, count, offset);
}

static struct nbdkit_plugin plugin = {
  .name = "loopback",
  .longname = "QNX devb-loopback style exports with an io-blk cache",
  .version = PACKAGE_VERSION,
  .description = "Serves files and block devices as exports lo0, lo1, ... "
    "configured with QNX devb-loopback options, through a write-back cache.",
  .load = loopback_load,
  .unload = loopback_unload,
  .config = loopback_config,
  .config_complete = loopback_config_complete,
  .config_help =
    "[loopback=]OPTS   devb-loopback options: fd=PATH (one export each),\n"
    "                  ro|rw, sync|async, denyno|denyrd|denywr|denyrw,\n"
    "                  seek|xtype, blksz=N, heads=N, tracks=N, nio=N,\n"
    "                  prefix=NAME (repeatable, in order)\n"
    "blk=OPTS          io-blk cache options: cache=SIZE, commit=LEVEL,\n"
    "                  delwri=T, ra=MIN:MAX, wipe=SIZE, ramdisk=SIZE, ...\n"
    "                  (nbd-loopback --help and nbdkit-loopback-plugin(1)\n"
    "                  list them all)",
  .magic_config_key = "loopback",
  .get_ready = loopback_get_ready,
  .after_fork = loopback_after_fork,
  .cleanup = loopback_cleanup,
  .dump_plugin = loopback_dump_plugin,
  .list_exports = loopback_list_exports,
  .default_export = loopback_default_export,
  .open = loopback_open,
  .close = loopback_close,
  .export_description = loopback_export_description,
  .get_size = loopback_get_size,
  .block_size = loopback_block_size,
  .can_write = loopback_can_write,
  .can_flush = loopback_can_flush,
  .can_fua = loopback_can_fua,
  .can_multi_conn = loopback_can_multi_conn,
  .can_trim = loopback_can_trim,
  .can_zero = loopback_can_zero,
  .can_fast_zero = loopback_can_fast_zero,
  .can_extents = loopback_can_extents,
  .can_cache = loopback_can_cache,
  .pread = loopback_pread,
  .pwrite = loopback_pwrite,
  .flush = loopback_flush,
  .trim = loopback_trim,
  .zero = loopback_zero,
  .extents = loopback_extents,
  .cache = loopback_cache,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
