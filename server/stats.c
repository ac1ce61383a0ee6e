/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: statistics, and the final write-back's progress.
 *
 * What an operator asks of a running server: how busy is each export,
 * does the cache help (hit ratio), how much is not yet on the host
 * (dirty bytes), are write-backs failing, how long do flushes take.
 * The figures come from cache_export_stats plus the server's own
 * counters in struct export, and are reported
 *
 * - as log lines on SIGUSR1, and at exit with -v;
 * - as one JSON document in --stats-file FILE on SIGUSR1, at start-up
 *   and at exit (written to a temporary file and renamed, so readers
 *   never see half of it).
 *
 * At shutdown, stats_shutdown writes every export back before
 * exports_close forgets them.  A cache of gigabytes can take a while
 * to reach a slow disk, so a thread reports the dirty bytes left and
 * the rate once a second meanwhile (cache_export_stats may be called
 * from any thread while another flushes): in the log with -v, on
 * stderr when it is a terminal, and to systemd as the service's
 * STATUS (notify.c).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

static char *stats_path;         /* --stats-file, made absolute */
static struct timespec started;  /* for uptime */

/* One export's figures, gathered once for both the log and the file. */
struct export_figures {
  struct cache_stats c;
  uint64_t fastpath_reads, fastpath_writes, worker_requests, request_errors;
  uint64_t host_io_requests, uring_reads, uring_writes, uring_syncs;
  uint64_t zero_copy_reads;
};

static void
gather (const struct export *exp, struct export_figures *f)
{
  cache_export_stats (exp->ce, &f->c);
  f->fastpath_reads = __atomic_load_n (&exp->fastpath_reads,
                                       __ATOMIC_RELAXED);
  f->zero_copy_reads = __atomic_load_n (&exp->zero_copy_reads,
                                        __ATOMIC_RELAXED);
  f->fastpath_writes = __atomic_load_n (&exp->fastpath_writes,
                                        __ATOMIC_RELAXED);
  f->worker_requests = __atomic_load_n (&exp->worker_requests,
                                        __ATOMIC_RELAXED);
  f->host_io_requests = __atomic_load_n (&exp->host_io_requests,
                                         __ATOMIC_RELAXED);
  f->uring_reads = __atomic_load_n (&exp->uring_reads, __ATOMIC_RELAXED);
  f->uring_writes = __atomic_load_n (&exp->uring_writes, __ATOMIC_RELAXED);
  f->uring_syncs = __atomic_load_n (&exp->uring_syncs, __ATOMIC_RELAXED);
  f->request_errors = __atomic_load_n (&exp->request_errors,
                                       __ATOMIC_RELAXED);
}

/* Hits per cache block looked up, or -1 if none was. */
static double
hit_ratio (const struct cache_stats *c)
{
  uint64_t lookups = c->hits + c->misses;

  return lookups ? (double) c->hits / lookups : -1;
}

/* Mean time of a flush in milliseconds, or -1 if there was none. */
static double
flush_mean_ms (const struct cache_stats *c)
{
  return c->flushes ? c->flush_ns / 1e6 / c->flushes : -1;
}

static double
seconds_since (const struct timespec *t0)
{
  struct timespec now;

  clock_gettime (CLOCK_MONOTONIC, &now);
  return (now.tv_sec - t0->tv_sec) + (now.tv_nsec - t0->tv_nsec) / 1e9;
}

int
stats_init (void)
{
  clock_gettime (CLOCK_MONOTONIC, &started);
  if (opt.stats_file == NULL)
    return 0;
  if (opt.stats_file[0] == '/')
    stats_path = strdup (opt.stats_file);
  else {
    /* The daemon changes directory to / when it detaches. */
    CLEANUP_FREE char *cwd = getcwd (NULL, 0);
    if (cwd == NULL
        || asprintf (&stats_path, "%s/%s", cwd, opt.stats_file) == -1)
      stats_path = NULL;
  }
  if (stats_path == NULL) {
    log_error ("--stats-file %s: %m", opt.stats_file);
    return -1;
  }
  return 0;
}

/* Changed-block tracking: one line per bitmap. */
struct bitmap_log {
  const char *export;
  uint32_t granularity;
};

static int
log_bitmap (void *opaque, const char *name, uint64_t dirty_bytes)
{
  const struct bitmap_log *c = opaque;

  log_info ("%s: dirty bitmap %s (granularity %" PRIu32 "): %" PRIu64
            " bytes changed", c->export, name, c->granularity, dirty_bytes);
  return 0;
}

