/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the "blk" group (io-blk.so's cache options).
 *
 * Handlers record what was typed; blk_resolve applies the defaults
 * afterwards, because one option's meaning can depend on another given
 * later (wipe=50% is half of whatever cache= ends up being, postpone
 * defaults to delwri).  Each option may be given once.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"

#define KiB 1024ULL
#define MiB (1024ULL * KiB)

#define CACHE_MIN (64 * KiB)
#define HASH_MAX (1ULL << 26)
#define RA_MAX (64 * MiB)
#define BUFSZ_MIN 512
#define BUFSZ_MAX (64 * 1024)
#define THREAD_MAX 256
#define PROTECT_MAX 255

static bool
is_power_of_2 (uint64_t v)
{
  return v && (v & (v - 1)) == 0;
}

static uint64_t
physical_memory (const struct opts *o)
{
  long pages, pagesize;

  if (o->physical_memory)
    return o->physical_memory;
  pages = sysconf (_SC_PHYS_PAGES);
  pagesize = sysconf (_SC_PAGESIZE);
  if (pages <= 0 || pagesize <= 0)
    return 1024 * MiB;          /* unknown: assume a small machine */
  return (uint64_t) pages * pagesize;
}

/* Parse "NAME=VALUE" field as a size, with the error naming the option. */
static int
size_field (const char *name, const char *value, const char *field,
            unsigned flags, struct size_value *out, char **err)
{
  const char *why;

  if (field == NULL || field[0] == '\0')
    return opts_error (err, "%s=%s: empty size", name, value);
  if (parse_size (field, flags, out, &why) == -1)
    return opts_error (err, "%s=%s: %s", name, value, why);
  return 0;
}

int
blk_size (struct opts *o, const struct opt_def *def, const char *value,
          char **err)
{
  CLEANUP_FREE char *copy = strdup (value);
  char *f[2];
  const char *why;
  uint64_t n;

  if (copy == NULL)
    return opts_error (err, "%s=%s: out of memory", def->name, value);

  if (strcmp (def->name, "cache") == 0) {
    if (split_fields (copy, f, 2) == -1)
      return opts_error (err, "cache=%s: expected cache=SIZE[:HASH]", value);
    if (size_field ("cache", value, f[0], SIZE_ALLOW_PERCENT, &o->cache,
                    err) == -1)
      return -1;
    o->have_cache = true;
    if (f[1]) {
      if (o->have_hash)
        return opts_error (err, "cache=%s: conflicts with hash= given "
                           "earlier", value);
      if (parse_uint (f[1], 1, HASH_MAX, &n, &why) == -1)
        return opts_error (err, "cache=%s: hash entries must be a number "
                           "from 1 to %llu", value, HASH_MAX);
      o->blk.hash = n;
      o->have_hash = true;
    }
    return 0;
  }

  if (strcmp (def->name, "alloc") == 0) {
    /* QNX 6.5 spells alloc= as a policy rather than a size. */
    if (strcmp (value, "demand") == 0)
      o->alloc.value = 0;
    else if (strcmp (value, "cache") == 0 || strcmp (value, "upfront") == 0)
      o->alloc.value = UINT64_MAX;      /* all of cache= */
    else if (parse_size (value, SIZE_ALLOW_PERCENT, &o->alloc, &why) == -1)
      return opts_error (err, "alloc=%s: %s (or cache, demand, upfront)",
                         value, why);
    o->have_alloc = true;
    return 0;
  }

  /* wipe= */
  if (size_field ("wipe", value, value, SIZE_ALLOW_PERCENT, &o->wipe, err)
      == -1)
    return -1;
  if (!o->wipe.percent && o->wipe.value == 0)
    return opts_error (err, "wipe=%s: must be more than 0", value);
  if (o->wipe.percent && o->wipe.value == 0)
    return opts_error (err, "wipe=%s: must be more than 0%%", value);
  o->have_wipe = true;
  return 0;
}

int
blk_hash (struct opts *o, const struct opt_def *def, const char *value,
          char **err)
{
  const char *why;
  uint64_t n;

  if (o->have_hash)
    return opts_error (err, "hash=%s: conflicts with the :HASH of cache= "
                       "given earlier", value);
  if (parse_uint (value, 1, HASH_MAX, &n, &why) == -1)
    return opts_error (err, "hash=%s: must be a number from 1 to %llu",
                       value, HASH_MAX);
  o->blk.hash = n;
  o->have_hash = true;
  return 0;
}

static int
time_field (const char *name, const char *value, const char *field,
            uint64_t *ms, char **err)
{
  const char *why;

  if (field == NULL || field[0] == '\0')
    return opts_error (err, "%s=%s: empty time", name, value);
  if (parse_time_ms (field, ms, &why) == -1)
    return opts_error (err, "%s=%s: %s", name, value, why);
  return 0;
}

int
blk_time (struct opts *o, const struct opt_def *def, const char *value,
          char **err)
{
  CLEANUP_FREE char *copy = strdup (value);
  const char *why;
  char *f[3];

  if (copy == NULL)
    return opts_error (err, "%s=%s: out of memory", def->name, value);

  if (strcmp (def->name, "delwri") == 0) {
    if (split_fields (copy, f, 3) == -1)
      return opts_error (err, "delwri=%s: expected delwri=T[:T2[:POSTPONE]]",
                         value);
    if (time_field ("delwri", value, f[0], &o->blk.delwri_ms, err) == -1)
      return -1;
    o->blk.delwri_removable_ms = 1000;
    if (f[1] && time_field ("delwri", value, f[1],
                            &o->blk.delwri_removable_ms, err) == -1)
      return -1;
    if (f[2]) {
      if (o->have_postpone)
        return opts_error (err, "delwri=%s: conflicts with postpone= given "
                           "earlier", value);
      if (time_field ("delwri", value, f[2], &o->blk.postpone_ms, err) == -1)
        return -1;
      o->have_postpone = true;
    }
    return 0;
  }

  if (strcmp (def->name, "postpone") == 0) {
    if (o->have_postpone)
      return opts_error (err, "postpone=%s: conflicts with the :POSTPONE of "
                         "delwri= given earlier", value);
    if (time_field ("postpone", value, value, &o->blk.postpone_ms, err) == -1)
      return -1;
    o->have_postpone = true;
    return 0;
  }

  /* rmvto= */
  if (strcmp (value, "none") == 0) {
    o->blk.rmvto_enabled = false;
    o->blk.rmvto_ms = 0;
    return 0;
  }
  if (parse_time_ms (value, &o->blk.rmvto_ms, &why) == -1)
    return opts_error (err, "rmvto=%s: %s (e.g. 2s), or none", value, why);
  o->blk.rmvto_enabled = true;
  return 0;
}

int
blk_commit (struct opts *o, const struct opt_def *def, const char *value,
            char **err)
{
  static const char *const levels[] = {
    [COMMIT_NONE] = "none", [COMMIT_LOW] = "low",
    [COMMIT_MEDIUM] = "medium", [COMMIT_HIGH] = "high",
  };

  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
    if (strcmp (value, levels[i]) == 0) {
      o->blk.commit = i;
      return 0;
    }
  return opts_error (err, "commit=%s: must be none, low, medium or high",
                     value);
}

int
blk_ra (struct opts *o, const struct opt_def *def, const char *value,
        char **err)
{
  CLEANUP_FREE char *copy = NULL;
  struct size_value min, max;
  char *f[2];

  if (strcmp (def->name, "nora") == 0) {
    o->blk.ra_enabled = false;
    return 0;
  }
  copy = strdup (value);
  if (copy == NULL)
    return opts_error (err, "ra=%s: out of memory", value);
  if (split_fields (copy, f, 2) == -1)
    return opts_error (err, "ra=%s: expected ra=MIN[:MAX]", value);
  if (size_field ("ra", value, f[0], 0, &min, err) == -1)
    return -1;
  max = min;
  if (f[1] && size_field ("ra", value, f[1], 0, &max, err) == -1)
    return -1;
  if (min.value > max.value)
    return opts_error (err, "ra=%s: MIN is larger than MAX", value);
  if (max.value > RA_MAX)
    return opts_error (err, "ra=%s: at most %llu bytes (64m)", value, RA_MAX);
  o->blk.ra_enabled = max.value > 0;
  o->blk.ra_min = min.value;
  o->blk.ra_max = max.value;
  o->have_ra_max = f[1] != NULL;
  return 0;
}

int
blk_number (struct opts *o, const struct opt_def *def, const char *value,
            char **err)
{
  const char *why;
  uint64_t n;

  /* protect= */
  if (parse_uint (value, 0, PROTECT_MAX, &n, &why) == -1)
    return opts_error (err, "protect=%s: must be a number from 0 to %d",
                       value, PROTECT_MAX);
  o->blk.protect = n;
  return 0;
}

static int
parse_bufsz (struct opts *o, const char *value, char *f[2], char **err)
{
  struct size_value min, max;

  if (size_field ("bufsz", value, f[0], 0, &min, err) == -1)
    return -1;
  max.value = o->blk.bufsz_max;
  if (f[1] && size_field ("bufsz", value, f[1], 0, &max, err) == -1)
    return -1;
  if (!is_power_of_2 (min.value) || !is_power_of_2 (max.value) ||
      min.value < BUFSZ_MIN || max.value > BUFSZ_MAX)
    return opts_error (err, "bufsz=%s: sizes must be powers of 2 from 512 "
                       "to 64k", value);
  if (min.value > max.value)
    return opts_error (err, "bufsz=%s: MIN is larger than MAX", value);
  o->blk.bufsz_min = min.value;
  o->blk.bufsz_max = max.value;
  return 0;
}

static int
parse_thread (struct opts *o, const char *value, char *f[3], char **err)
{
  uint64_t max, low, high;
  const char *why;

  if (parse_uint (f[0], 1, THREAD_MAX, &max, &why) == -1 ||
      (f[1] && parse_uint (f[1], 0, THREAD_MAX, &low, &why) == -1) ||
      (f[2] && parse_uint (f[2], 0, THREAD_MAX, &high, &why) == -1))
    return opts_error (err, "thread=%s: expected thread=MAX[:LOW[:HIGH]], "
                       "MAX from 1 to %d", value, THREAD_MAX);
  if (!f[1])
    low = max < 2 ? max : 2;
  if (!f[2])
    high = max < 4 ? max : 4;
  if (!f[2] && high < low)
    high = low;
  if (low > high)
    return opts_error (err, "thread=%s: low water %" PRIu64 " is above high "
                       "water %" PRIu64, value, low, high);
  if (high > max)
    return opts_error (err, "thread=%s: high water %" PRIu64 " is above "
                       "the maximum %" PRIu64, value, high, max);
  o->blk.thread_max = max;
  o->blk.thread_low = low;
  o->blk.thread_high = high;
  return 0;
}

static int
parse_ramdisk (struct opts *o, const char *value, char *f[2], char **err)
{
  struct size_value size, sector = { .value = 512 };

  if (size_field ("ramdisk", value, f[0], 0, &size, err) == -1)
    return -1;
  if (f[1] && size_field ("ramdisk", value, f[1], 0, &sector, err) == -1)
    return -1;
  if (sector.value != 512 && sector.value != 1024 && sector.value != 2048 &&
      sector.value != 4096)
    return opts_error (err, "ramdisk=%s: SECTOR must be 512, 1024, 2048 or "
                       "4096", value);
  if (size.value < sector.value || size.value % sector.value != 0)
    return opts_error (err, "ramdisk=%s: SIZE must be a non-zero multiple of "
                       "the sector size %" PRIu64, value, sector.value);
  o->blk.ramdisk = size.value;
  o->blk.ramdisk_sector = sector.value;
  return 0;
}

int
blk_range (struct opts *o, const struct opt_def *def, const char *value,
           char **err)
{
  CLEANUP_FREE char *copy = strdup (value);
  char *f[3];
  int max = strcmp (def->name, "thread") == 0 ? 3 : 2;

  if (copy == NULL)
    return opts_error (err, "%s=%s: out of memory", def->name, value);
  if (split_fields (copy, f, max) == -1 || f[0][0] == '\0' ||
      (f[1] && f[1][0] == '\0') || (max == 3 && f[2] && f[2][0] == '\0'))
    return opts_error (err, "%s=%s: expected %s", def->name, value,
                       def->syntax);
  if (strcmp (def->name, "bufsz") == 0)
    return parse_bufsz (o, value, f, err);
  if (strcmp (def->name, "thread") == 0)
    return parse_thread (o, value, f, err);
  return parse_ramdisk (o, value, f, err);
}

int
blk_flag (struct opts *o, const struct opt_def *def, const char *value,
          char **err)
{
  if (strcmp (def->name, "noaiod") == 0)
    o->blk.noaiod = true;
  else
    o->blk.readonly = strcmp (def->name, "ro") == 0;
  return 0;
}

int
blk_verbose (struct opts *o, const struct opt_def *def, const char *value,
             char **err)
{
  const char *why, *p;
  uint64_t n;

  if (value == NULL) {
    o->blk.verbose = 1;
    return 0;
  }
  if (parse_uint (value, 0, 9, &n, &why) == 0) {
    o->blk.verbose = n;
    return 0;
  }
  /* QNX log classes: b c d f i o r v, optionally negated with '!'. */
  p = value[0] == '!' ? value + 1 : value;
  if (*p == '\0' || strspn (p, "bcdfiorv") != strlen (p))
    return opts_error (err, "verbose=%s: expected a level 0 to 9, or QNX "
                       "letters from bcdfiorv (optionally after '!')", value);
  o->blk.verbose = 1;
  o->blk.verbose_flags = strdup (value);
  if (o->blk.verbose_flags == NULL)
    return opts_error (err, "verbose=%s: out of memory", value);
  return 0;
}

/* Resolve a size that may be a percentage of base. */
static uint64_t
resolve (struct size_value v, uint64_t base)
{
  if (!v.percent)
    return v.value;
  return (uint64_t) ((unsigned __int128) base * v.value / 100);
}

static uint64_t
round_up_pow2 (uint64_t v)
{
  uint64_t p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

int
blk_resolve (struct opts *o, struct blk_config *out, char **err)
{
  uint64_t ram = physical_memory (o);
  struct blk_config *b = &o->blk;

  if (o->slot_text[SLOT_CACHE])
    b->cache = resolve (o->cache, ram);
  else
    b->cache = ram * 15 / 100;
  if (b->cache < CACHE_MIN)
    return opts_error (err, "%s: the cache must be at least 64k",
                       o->slot_text[SLOT_CACHE] ? o->slot_text[SLOT_CACHE]
                       : "cache");
  if (b->cache > ram)
    return opts_error (err, "%s: more than the physical memory of this "
                       "machine (%" PRIu64 " bytes)",
                       o->slot_text[SLOT_CACHE], ram);

  if (o->have_alloc) {
    b->alloc = o->alloc.value == UINT64_MAX ? b->cache
      : resolve (o->alloc, ram);
    if (b->alloc > b->cache)
      return opts_error (err, "%s: more than cache=%" PRIu64 " bytes",
                         o->slot_text[SLOT_ALLOC], b->cache);
  }

  if (!o->have_hash) {
    /* One bucket per 4 KiB cache block: short chains keep a hit to
     * one or two memory accesses.
     */
    b->hash = round_up_pow2 (b->cache / (4 * KiB));
    if (b->hash < 64)
      b->hash = 64;
  }

  if (!o->slot_text[SLOT_DELWRI]) {
    b->delwri_ms = 2000;
    b->delwri_removable_ms = 1000;
  }
  if (!o->have_postpone)
    b->postpone_ms = b->delwri_ms;
  else if (b->postpone_ms < b->delwri_ms) {
    char p[32], d[32];
    format_seconds (p, sizeof p, b->postpone_ms);
    format_seconds (d, sizeof d, b->delwri_ms);
    return opts_error (err, "postpone=%s: shorter than delwri=%s (every "
                       "block is written back within delwri anyway)", p, d);
  }

  if (!o->slot_text[SLOT_COMMIT])
    b->commit = COMMIT_MEDIUM;

  if (!o->slot_text[SLOT_RA]) {
    b->ra_enabled = true;
    b->ra_min = 4 * KiB;
    b->ra_max = 256 * KiB;
  }
  else if (b->ra_enabled && !o->have_ra_max && b->ra_max < 256 * KiB)
    b->ra_max = 256 * KiB;
  if (!b->ra_enabled)
    b->ra_min = b->ra_max = 0;
  if (!o->slot_text[SLOT_RA] && b->ra_max > b->cache / 4) {
    /* A small cache (QNX's "cache=128k") gets a smaller default window. */
    b->ra_max = b->cache / 4;
    if (b->ra_min > b->ra_max)
      b->ra_min = b->ra_max;
  }
  if (b->ra_max > b->cache / 2)
    return opts_error (err, "%s: the read-ahead window must be at most half "
                       "of the cache (%" PRIu64 " bytes)",
                       o->slot_text[SLOT_RA], b->cache / 2);

  if (!o->slot_text[SLOT_PROTECT])
    b->protect = 2;

  b->wipe = o->have_wipe ? resolve (o->wipe, b->cache) : b->cache;
  if (b->wipe > b->cache)
    return opts_error (err, "%s: more than cache=%" PRIu64 " bytes",
                       o->slot_text[SLOT_WIPE], b->cache);
  if (b->wipe == 0)
    return opts_error (err, "%s: rounds down to 0 bytes",
                       o->slot_text[SLOT_WIPE]);

  if (!o->slot_text[SLOT_BUFSZ]) {
    b->bufsz_min = 512;
    b->bufsz_max = 16 * KiB;
  }

  b->thread_given = o->slot_text[SLOT_THREAD] != NULL;
  if (!b->thread_given) {
    b->thread_max = 12;
    b->thread_low = 2;
    b->thread_high = 4;
  }

  if (b->ramdisk > ram)
    return opts_error (err, "%s: more than the physical memory of this "
                       "machine (%" PRIu64 " bytes)",
                       o->slot_text[SLOT_RAMDISK], ram);

  if (!o->slot_text[SLOT_RMVTO]) {
    b->rmvto_enabled = true;
    b->rmvto_ms = 2000;
  }

  *out = *b;
  out->verbose_flags = NULL;
  if (b->verbose_flags) {
    out->verbose_flags = strdup (b->verbose_flags);
    if (out->verbose_flags == NULL)
      return opts_error (err, "out of memory");
  }
  return 0;
}
