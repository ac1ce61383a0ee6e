/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: micro-benchmark of the cache's fast paths.
 *
 * Why: the cache sits on every request, so its hit and write paths
 * must cost little next to a bare memcpy, and two threads hitting the
 * cache must not serialize on a lock.  This measures, in one run and
 * against an in-memory backend (so no host I/O is timed):
 *
 *   - 4 KiB hit reads per second on one thread     (target >= 2,000,000)
 *   - 64 KiB hit read bandwidth / memcpy bandwidth  (target >= 0.5)
 *   - 4 KiB writes per second, delayed, delwri=1h   (target >= 1,000,000)
 *   - 2-thread scaling of 4 KiB hit reads           (target >= 1.7x)
 *
 * and prints a table saying which targets hold, followed by the same
 * accesses done with a bare memcpy from a buffer of the export's size
 * (what the hardware allows: the export is larger than the CPU's
 * caches, so random 4 KiB reads are memory-bound).  It always exits 0
 * unless the cache itself fails: it is a measurement, not a test.
 *
 * How to run it (from the build directory):
 *
 *   make -C tests cache-micro && tests/cache-micro
 *
 * Options: --seconds=S per measurement (default 0.4, best of 3 runs),
 * --quick (tiny sizes and durations: a smoke test that only checks the
 * benchmark works; make check runs it that way, its numbers mean
 * nothing).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "opts.h"

#define BLK CACHE_BLOCK_SIZE
#define BIG (64 * 1024)

static bool quick;
static double seconds = 0.4;
static int runs = 3;
static uint64_t export_size = 64 * 1024 * 1024;
static const char *cache_opts = "cache=256m,delwri=1h,postpone=1h,"
  "commit=medium,nora";

/* --- An in-memory backend --- */

struct mem {
  uint8_t *data;
  uint64_t size;
};

static int
mem_pread (void *h, void *buf, size_t count, uint64_t offset,
           enum io_priority prio)
{
  struct mem *m = h;

  (void) prio;
  memcpy (buf, m->data + offset, count);
  return 0;
}

static int
mem_pwrite (void *h, const void *buf, size_t count, uint64_t offset,
            enum io_priority prio)
{
  struct mem *m = h;

  (void) prio;
  memcpy (m->data + offset, buf, count);
  return 0;
}

static int
mem_flush (void *h)
{
  (void) h;
  return 0;
}

static int
mem_trim (void *h, uint64_t offset, uint64_t count)
{
  struct mem *m = h;

  memset (m->data + offset, 0, count);
  return 0;
}

static int
mem_zero (void *h, uint64_t offset, uint64_t count, bool may_trim,
          bool fast_only)
{
  struct mem *m = h;

  (void) may_trim;
  (void) fast_only;
  memset (m->data + offset, 0, count);
  return 0;
}

static int
mem_extents (void *h, uint64_t offset, uint64_t count, device_extent_fn fn,
             void *opaque)
{
  (void) h;
  return fn (opaque, offset, count, false);
}

static int
mem_revalidate (void *h)
{
  (void) h;
  return 0;
}

static void
mem_close (void *h)
{
  (void) h;
}

