/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: replacement, wipe= and the memory bound.
 *
 * A streaming read of four times the cache, interleaved with re-reads
 * of a hot set a quarter of the cache, must leave at least 90% of the
 * hot set resident (re-reading it afterwards misses at most 10% of
 * its blocks).  protect= must make a visible difference when the hot
 * set is re-read rarely.  Under wipe=25% a streaming export never
 * holds more than a quarter of the cache and another export's working
 * set survives.  Throughout, cache_memory stays within cache=.
 * Read-ahead is off so that only replacement decides what is resident.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define BLK CACHE_BLOCK_SIZE
#define CHUNK (64 * 1024)

static uint8_t buf[CHUNK];

static void
read_range (struct cache_export *exp, uint64_t offset, uint64_t count)
{
  for (uint64_t pos = offset; pos < offset + count; pos += CHUNK)
    assert (cache_read (exp, buf, CHUNK, pos) == 0);
}

static void
check_limits (struct cache_export *exp, const struct blk_config *cfg)
{
  uint64_t in_use, limit;

  check_memory ();
  cache_memory (&in_use, &limit);
  assert (limit == cfg->cache);
  assert (test_stats (exp).resident_blocks * BLK <= cfg->cache);
}

/* Blocks of [offset, offset+count) resident now. */
static uint64_t
resident (struct cache_export *exp, uint64_t offset, uint64_t count)
{
  uint64_t n = 0;

  for (uint64_t pos = offset; pos < offset + count; pos += BLK) {
    int r = cache_read_nowait (exp, buf, BLK, pos);
    assert (r == 0 || r == 1);
    n += r;
  }
  return n;
}

/* Stream 4 x the cache after the hot set [0, cache/4), re-reading the
 * hot set after every `every` bytes streamed.  Returns the fraction of
 * hot blocks that missed when the hot set was read again.
 */
static double
hot_set_misses (const char *cache_size, unsigned protect, double every_caches)
{
  char opts[128];
  struct blk_config cfg;
  struct fake *fk;
  struct fake_config fc = { .name = "stream" };
  struct cache_export *exp;
  struct cache_stats st0, st1;
  uint64_t hot, stream, every, since = 0, hot_blocks, misses, res;
  uint8_t *expect;

  snprintf (opts, sizeof opts, "cache=%s,protect=%u,nora,delwri=2",
            cache_size, protect);
  cfg = test_cache_init (opts, false);
  hot = cfg.cache / 4 / CHUNK * CHUNK;
  stream = 4 * cfg.cache / CHUNK * CHUNK;
  every = (uint64_t) (every_caches * cfg.cache) / CHUNK * CHUNK;
  hot_blocks = hot / BLK;
  fc.size = hot + stream;
  fk = fake_new (&fc);
  expect = malloc (hot);
  assert (expect);
  pattern_fill (expect, hot, 0, 1);
  fake_fill (fk, expect, hot, 0);
  exp = test_open (fk);

  read_range (exp, 0, hot);
  read_range (exp, 0, hot);
  for (uint64_t pos = hot; pos < hot + stream; pos += CHUNK) {
    assert (cache_read (exp, buf, CHUNK, pos) == 0);
    since += CHUNK;
    /* Not at the very end: the hot set is measured below, `every`
     * bytes of stream after it was last read.
     */
    if (since >= every && pos + CHUNK < hot + stream) {
      read_range (exp, 0, hot);
      since = 0;
    }
    check_limits (exp, &cfg);
  }

  res = resident (exp, 0, hot);
  st0 = test_stats (exp);
  for (uint64_t pos = 0; pos < hot; pos += BLK) {
    assert (cache_read (exp, buf, BLK, pos) == 0);
    check_bytes ("hot set", buf, expect + pos, BLK, pos);
  }
  st1 = test_stats (exp);
  misses = st1.misses - st0.misses;
  printf ("  cache=%-4s protect=%u hot set re-read every %.2f x cache: "
          "%" PRIu64 "/%" PRIu64 " hot blocks resident, %" PRIu64
          " missed\n", cache_size, protect, every_caches, res, hot_blocks,
          misses);
  /* Every block read is a hit or a miss, and blocks that were not
   * resident missed.
   */
  assert (st1.hits - st0.hits + misses == hot_blocks);
  assert (misses >= hot_blocks - res);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
  free (expect);
  return (double) misses / hot_blocks;
}