void
stats_log (void)
{
  uint64_t in_use, limit;

  cache_memory (&in_use, &limit);
  log_info ("statistics: %u connections open, %" PRIu64 " served since "
            "start; cache memory %" PRIu64 " of %" PRIu64 " bytes",
            nr_connections_now (), nr_connections_total (), in_use, limit);
  for (size_t i = 0; i < nr_exports; i++) {
    const struct export *exp = &exports[i];
    struct export_figures f;
    char ratio[32] = "no lookups", mean[32] = "none";

    gather (exp, &f);
    if (hit_ratio (&f.c) >= 0)
      snprintf (ratio, sizeof ratio, "hit ratio %.1f%%",
                100 * hit_ratio (&f.c));
    if (flush_mean_ms (&f.c) >= 0)
      snprintf (mean, sizeof mean, "mean %.3f ms", flush_mean_ms (&f.c));
    log_info ("%s: reads %" PRIu64 " (%" PRIu64 " bytes, %" PRIu64
              " on the fast path), writes %" PRIu64 " (%" PRIu64 " bytes, %"
              PRIu64 " on the fast path), host I/O requests %" PRIu64
              " (%" PRIu64 " reads and %" PRIu64 " writes by io_uring, %"
              PRIu64 " fdatasyncs), "
              "worker requests %" PRIu64 ", errors %" PRIu64 ", hits %"
              PRIu64 ", misses %" PRIu64 " (%s), read-ahead %" PRIu64
              ", write-backs %" PRIu64 " (%" PRIu64 " bytes, %" PRIu64
              " errors), flushes %" PRIu64 " (%s), resident %" PRIu64
              " bytes, dirty %" PRIu64 " bytes, host changes %" PRIu64,
              exp->name, f.c.read_requests, f.c.read_bytes,
              f.fastpath_reads, f.c.write_requests, f.c.write_bytes,
              f.fastpath_writes, f.host_io_requests, f.uring_reads,
              f.uring_writes, f.uring_syncs, f.worker_requests,
              f.request_errors, f.c.hits, f.c.misses, ratio,
              f.c.readahead_blocks, f.c.writebacks,
              f.c.writeback_bytes, f.c.writeback_errors, f.c.flushes, mean,
              f.c.resident_blocks * CACHE_BLOCK_SIZE,
              f.c.dirty_blocks * CACHE_BLOCK_SIZE, f.c.revalidations_changed);
    if (cache_export_track_granularity (exp->ce)) {
      struct bitmap_log c = {
        exp->name, cache_export_track_granularity (exp->ce)
      };
      cache_bitmap_list (exp->ce, log_bitmap, &c);
    }
  }
}

/* A JSON string: export names are [A-Za-z0-9_.-] (prefix=), but quote
 * properly anyway.
 */
static void
json_string (FILE *fp, const char *s)
{
  fputc ('"', fp);
  for (; *s; s++) {
    unsigned char ch = *s;
    if (ch == '"' || ch == '\\')
      fprintf (fp, "\\%c", ch);
    else if (ch < 0x20)
      fprintf (fp, "\\u%04x", ch);
    else
      fputc (ch, fp);
  }
  fputc ('"', fp);
}

/* A ratio or mean with that many decimals, or null when there is
 * nothing to divide.
 */
static void
json_number_or_null (FILE *fp, double d, int decimals)
{
  if (d < 0)
    fputs ("null", fp);
  else
    fprintf (fp, "%.*f", decimals, d);
}

struct bitmap_json {
  FILE *fp;
  unsigned n;
};

static int
json_bitmap (void *opaque, const char *name, uint64_t dirty_bytes)
{
  struct bitmap_json *c = opaque;

  fprintf (c->fp, "%s{ \"name\": ", c->n++ ? ", " : "");
  json_string (c->fp, name);
  fprintf (c->fp, ", \"dirty_bytes\": %" PRIu64 " }", dirty_bytes);
  return 0;
}

