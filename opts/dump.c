/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the configuration as key=value lines (--dump-config).
 *
 * What a devb-loopback command line means here, one key=value per
 * line, sizes in bytes and times in seconds: the way a user checks a
 * QNX line before serving it.  The caller supplies a probe that fills
 * in each export's block size and size from its file; without one
 * (unit tests) the configured block size is shown, 0 meaning "probe",
 * and the size is left out.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "opts.h"

static void
print_seconds (FILE *fp, const char *key, uint64_t ms)
{
  char buf[32];

  format_seconds (buf, sizeof buf, ms);
  fprintf (fp, "%s=%s\n", key, buf);
}

static void
dump_export (const struct export_config *ec, FILE *fp, bool probed,
             uint32_t blksz, uint32_t preferred, uint64_t size)
{
  fprintf (fp, "%s.path=%s\n", ec->name, ec->path);
  fprintf (fp, "%s.access=%s\n", ec->name, access_mode_name (ec->access));
  fprintf (fp, "%s.sync=%s\n", ec->name, sync_mode_name (ec->sync));
  fprintf (fp, "%s.deny=%s\n", ec->name, deny_mode_name (ec->deny));
  fprintf (fp, "%s.io=%s\n", ec->name, io_mode_name (ec->io));
  fprintf (fp, "%s.direct=%s\n", ec->name,
           ec->direct == DIRECT_AUTO ? "auto"
           : ec->direct == DIRECT_ON ? "yes" : "no");
  fprintf (fp, "%s.blksz=%" PRIu32 "\n", ec->name, blksz);
  if (probed)
    fprintf (fp, "%s.preferred=%" PRIu32 "\n", ec->name, preferred);
  fprintf (fp, "%s.heads=%" PRIu32 "\n", ec->name, ec->heads);
  fprintf (fp, "%s.tracks=%" PRIu32 "\n", ec->name, ec->tracks);
  fprintf (fp, "%s.cbt=%" PRIu32 "\n", ec->name, ec->cbt);
  if (ec->cbt)
    fprintf (fp, "%s.cbtfile=%s\n", ec->name, ec->cbt_file);
  if (probed)
    fprintf (fp, "%s.size=%" PRIu64 "\n", ec->name, size);
}

int
config_dump (const struct config *cfg, FILE *fp, config_probe_fn probe)
{
  const struct blk_config *b = &cfg->blk;
  CLEANUP_FREE uint32_t *blksz = calloc (cfg->nr_exports + 1, sizeof *blksz);
  CLEANUP_FREE uint32_t *preferred = calloc (cfg->nr_exports + 1,
                                             sizeof *preferred);
  CLEANUP_FREE uint64_t *size = calloc (cfg->nr_exports + 1, sizeof *size);

  if (blksz == NULL || preferred == NULL || size == NULL)
    return -1;
  /* Probe every file first, so that a bad one prints nothing. */
  for (size_t i = 0; i < cfg->nr_exports; i++) {
    blksz[i] = cfg->exports[i].blksz;
    if (probe && probe (&cfg->exports[i], &blksz[i], &preferred[i], &size[i]) == -1)
      return -1;
  }

  fprintf (fp, "nio=%" PRIu32 "\n", cfg->nio);
  fprintf (fp, "prefix=%s\n", cfg->prefix);
  if (cfg->have_user) {
    fprintf (fp, "user=%lu", (unsigned long) cfg->uid);
    if (cfg->have_gid)
      fprintf (fp, ":%lu", (unsigned long) cfg->gid);
    fprintf (fp, "\n");
  }
  for (size_t i = 0; i < cfg->nr_exports; i++)
    dump_export (&cfg->exports[i], fp, probe != NULL, blksz[i],
                 preferred[i], size[i]);
  if (b->ramdisk) {
    fprintf (fp, "ram0.access=%s\n", b->readonly ? "ro" : "rw");
    fprintf (fp, "ram0.blksz=%" PRIu32 "\n", b->ramdisk_sector);
    fprintf (fp, "ram0.size=%" PRIu64 "\n", b->ramdisk);
  }

  fprintf (fp, "cache=%" PRIu64 "\n", b->cache);
  fprintf (fp, "alloc=%" PRIu64 "\n", b->alloc);
  fprintf (fp, "hash=%" PRIu64 "\n", b->hash);
  print_seconds (fp, "delwri", b->delwri_ms);
  print_seconds (fp, "postpone", b->postpone_ms);
  fprintf (fp, "commit=%s\n", commit_level_name (b->commit));
  fprintf (fp, "ra=%" PRIu64 ":%" PRIu64 "\n", b->ra_min, b->ra_max);
  fprintf (fp, "protect=%" PRIu32 "\n", b->protect);
  fprintf (fp, "wipe=%" PRIu64 "\n", b->wipe);
  fprintf (fp, "bufsz=%" PRIu32 ":%" PRIu32 "\n", b->bufsz_min, b->bufsz_max);
  fprintf (fp, "thread=%" PRIu32 ":%" PRIu32 ":%" PRIu32 "\n",
           b->thread_max, b->thread_low, b->thread_high);
  fprintf (fp, "readonly=%d\n", b->readonly);
  fprintf (fp, "noaiod=%d\n", b->noaiod);
  if (b->rmvto_enabled)
    print_seconds (fp, "rmvto", b->rmvto_ms);
  else
    fprintf (fp, "rmvto=none\n");
  fprintf (fp, "ramdisk=%" PRIu64 "\n", b->ramdisk);
  fprintf (fp, "verbose=%d\n", b->verbose);
  return 0;
}

/* A size for people: "64 MiB", "1.5 GiB", "4097 bytes". */
static void
human_size (char *buf, size_t len, uint64_t size)
{
  static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
  double d = size;
  int u = -1;

  while (d >= 1024 && u < 4) {
    d /= 1024;
    u++;
  }
  if (u < 0)
    snprintf (buf, len, "%" PRIu64 " bytes", size);
  else if (d == (uint64_t) d)
    snprintf (buf, len, "%" PRIu64 " %s", (uint64_t) d, unit[u]);
  else
    snprintf (buf, len, "%.1f %s", d, unit[u]);
}

/* Only the file's base name is given: the server's directory layout
 * is not the client's business.
 */
char *
export_description (const struct export_config *ec, uint64_t size,
                    bool readonly, uint32_t blksz)
{
  char human[32], *desc;
  const char *base;
  int r;

  human_size (human, sizeof human, size);
  if (ec == NULL)
    r = asprintf (&desc, "RAM disk, %s, %s, %" PRIu32 "-byte blocks",
                  human, readonly ? "read-only" : "read-write", blksz);
  else {
    base = strrchr (ec->path, '/');
    base = base && base[1] ? base + 1 : ec->path;
    r = asprintf (&desc, "%s, %s, %s, %" PRIu32 "-byte blocks, "
                  "geometry %" PRIu32 " head%s x %" PRIu32 " track%s",
                  base, human, readonly ? "read-only" : "read-write",
                  blksz, ec->heads, ec->heads == 1 ? "" : "s",
                  ec->tracks, ec->tracks == 1 ? "" : "s");
  }
  return r == -1 ? NULL : desc;
}