static void
test_hot_set (void)
{
  static const char *const sizes[] = { "1m", "4m", "16m" };
  double m0[3], m2[3];
  static const double every[3] = { 0.5, 1, 2 };
  bool visible = false;

  printf ("hot set against a stream of 4 x the cache\n");
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    double m = hot_set_misses (sizes[i], 2, 0.5);
    if (m > 0.10) {
      fprintf (stderr, "cache=%s: %.1f%% of the hot set missed (at most "
               "10%% allowed)\n", sizes[i], m * 100);
      abort ();
    }
  }

  printf ("protect=0 against protect=2\n");
  for (int i = 0; i < 3; i++) {
    m0[i] = hot_set_misses ("4m", 0, every[i]);
    m2[i] = hot_set_misses ("4m", 2, every[i]);
    if (m2[i] > m0[i] + 0.02) {
      fprintf (stderr, "protect=2 kept less of the hot set than protect=0 "
               "(%.1f%% against %.1f%% missed)\n", m2[i] * 100, m0[i] * 100);
      abort ();
    }
    if (m0[i] - m2[i] >= 0.25)
      visible = true;
  }
  if (!visible) {
    fprintf (stderr, "protect=2 made no visible difference over protect=0 "
             "(want 25%% fewer hot-set misses at some re-read distance)\n");
    abort ();
  }
}

static void
test_wipe (void)
{
  struct blk_config cfg;
  struct fake_config fa = { .name = "streamer" }, fb = { .name = "worker" };
  struct fake *fka, *fkb;
  struct cache_export *a, *b;
  uint64_t ws, res, max_a = 0;

  printf ("wipe=25%%: one export cannot take more than a quarter\n");
  cfg = test_cache_init ("cache=4m,wipe=25%,nora,delwri=2", false);
  assert (cfg.wipe == cfg.cache / 4);
  fa.size = 4 * cfg.cache;
  fb.size = cfg.cache;
  fka = fake_new (&fa);
  fkb = fake_new (&fb);
  a = test_open (fka);
  b = test_open (fkb);

  /* B's working set: a fifth of the cache, read twice. */
  ws = cfg.cache / 5 / CHUNK * CHUNK;
  read_range (b, 0, ws);
  read_range (b, 0, ws);
  res = resident (b, 0, ws);
  printf ("  the other export's working set: %" PRIu64 "/%" PRIu64
          " blocks resident before the stream\n", res, ws / BLK);
  assert (test_stats (b).resident_blocks * BLK <= cfg.wipe);

  for (uint64_t pos = 0; pos < fa.size; pos += CHUNK) {
    struct cache_stats st;
    assert (cache_read (a, buf, CHUNK, pos) == 0);
    st = test_stats (a);
    if (st.resident_blocks * BLK > cfg.wipe) {
      fprintf (stderr, "wipe=%" PRIu64 ": the streaming export holds %"
               PRIu64 " blocks (%" PRIu64 " bytes)\n", cfg.wipe,
               st.resident_blocks, st.resident_blocks * BLK);
      abort ();
    }
    if (st.resident_blocks > max_a)
      max_a = st.resident_blocks;
    check_limits (a, &cfg);
  }
  res = resident (b, 0, ws);
  printf ("  streaming export held at most %" PRIu64 " blocks (wipe %"
          PRIu64 "); %" PRIu64 "/%" PRIu64 " blocks of the other "
          "export's working set resident\n", max_a, cfg.wipe / BLK, res,
          ws / BLK);
  assert (max_a > 0);
  if (res < ws / BLK * 9 / 10) {
    fprintf (stderr, "wipe=25%%: the other export's working set was wiped\n");
    abort ();
  }

  assert (cache_export_close (a) == 0);
  assert (cache_export_close (b) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fka);
  fake_free (fkb);
}

/* Writes, too, stay within the bound (dirty blocks must be written back
 * to make room), and alloc= does not change it.
 */
static void
test_memory_writes (const char *opts)
{
  struct blk_config cfg;
  struct fake_config fc = { .name = "mem", .size = 8 * 1024 * 1024 };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  uint8_t *data = malloc (fc.size);

  printf ("memory bound with writes (%s)\n", opts);
  assert (data);
  cfg = test_cache_init (opts, false);
  exp = test_open (fk);
  check_limits (exp, &cfg);
  pattern_fill (data, fc.size, 0, 5);
  for (uint64_t pos = 0; pos < fc.size; pos += 12345) {
    uint64_t n = fc.size - pos < 12345 ? fc.size - pos : 12345;
    assert (cache_write (exp, data + pos, n, pos, 0) == 0);
    check_limits (exp, &cfg);
  }
  for (uint64_t pos = 0; pos < fc.size; pos += CHUNK) {
    assert (cache_read (exp, buf, CHUNK, pos) == 0);
    check_bytes ("read back", buf, data + pos, CHUNK, pos);
    check_limits (exp, &cfg);
  }
  assert (cache_flush (exp) == 0);
  assert (fake_durable_is (fk, data, fc.size, 0));
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
  free (data);
}

int
main (void)
{
  test_watchdog (120);
  fake_clock_set (1000000);
  test_hot_set ();
  test_wipe ();
  test_memory_writes ("cache=256k,delwri=2");
  test_memory_writes ("cache=1m,alloc=1m,delwri=1h");
  test_memory_writes ("cache=1m,alloc=256k,hash=7,delwri=0");
  printf ("ok\n");
  return 0;
}