static void
write_json (FILE *fp, const char *event)
{
  uint64_t in_use, limit;

  cache_memory (&in_use, &limit);
  fprintf (fp, "{\n  \"program\": \"%s\",\n  \"version\": \"%s\",\n"
           "  \"pid\": %ld,\n  \"time\": %lld,\n  \"uptime_seconds\": %.3f,\n"
           "  \"event\": ", PACKAGE_NAME, PACKAGE_VERSION, (long) getpid (),
           (long long) time (NULL), seconds_since (&started));
  json_string (fp, event);
  fprintf (fp, ",\n  \"connections_open\": %u,\n"
           "  \"connections_total\": %" PRIu64 ",\n"
           "  \"cache_bytes_in_use\": %" PRIu64 ",\n"
           "  \"cache_bytes_limit\": %" PRIu64 ",\n  \"exports\": [",
           nr_connections_now (), nr_connections_total (), in_use, limit);
  for (size_t i = 0; i < nr_exports; i++) {
    const struct export *exp = &exports[i];
    struct export_figures f;

    gather (exp, &f);
    fprintf (fp, "%s\n    {\n      \"name\": ", i ? "," : "");
    json_string (fp, exp->name);
    fprintf (fp, ",\n"
             "      \"size\": %" PRIu64 ",\n"
             "      \"readonly\": %s,\n"
             "      \"requests\": %" PRIu64 ",\n"
             "      \"read_requests\": %" PRIu64 ",\n"
             "      \"read_bytes\": %" PRIu64 ",\n"
             "      \"write_requests\": %" PRIu64 ",\n"
             "      \"write_bytes\": %" PRIu64 ",\n"
             "      \"fastpath_reads\": %" PRIu64 ",\n"
             "      \"zero_copy_reads\": %" PRIu64 ",\n"
             "      \"fastpath_writes\": %" PRIu64 ",\n"
             "      \"host_io_requests\": %" PRIu64 ",\n"
             "      \"uring_reads\": %" PRIu64 ",\n"
             "      \"uring_writes\": %" PRIu64 ",\n"
             "      \"uring_syncs\": %" PRIu64 ",\n"
             "      \"worker_requests\": %" PRIu64 ",\n"
             "      \"errors\": %" PRIu64 ",\n"
             "      \"hits\": %" PRIu64 ",\n"
             "      \"misses\": %" PRIu64 ",\n"
             "      \"hit_ratio\": ",
             exp->size, exp->readonly ? "true" : "false",
             f.c.read_requests + f.c.write_requests,
             f.c.read_requests, f.c.read_bytes,
             f.c.write_requests, f.c.write_bytes,
             f.fastpath_reads, f.zero_copy_reads, f.fastpath_writes,
             f.host_io_requests, f.uring_reads, f.uring_writes,
             f.uring_syncs, f.worker_requests,
             f.request_errors,
             f.c.hits, f.c.misses);
    json_number_or_null (fp, hit_ratio (&f.c), 4);
    fprintf (fp, ",\n"
             "      \"readahead_blocks\": %" PRIu64 ",\n"
             "      \"readahead_hits\": %" PRIu64 ",\n"
             "      \"resident_bytes\": %" PRIu64 ",\n"
             "      \"dirty_bytes\": %" PRIu64 ",\n"
             "      \"writebacks\": %" PRIu64 ",\n"
             "      \"writeback_bytes\": %" PRIu64 ",\n"
             "      \"writeback_errors\": %" PRIu64 ",\n"
             "      \"flushes\": %" PRIu64 ",\n"
             "      \"flush_seconds_total\": %.6f,\n"
             "      \"flush_latency_mean_ms\": ",
             f.c.readahead_blocks, f.c.readahead_hits,
             f.c.resident_blocks * CACHE_BLOCK_SIZE,
             f.c.dirty_blocks * CACHE_BLOCK_SIZE,
             f.c.writebacks, f.c.writeback_bytes, f.c.writeback_errors,
             f.c.flushes, f.c.flush_ns / 1e9);
    json_number_or_null (fp, flush_mean_ms (&f.c), 3);
    fprintf (fp, ",\n      \"host_changes\": %" PRIu64 ",\n"
             "      \"cbt_granularity\": %" PRIu32 ",\n"
             "      \"bitmaps\": [", f.c.revalidations_changed,
             cache_export_track_granularity (exp->ce));
    if (cache_export_track_granularity (exp->ce)) {
      struct bitmap_json c = { fp, 0 };
      cache_bitmap_list (exp->ce, json_bitmap, &c);
    }
    fprintf (fp, "]\n    }");
  }
  fprintf (fp, "\n  ]\n}\n");
}

int
stats_write_file (const char *event)
{
  CLEANUP_FREE char *tmp = NULL;
  FILE *fp;
  int fd;

  if (stats_path == NULL)
    return 0;
  if (asprintf (&tmp, "%s.XXXXXX", stats_path) == -1) {
    log_error ("--stats-file %s: %m", stats_path);
    return -1;
  }
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd == -1) {
    log_error ("--stats-file %s: cannot create %s: %m (is the directory "
               "there and writable%s?)", stats_path, tmp,
               config->have_user ? " by user=" : "");
    return -1;
  }
  fchmod (fd, 0644);
  fp = fdopen (fd, "w");
  if (fp == NULL) {
    log_error ("--stats-file %s: %m", stats_path);
    close (fd);
    unlink (tmp);
    return -1;
  }
  write_json (fp, event);
  if (fclose (fp) == EOF) {
    log_error ("--stats-file %s: writing %s: %m", stats_path, tmp);
    unlink (tmp);
    return -1;
  }
  if (rename (tmp, stats_path) == -1) {
    log_error ("--stats-file %s: renaming %s to it: %m", stats_path, tmp);
    unlink (tmp);
    return -1;
  }
  return 0;
}

