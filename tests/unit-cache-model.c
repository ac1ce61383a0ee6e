/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: a randomized model test of the whole cache.
 *
 * Four threads do random reads, writes, zeroes, trims, flushes,
 * non-blocking reads, prefetches and extents, aligned and not, on a
 * cache small enough that blocks are evicted all the time, while the
 * flusher writes back behind them (real clock, short delwri).  Every
 * read is compared with an in-memory model.  Each thread owns one
 * region, so the model needs no lock; the region edges are not block
 * aligned, so neighbouring threads share the cache blocks at the
 * edges.  A shared region, written before the threads start, is only
 * read.  When all are done, each thread reads its neighbour's region
 * (another connection's newest writes).  Trimmed bytes may read back
 * as before or as zeroes.  At the end of each pass a flush must leave
 * the fake's durable image equal to the model.
 *
 * Passes vary commit=, delwri=, cache=, protect= and read-ahead; two
 * use a fixed seed and two a random one, printed with how to replay.
 * In all at least 1,000,000 operations (CACHE_MODEL_OPS overrides;
 * fewer under the sanitizers, which are several times slower).
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define NTHREADS 4
#define BASE 777                        /* [0, BASE) is shared too */
#define REGION (1024 * 1024 + 1234)     /* per thread */
#define OWNED_END (BASE + NTHREADS * REGION)
#define SIZE ((OWNED_END + 512 * 1024 + 511) / 512 * 512)
#define BLK CACHE_BLOCK_SIZE
#define MAX_IO (128 * 1024)
#define HISTORY 16

static uint8_t model[SIZE];
static uint8_t trimmed[SIZE];   /* may read as the model or as zero */

static struct cache_export *ex;
static struct fake *fk;
static pthread_barrier_t barrier;

struct op_record {
  char what[96];
};

struct worker {
  int id;
  uint64_t seed;
  uint64_t rs;
  unsigned ops;
  uint64_t lo, hi;              /* owned region */
  uint8_t *buf;
  struct op_record history[HISTORY];
  unsigned nr;
  uint64_t counts[10];
};

static const char *op_names[10] = {
  "read", "read shared", "write", "zero", "trim", "flush", "read_nowait",
  "prefetch", "extents", "writeback_due",
};

static void
fail (struct worker *w, const char *msg)
{
  if (w->id < 0) {
    fprintf (stderr, "model test (pass seed %" PRIu64 "): %s\n", w->seed,
             msg);
    abort ();
  }
  fprintf (stderr, "model test: thread %d (pass seed %" PRIu64 "), op %u: "
           "%s\n  last operations of this thread, oldest first:\n",
           w->id, w->seed, w->nr, msg);
  for (unsigned i = 0; i < HISTORY; i++) {
    unsigned k = (w->nr + 1 + i) % HISTORY;
    if (w->history[k].what[0])
      fprintf (stderr, "    %s\n", w->history[k].what);
  }
  fprintf (stderr, "  replay with CACHE_TEST_SEED=<the pass seed>\n");
  abort ();
}

/* Compare what was read with the model. */
static void
compare (struct worker *w, const uint8_t *got, uint64_t offset,
         uint64_t count, const char *what)
{
  if (memcmp (got, model + offset, count) == 0)
    return;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t o = offset + i;
    if (got[i] != model[o] && !(trimmed[o] && got[i] == 0)) {
      char msg[256];
      snprintf (msg, sizeof msg, "%s: byte %" PRIu64 " is 0x%02x, the model "
                "says 0x%02x%s", what, o, got[i], model[o],
                trimmed[o] ? " (or 0: trimmed)" : "");
      fail (w, msg);
    }
  }
}

static void
pick_range (struct worker *w, uint64_t lo, uint64_t hi, uint64_t *offset,
            uint64_t *count)
{
  uint64_t r = test_rand_below (&w->rs, 100), len, off;
  uint64_t span = hi - lo;

  if (r < 65)
    len = 1 + test_rand_below (&w->rs, 2 * BLK);
  else if (r < 90)
    len = BLK * (1 + test_rand_below (&w->rs, 16));
  else
    len = 1 + test_rand_below (&w->rs, MAX_IO);
  if (len > span)
    len = span;
  if (r >= 65 && r < 90) {              /* block aligned */
    uint64_t first = (lo + BLK - 1) / BLK, last = hi / BLK;
    if (last > first && (last - first) * BLK >= len) {
      off = (first + test_rand_below (&w->rs, last - first - len / BLK + 1))
        * BLK;
      *offset = off;
      *count = len;
      return;
    }
  }
  off = lo + test_rand_below (&w->rs, span - len + 1);
  *offset = off;
  *count = len;
}

struct extent_check {
  uint64_t next;
};