/* --- Timing --- */

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
next_rand (uint64_t *s)
{
  uint64_t x = *s;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void
die (const char *what)
{
  fprintf (stderr, "cache-micro: %s: %s\n", what, strerror (errno));
  exit (EXIT_FAILURE);
}

enum work { HIT4K, NOWAIT4K, HIT64K, WRITE4K, MEMCPY4K, MEMCPY64K };

struct job {
  enum work work;
  struct cache_export *exp;
  const uint8_t *src;           /* MEMCPY64K */
  uint64_t region;              /* bytes the work ranges over */
  uint64_t seed;
  pthread_barrier_t *start;
  double secs;
  uint64_t ops;                 /* out */
  double elapsed;               /* out */
};

static void *
run_job (void *arg)
{
  struct job *j = arg;
  uint8_t *buf = aligned_alloc (4096, BIG);
  uint64_t rs = j->seed | 1, ops = 0, pos = 0;
  uint64_t blocks = j->region / BLK, chunks = j->region / BIG;
  double t0, t;

  if (buf == NULL)
    die ("aligned_alloc");
  memset (buf, 0x5a, BIG);
  if (j->start)
    pthread_barrier_wait (j->start);
  t0 = now_s ();
  for (;;) {
    for (int i = 0; i < 256; i++) {
      switch (j->work) {
      case HIT4K:
        if (cache_read (j->exp, buf, BLK,
                        next_rand (&rs) % blocks * BLK) == -1)
          die ("cache_read");
        break;
      case NOWAIT4K:
        if (cache_read_nowait (j->exp, buf, BLK,
                               next_rand (&rs) % blocks * BLK) != 1)
          die ("cache_read_nowait");
        break;
      case MEMCPY4K:
        memcpy (buf, j->src + next_rand (&rs) % blocks * BLK, BLK);
        __asm__ __volatile__ ("" : : "r" (buf) : "memory");
        break;
      case HIT64K:
        if (cache_read (j->exp, buf, BIG, pos * BIG) == -1)
          die ("cache_read");
        pos = pos + 1 == chunks ? 0 : pos + 1;
        break;
      case WRITE4K:
        buf[0] = ops;
        if (cache_write (j->exp, buf, BLK,
                         next_rand (&rs) % blocks * BLK, 0) == -1)
          die ("cache_write");
        break;
      case MEMCPY64K:
        memcpy (buf, j->src + pos * BIG, BIG);
        __asm__ __volatile__ ("" : : "r" (buf) : "memory");
        pos = pos + 1 == chunks ? 0 : pos + 1;
        break;
      }
      ops++;
    }
    t = now_s ();
    if (t - t0 >= j->secs)
      break;
  }
  j->ops = ops;
  j->elapsed = t - t0;
  free (buf);
  return NULL;
}

/* Operations per second: best of `runs`, on nthreads threads at once. */
static double
measure (enum work work, struct cache_export *exp, const uint8_t *src,
         uint64_t region, int nthreads)
{
  double best = 0;

  for (int r = 0; r < runs; r++) {
    struct job jobs[2];
    pthread_t th[2];
    pthread_barrier_t start;
    double rate = 0;

    pthread_barrier_init (&start, NULL, nthreads);
    for (int i = 0; i < nthreads; i++) {
      jobs[i] = (struct job) { .work = work, .exp = exp, .src = src,
                               .region = region, .seed = 12345 + 77 * i + r,
                               .start = &start, .secs = seconds };
      if (pthread_create (&th[i], NULL, run_job, &jobs[i]) != 0)
        die ("pthread_create");
    }
    for (int i = 0; i < nthreads; i++) {
      pthread_join (th[i], NULL);
      rate += jobs[i].ops / jobs[i].elapsed;
    }
    pthread_barrier_destroy (&start);
    if (rate > best)
      best = rate;
  }
  return best;
}

static struct blk_config
blk_config (const char *text)
{
  struct opts *o = opts_new ();
  struct config *cfg;
  struct blk_config blk;
  char *err = NULL;

  if (o == NULL ||
      opts_parse_group (o, OPTS_GROUP_BLK, text, &err) == -1 ||
      opts_parse_group (o, OPTS_GROUP_LOOPBACK, "fd=/unused", &err) == -1 ||
      (cfg = opts_finish (o, &err)) == NULL) {
    fprintf (stderr, "cache-micro: %s: %s\n", text, err ? err : "error");
    exit (EXIT_FAILURE);
  }
  opts_free (o);
  blk = cfg->blk;
  blk.verbose_flags = NULL;
  config_free (cfg);
  return blk;
}

static void
row (const char *what, const char *result, const char *target, bool holds)
{
  printf ("%-34s %-32s %-12s %s\n", what, result, target,
          target[0] == '-' ? "" : quick ? "(quick)" : holds ? "yes" : "NO");
}

int
main (int argc, char *argv[])
{
  struct blk_config blk;
  struct mem mem;
  struct cache_backend be;
  struct cache_export *exp;
  uint8_t *buf, *src;
  double hit1, hit2, big, copy, copy1, copy2, wr, nowait_rate, small;
  char result[64];
  int held = 0;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--quick") == 0)
      quick = true;
    else if (strncmp (argv[i], "--seconds=", 10) == 0)
      seconds = atof (argv[i] + 10);
    else {
      fprintf (stderr, "usage: cache-micro [--quick] [--seconds=S]\n");
      return EXIT_FAILURE;
    }
  }
  if (quick) {
    seconds = 0.02;
    runs = 1;
    export_size = 4 * 1024 * 1024;
    cache_opts = "cache=16m,delwri=1h,postpone=1h,commit=medium,nora";
  }

  blk = blk_config (cache_opts);
  if (cache_init (&blk, true) == -1)
    die ("cache_init");
  mem.size = export_size;
  mem.data = calloc (1, export_size);
  src = malloc (export_size);
  buf = malloc (BIG);
  if (mem.data == NULL || src == NULL || buf == NULL)
    die ("malloc");
  for (uint64_t i = 0; i < export_size; i++)
    mem.data[i] = src[i] = i * 2654435761u >> 24;
  be = (struct cache_backend) {
    .name = "bench", .size = export_size, .blksz = 512, .handle = &mem,
    .pread = mem_pread, .pwrite = mem_pwrite, .flush = mem_flush,
    .trim = mem_trim, .zero = mem_zero, .extents = mem_extents,
    .revalidate = mem_revalidate, .close = mem_close,
  };
  exp = cache_export_open_backend (&be);
  if (exp == NULL)
    die ("cache_export_open_backend");

  /* Warm: everything resident, and check it reads back right. */
  for (int pass = 0; pass < 2; pass++)
    for (uint64_t off = 0; off < export_size; off += BIG) {
      if (cache_read (exp, buf, BIG, off) == -1)
        die ("cache_read");
      if (memcmp (buf, src + off, BIG) != 0) {
        fprintf (stderr, "cache-micro: wrong data read at %" PRIu64 "\n",
                 off);
        return EXIT_FAILURE;
      }
    }

  hit1 = measure (HIT4K, exp, NULL, export_size, 1);
  hit2 = measure (HIT4K, exp, NULL, export_size, 2);
  big = measure (HIT64K, exp, NULL, export_size, 1);
  copy = measure (MEMCPY64K, NULL, src, export_size, 1);
  copy1 = measure (MEMCPY4K, NULL, src, export_size, 1);
  copy2 = measure (MEMCPY4K, NULL, src, export_size, 2);
  nowait_rate = measure (NOWAIT4K, exp, NULL, export_size, 1);
  small = measure (HIT4K, exp, NULL, export_size / 16, 1);
  /* Writes over a quarter of the export: resident, then dirty. */
  wr = measure (WRITE4K, exp, NULL, export_size / 4, 1);

  printf ("cache micro-benchmark: %" PRIu64 " MiB export, %s, %.2f s per "
          "measurement, best of %d%s\n\n", export_size >> 20, cache_opts,
          seconds, runs, quick ? " (quick mode: numbers mean nothing)" : "");
  printf ("%-34s %-32s %-12s %s\n", "measurement", "result", "target",
          "holds");
  snprintf (result, sizeof result, "%.0f /s", hit1);
  row ("4 KiB hit reads, 1 thread", result, ">= 2000000", hit1 >= 2e6);
  held += hit1 >= 2e6;
  snprintf (result, sizeof result, "%.2f (%.1f vs %.1f GB/s)", big / copy,
            big * BIG / 1e9, copy * BIG / 1e9);
  row ("64 KiB hit reads / memcpy", result, ">= 0.5", big / copy >= 0.5);
  held += big / copy >= 0.5;
  snprintf (result, sizeof result, "%.0f /s", wr);
  row ("4 KiB writes (delayed)", result, ">= 1000000", wr >= 1e6);
  held += wr >= 1e6;
  snprintf (result, sizeof result, "%.2fx (%.0f /s)", hit2 / hit1, hit2);
  row ("4 KiB hit reads, 2 threads", result, ">= 1.7x", hit2 / hit1 >= 1.7);
  held += hit2 / hit1 >= 1.7;
  printf ("\nFor comparison (no targets):\n");
  snprintf (result, sizeof result, "%.0f /s", nowait_rate);
  row ("4 KiB read_nowait hits", result, "-", true);
  snprintf (result, sizeof result, "%.0f /s", small);
  row (quick ? "4 KiB hits, 1/16 of the export" : "4 KiB hits, 4 MiB (in CPU cache)",
       result, "-", true);
  snprintf (result, sizeof result, "%.0f /s", copy1);
  row ("bare memcpy of random 4 KiB", result, "-", true);
  snprintf (result, sizeof result, "%.2fx (%.0f /s)", copy2 / copy1, copy2);
  row ("bare memcpy 4 KiB, 2 threads", result, "-", true);
  printf ("\n%d of 4 targets hold%s\n", held,
          quick ? " (quick mode: not meaningful)" : "");

  if (cache_export_close (exp) == -1)
    die ("cache_export_close");
  if (cache_shutdown () == -1)
    die ("cache_shutdown");
  if (memcmp (mem.data + export_size / 4, src + export_size / 4,
              export_size - export_size / 4) != 0) {
    fprintf (stderr, "cache-micro: data outside the written quarter "
             "changed\n");
    return EXIT_FAILURE;
  }
  free (mem.data);
  free (src);
  free (buf);
  return EXIT_SUCCESS;
}