void
stats_report (void)
{
  stats_log ();
  stats_write_file ("SIGUSR1");
}

/* ---- The final write-back, with progress ---- */

/* Who hears how the final write-back goes: with -v the log, at once
 * and then every second; a terminal on stderr (someone is waiting at
 * it, and may think the server hangs), every second once it has taken
 * a second; the service manager (notify.c), as its STATUS.
 */
static bool progress_verbose, progress_tty;

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress_cond = PTHREAD_COND_INITIALIZER;
static bool progress_done;      /* guarded by progress_lock */
static bool progress_shown;     /* set before and by the thread; read after */
static struct timespec progress_t0;
static uint64_t progress_dirty0;

static uint64_t
dirty_bytes (void)
{
  uint64_t sum = 0;

  for (size_t i = 0; i < nr_exports; i++) {
    struct cache_stats s;

    cache_export_stats (exports[i].ce, &s);
    sum += s.dirty_blocks * CACHE_BLOCK_SIZE;
  }
  return sum;
}

/* For the service's status line: 32.0 KiB, 1.5 GiB. */
static const char *
human (char buf[32], double bytes)
{
  static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
  size_t u = 0;

  while (bytes >= 1024 && u < sizeof units / sizeof units[0] - 1) {
    bytes /= 1024;
    u++;
  }
  snprintf (buf, 32, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

/* One report: the bytes left, and the rate since the write-back
 * began.
 */
static void
progress_report (void)
{
  uint64_t left = dirty_bytes ();
  uint64_t written = progress_dirty0 > left ? progress_dirty0 - left : 0;
  double secs = seconds_since (&progress_t0);
  double rate = secs > 0 ? written / secs / (1024 * 1024) : 0;
  char b1[32], b2[32];

  if (progress_verbose || progress_tty) {
    log_info ("writing back: %" PRIu64 " bytes left, %.1f MiB/s",
              left, rate);
    progress_shown = true;
  }
  notify_send ("STATUS=writing back: %s left, %s/s",
               human (b1, left), human (b2, rate * 1024 * 1024));
}

static void *
progress_thread (void *arg)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&progress_lock);
  struct timespec next;

  clock_gettime (CLOCK_REALTIME, &next);
  while (!progress_done) {
    next.tv_sec++;
    while (!progress_done
           && pthread_cond_timedwait (&progress_cond, &progress_lock,
                                      &next) != ETIMEDOUT)
      ;
    if (!progress_done)
      progress_report ();
  }
  return NULL;
}

static pthread_t progress_tid;
static bool progress_running;

void
stats_progress_start (void)
{
  char b1[32];

  clock_gettime (CLOCK_MONOTONIC, &progress_t0);
  progress_verbose = log_verbose > 0;
  progress_tty = isatty (STDERR_FILENO);
  if (!progress_verbose && !progress_tty && !notify_enabled ())
    return;
  progress_dirty0 = dirty_bytes ();
  if (progress_dirty0 == 0)
    return;
  if (progress_verbose) {
    log_info ("writing back: %" PRIu64 " bytes left", progress_dirty0);
    progress_shown = true;
  }
  notify_send ("STATUS=writing back: %s left",
               human (b1, progress_dirty0));
  progress_running =
    pthread_create (&progress_tid, NULL, progress_thread, NULL) == 0;
}

int
stats_shutdown (void)
{
  int r = 0;

  for (size_t i = 0; i < nr_exports; i++)
    if (cache_flush (exports[i].ce) == -1) {
      log_error ("%s: writing back at exit: %m", exports[i].name);
      r = -1;
    }
  if (progress_running) {
    lock_or_abort (&progress_lock);
    progress_done = true;
    pthread_cond_signal (&progress_cond);
    unlock_or_abort (&progress_lock);
    pthread_join (progress_tid, NULL);
    progress_running = false;
    if (progress_shown)
      log_info ("writing back: done, %" PRIu64 " bytes in %.1f s, %"
                PRIu64 " bytes left", progress_dirty0,
                seconds_since (&progress_t0), dirty_bytes ());
    char b1[32];

    notify_send ("STATUS=written back: %s in %.1f s, exiting",
                 human (b1, progress_dirty0), seconds_since (&progress_t0));
  }
  if (log_verbose > 0)
    stats_log ();
  stats_write_file ("exit");
  return r;
}

void
stats_free (void)
{
  free (stats_path);
  stats_path = NULL;
}