static int
extent_fn (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct extent_check *e = opaque;

  (void) hole;
  if (offset != e->next || length == 0 || offset + length > SIZE)
    return -1;
  e->next = offset + length;
  return 0;
}

static void
one_op (struct worker *w)
{
  uint64_t r = test_rand_below (&w->rs, 1000), off, len;
  struct op_record *h = &w->history[w->nr % HISTORY];
  unsigned flags = 0;
  int kind, res;

  if (r < 330) kind = 0;
  else if (r < 380) kind = 1;
  else if (r < 730) kind = 2;
  else if (r < 800) kind = 3;
  else if (r < 840) kind = 4;
  else if (r < 850) kind = 5;
  else if (r < 960) kind = 6;
  else if (r < 970) kind = 7;
  else if (r < 990) kind = 8;
  else kind = 9;
  w->counts[kind]++;

  if (kind == 1) {
    /* The shared region: [0, BASE) and [OWNED_END, SIZE). */
    if (test_rand_below (&w->rs, 8) == 0)
      pick_range (w, 0, BASE, &off, &len);
    else
      pick_range (w, OWNED_END, SIZE, &off, &len);
  }
  else
    pick_range (w, w->lo, w->hi, &off, &len);
  if (test_rand_below (&w->rs, 10) == 0)
    flags |= CACHE_FUA;
  if (kind == 3 && test_rand_below (&w->rs, 2))
    flags |= CACHE_MAY_TRIM;
  snprintf (h->what, sizeof h->what, "#%u %s [%" PRIu64 ", +%" PRIu64 ")%s%s",
            w->nr, op_names[kind], off, len, flags & CACHE_FUA ? " fua" : "",
            flags & CACHE_MAY_TRIM ? " may_trim" : "");

  switch (kind) {
  case 0: case 1:
    if (cache_read (ex, w->buf, len, off) == -1)
      fail (w, "cache_read failed");
    compare (w, w->buf, off, len, "read");
    break;
  case 2:
    pattern_fill (w->buf, len, off, (uint32_t) test_rand (&w->rs));
    if (cache_write (ex, w->buf, len, off, flags) == -1)
      fail (w, "cache_write failed");
    memcpy (model + off, w->buf, len);
    memset (trimmed + off, 0, len);
    break;
  case 3:
    if (cache_zero (ex, len, off, flags) == -1)
      fail (w, "cache_zero failed");
    memset (model + off, 0, len);
    memset (trimmed + off, 0, len);
    break;
  case 4:
    if (cache_trim (ex, len, off, flags) == -1)
      fail (w, "cache_trim failed");
    memset (trimmed + off, 1, len);
    break;
  case 5:
    if (cache_flush (ex) == -1)
      fail (w, "cache_flush failed");
    break;
  case 6:
    res = cache_read_nowait (ex, w->buf, len, off);
    if (res == -1 || res > 1)
      fail (w, "cache_read_nowait failed");
    if (res == 1)
      compare (w, w->buf, off, len, "read_nowait");
    break;
  case 7:
    if (cache_prefetch (ex, len, off) == -1)
      fail (w, "cache_prefetch failed");
    break;
  case 8: {
    struct extent_check e = { .next = off };
    if (cache_extents (ex, len, off, extent_fn, &e) == -1 ||
        e.next < off + len)
      fail (w, "cache_extents failed or left a gap");
    break;
  }
  case 9:
    if (cache_writeback_due () == -1)
      fail (w, "cache_writeback_due failed");
    break;
  }
  if (w->nr % 64 == 0)
    check_memory ();
  w->nr++;
}

static void *
worker_thread (void *arg)
{
  struct worker *w = arg;

  uint64_t lo, hi;

  pthread_barrier_wait (&barrier);
  for (unsigned i = 0; i < w->ops; i++)
    one_op (w);

  /* Once every thread is done, each reads its neighbour's region:
   * the newest writes of another connection, dirty or not.
   */
  pthread_barrier_wait (&barrier);
  lo = BASE + (uint64_t) ((w->id + 1) % NTHREADS) * REGION;
  hi = lo + REGION;
  snprintf (w->history[w->nr % HISTORY].what, sizeof w->history[0].what,
            "reading the neighbour's region [%" PRIu64 ", %" PRIu64 ")",
            lo, hi);
  for (uint64_t pos = lo; pos < hi; pos += MAX_IO) {
    uint64_t n = hi - pos < MAX_IO ? hi - pos : MAX_IO;
    if (cache_read (ex, w->buf, n, pos) == -1)
      fail (w, "cache_read of the neighbour's region failed");
    compare (w, w->buf, pos, n, "neighbour's region");
  }
  return NULL;
}

static void
run_pass (const char *opts, uint64_t seed, unsigned ops)
{
  struct fake_config fc = { .name = "model", .size = SIZE };
  struct blk_config cfg = test_blk_config (opts);
  struct worker w[NTHREADS];
  pthread_t th[NTHREADS];
  struct cache_stats st;
  uint64_t t0 = real_clock_ms (), rs = seed;
  uint8_t *all = malloc (SIZE);

  printf ("pass: %s, %u operations, seed %" PRIu64 "\n", opts, ops, seed);
  fflush (stdout);
  assert (all);
  fk = fake_new (&fc);
  /* The host starts with data everywhere. */
  pattern_fill (model, SIZE, 0, (uint32_t) seed);
  memset (trimmed, 0, SIZE);
  fake_fill (fk, model, SIZE, 0);

  cache_set_clock (real_clock_ms);
  assert (cache_init (&cfg, true) == 0);
  cache_set_clock (real_clock_ms);
  ex = test_open (fk);

  /* The shared region gets new contents through the cache. */
  pattern_fill (all, SIZE - OWNED_END, OWNED_END, (uint32_t) seed + 1);
  assert (cache_write (ex, all, SIZE - OWNED_END, OWNED_END, 0) == 0);
  memcpy (model + OWNED_END, all, SIZE - OWNED_END);
  pattern_fill (all, 300, 100, (uint32_t) seed + 2);
  assert (cache_write (ex, all, 300, 100, CACHE_FUA) == 0);
  memcpy (model + 100, all, 300);

  assert (pthread_barrier_init (&barrier, NULL, NTHREADS) == 0);
  for (int i = 0; i < NTHREADS; i++) {
    memset (&w[i], 0, sizeof w[i]);
    w[i].id = i;
    w[i].seed = seed;
    w[i].rs = test_rand (&rs) | 1;
    w[i].ops = ops / NTHREADS;
    w[i].lo = BASE + (uint64_t) i * REGION;
    w[i].hi = w[i].lo + REGION;
    w[i].buf = malloc (MAX_IO);
    assert (w[i].buf);
    assert (pthread_create (&th[i], NULL, worker_thread, &w[i]) == 0);
  }
  for (int i = 0; i < NTHREADS; i++) {
    assert (pthread_join (th[i], NULL) == 0);
    free (w[i].buf);
  }
  pthread_barrier_destroy (&barrier);

  /* Everything reads back, and a flush makes it all durable. */
  memset (&w[0], 0, sizeof w[0]);
  w[0].id = -1;
  w[0].seed = seed;
  assert (cache_read (ex, all, SIZE, 0) == 0);
  compare (&w[0], all, 0, SIZE, "final read");
  assert (cache_flush (ex) == 0);
  st = test_stats (ex);
  assert (st.dirty_blocks == 0);
  fake_read_durable (fk, all, SIZE, 0);
  compare (&w[0], all, 0, SIZE, "durable image after the final flush");
  printf ("  %.1f s; %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
          " read ahead, %" PRIu64 " write-backs (%" PRIu64 " host writes, %"
          PRIu64 " host reads)\n", (real_clock_ms () - t0) / 1000.0, st.hits,
          st.misses, st.readahead_blocks, st.writebacks,
          fake_ops (fk, FAKE_PWRITE), fake_ops (fk, FAKE_PREAD));
  /* The cache really was too small: blocks were evicted and re-read. */
  assert (st.misses > 0 && st.writebacks > 0);

  assert (cache_export_close (ex) == 0);
  assert (cache_shutdown () == 0);
  fake_read_durable (fk, all, SIZE, 0);
  compare (&w[0], all, 0, SIZE, "durable image after close");
  assert (fake_closed (fk) == 1);
  fake_free (fk);
  free (all);
}

int
main (void)
{
  const char *env = getenv ("CACHE_MODEL_OPS");
  unsigned total = test_sanitized () ? 120000 : 1000000;
  uint64_t fixed, random;

  if (env && env[0])
    total = strtoul (env, NULL, 0);
  fixed = test_seed ("unit-cache-model (fixed)", false, 42);
  random = test_seed ("unit-cache-model (random)", true, 0);
  test_watchdog (300);
  fake_clock_set (1000000);

  run_pass ("cache=256k,delwri=0.05,commit=medium", fixed, total / 4);
  run_pass ("cache=128k,delwri=0,commit=low,protect=0,ra=4k:64k",
            fixed + 1, total / 4);
  run_pass ("cache=1m,delwri=0.02,postpone=0.1,commit=high,wipe=50%",
            random, total / 4);
  run_pass ("cache=64k,delwri=0.01,commit=none,nora", random + 1,
            total - 3 * (total / 4));
  printf ("ok: %u operations\n", total);
  return 0;
}
