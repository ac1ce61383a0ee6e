/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: read-ahead and prefetch.
 *
 * A sequential stream of 4 KiB reads is detected: blocks are read
 * ahead at background priority, the block after the stream becomes
 * resident without being asked for, reading it then costs no host
 * read, and read-ahead keeps going ahead of the stream without reading
 * anything twice.  nora and
 * ra=0 read nothing that was not asked for; random reads trigger
 * nothing, nor do sequential reads as large as the largest window.  cache_prefetch (NBD_CMD_CACHE) makes later reads of its
 * range hits with no new host read.  Background work is waited for by
 * polling with a deadline, never by sleeping.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (16 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE
#define STEP_END (4 * 1024 * 1024)     /* stepwise part of the stream */

static uint8_t model[SIZE];
static uint8_t buf[SIZE];

static struct fake *
new_fake (void)
{
  struct fake_config fc = { .name = "ra", .size = SIZE };
  struct fake *fk = fake_new (&fc);

  fake_fill (fk, model, SIZE, 0);
  return fk;
}

static void
read_check (struct cache_export *exp, uint64_t offset, uint64_t count)
{
  assert (cache_read (exp, buf, count, offset) == 0);
  check_bytes ("read", buf, model + offset, count, offset);
}

struct ra_wait {
  struct cache_export *exp;
  uint64_t offset, count;
};

static bool
has_read_ahead (void *opaque)
{
  struct ra_wait *w = opaque;

  return test_stats (w->exp).readahead_blocks > 0;
}

static bool
is_resident (void *opaque)
{
  struct ra_wait *w = opaque;
  int r = cache_read_nowait (w->exp, buf, w->count, w->offset);

  assert (r == 0 || r == 1);
  return r == 1;
}

/* Host reads since log0 at a priority, in bytes. */
static uint64_t
pread_bytes (struct fake *fk, size_t log0, int prio)
{
  uint64_t n = 0;

  for (size_t i = log0; i < fake_log_len (fk); i++) {
    struct fake_op op = fake_log_at (fk, i);
    if (op.kind == FAKE_PREAD && (prio == -1 || (int) op.prio == prio))
      n += op.count;
  }
  return n;
}

static void
test_sequential (const char *opts, uint64_t ra_max)
{
  struct fake *fk = new_fake ();
  struct cache_export *exp;
  struct ra_wait w;
  struct cache_stats s0, s1;
  size_t log0, log1;
  uint64_t client, total, pos;

  printf ("sequential stream (%s)\n", opts);
  test_cache_init (opts, true);
  exp = test_open (fk);
  w.exp = exp;

  log0 = fake_log_len (fk);
  for (pos = 0; pos < 64 * BLK; pos += BLK)
    read_check (exp, pos, BLK);
  if (!poll_until (has_read_ahead, &w, 10000)) {
    fprintf (stderr, "%s: 64 sequential reads triggered no read-ahead\n",
             opts);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  w.offset = pos;
  w.count = BLK;
  if (!poll_until (is_resident, &w, 10000)) {
    fprintf (stderr, "%s: the block after a sequential stream was not read "
             "ahead within 10 s\n", opts);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  if (pread_bytes (fk, log0, IO_PRIO_BACKGROUND) == 0) {
    fprintf (stderr, "%s: read-ahead is not at background priority\n", opts);
    fake_log_print (fk, log0, stderr);
    abort ();
  }

  /* Reading it now is a hit and costs no host read. */
  log1 = fake_log_len (fk);
  s0 = test_stats (exp);
  read_check (exp, pos, BLK);
  s1 = test_stats (exp);
  if (fake_log_count (fk, FAKE_PREAD, log1, pos, BLK) != 0 ||
      s1.hits != s0.hits + 1) {
    fprintf (stderr, "%s: a read-ahead block was not a hit (hits %" PRIu64
             " -> %" PRIu64 ", misses %" PRIu64 " -> %" PRIu64 ")\n", opts,
             s0.hits, s1.hits, s0.misses, s1.misses);
    fake_log_print (fk, log1, stderr);
    abort ();
  }

  /* As the stream goes on, read-ahead keeps going ahead of it: wait
   * (polling) until the next block is resident before each read, so
   * this does not depend on how the threads are scheduled.  The
   * client then never needs a host read of its own, and nothing is
   * read twice (the cache holds the whole export).
   */
  for (pos += BLK; pos < STEP_END; pos += BLK) {
    w.offset = pos;
    if (!poll_until (is_resident, &w, 10000)) {
      fprintf (stderr, "%s: read-ahead stopped: block at %" PRIu64 " of a "
               "sequential stream not read ahead within 10 s\n", opts, pos);
      abort ();
    }
    read_check (exp, pos, BLK);
  }
  client = pread_bytes (fk, log1, IO_PRIO_CLIENT);
  total = pread_bytes (fk, log0, -1);
  if (client != 0 || total > STEP_END + ra_max) {
    fprintf (stderr, "%s: a stream kept ahead of by read-ahead still cost "
             "%" PRIu64 " bytes of client host reads; %" PRIu64 " bytes read "
             "for %d\n", opts, client, total, STEP_END);
    abort ();
  }

  /* The rest as fast as it goes: data right, read-ahead used. */
  for (; pos < SIZE; pos += BLK)
    read_check (exp, pos, BLK);
  client = pread_bytes (fk, log0, IO_PRIO_CLIENT);
  total = pread_bytes (fk, log0, -1);
  s1 = test_stats (exp);
  printf ("  %" PRIu64 " KiB read by the client's own host reads, %" PRIu64
          " KiB in all, %" PRIu64 " blocks read ahead, %" PRIu64 " hits\n",
          client / 1024, total / 1024, s1.readahead_blocks, s1.hits);
  assert (s1.readahead_blocks >= (STEP_END - 64 * BLK) / BLK);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* Reads count bytes at each of blocks[] and checks that the host was
 * asked for exactly those, and nothing was read ahead (even later:
 * checked after the export is closed).
 */
static void
check_no_read_ahead (const char *opts, const char *what,
                     const uint64_t *blocks, size_t n, uint64_t count)
{
  struct fake *fk = new_fake ();
  struct cache_export *exp;
  struct cache_stats st;
  size_t log0;

  printf ("%s (%s): no read-ahead\n", what, opts);
  test_cache_init (opts, true);
  exp = test_open (fk);
  log0 = fake_log_len (fk);
  for (size_t i = 0; i < n; i++)
    read_check (exp, blocks[i] * BLK, count);
  st = test_stats (exp);
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  if (st.readahead_blocks != 0 || st.misses != n * (count / BLK) ||
      pread_bytes (fk, log0, IO_PRIO_BACKGROUND) != 0 ||
      pread_bytes (fk, log0, -1) != n * count) {
    fprintf (stderr, "%s (%s): %" PRIu64 " blocks read ahead, %" PRIu64
             " misses for %zu reads; host reads:\n", what, opts,
             st.readahead_blocks, st.misses, n);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  fake_free (fk);
}

static void
test_no_read_ahead (uint64_t seed)
{
  static uint64_t blocks[300];
  uint64_t rs = seed, prev = 1000;

  for (size_t i = 0; i < 300; i++)
    blocks[i] = i;
  check_no_read_ahead ("cache=16m,nora", "sequential", blocks, 300, BLK);
  check_no_read_ahead ("cache=16m,ra=0", "sequential", blocks, 300, BLK);
  /* Sequential reads as large as ra= MAX read ahead themselves. */
  for (size_t i = 0; i < 40; i++)
    blocks[i] = i * (256 * 1024 / BLK);
  check_no_read_ahead ("cache=16m", "sequential 256 KiB reads", blocks, 40,
                       256 * 1024);
  for (size_t i = 0; i < 12; i++)
    blocks[i] = i * (1024 * 1024 / BLK);
  check_no_read_ahead ("cache=16m,ra=16k:1m", "sequential 1 MiB reads",
                       blocks, 12, 1024 * 1024);

  /* Distinct random blocks, never next to (or one apart from) the one
   * before.
   */
  for (size_t i = 0; i < 300; i++) {
    uint64_t b;
    bool again;
    do {
      b = 1 + test_rand_below (&rs, SIZE / BLK - 1);
      again = b + 2 >= prev && b <= prev + 2;
      for (size_t j = 0; j < i && !again; j++)
        again = blocks[j] == b;
    } while (again);
    blocks[i] = prev = b;
  }
  check_no_read_ahead ("cache=16m", "random reads", blocks, 300, BLK);
}

static void
test_prefetch (const char *opts, uint64_t offset, uint64_t count)
{
  struct fake *fk = new_fake ();
  struct cache_export *exp;
  struct ra_wait w;
  struct cache_stats s0, s1;
  uint64_t nblocks = (offset + count - 1) / BLK - offset / BLK + 1;
  size_t log0, log1;

  printf ("prefetch [%" PRIu64 ", +%" PRIu64 ") (%s)\n", offset, count, opts);
  test_cache_init (opts, true);
  exp = test_open (fk);
  w = (struct ra_wait) { exp, offset, count };

  log0 = fake_log_len (fk);
  assert (cache_read_nowait (exp, buf, count, offset) == 0);
  assert (fake_log_len (fk) == log0);     /* read_nowait did no I/O */
  assert (cache_prefetch (exp, count, offset) == 0);
  if (!poll_until (is_resident, &w, 10000)) {
    fprintf (stderr, "prefetch: range not resident within 10 s\n");
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  check_bytes ("read_nowait after prefetch", buf, model + offset, count,
               offset);
  log1 = fake_log_len (fk);
  s0 = test_stats (exp);
  read_check (exp, offset, count);
  s1 = test_stats (exp);
  if (fake_log_count (fk, FAKE_PREAD, log1, offset, count) != 0 ||
      s1.hits != s0.hits + nblocks) {
    fprintf (stderr, "prefetch: reading the range was not all hits "
             "(hits +%" PRIu64 " of %" PRIu64 " blocks, misses +%" PRIu64
             ")\n", s1.hits - s0.hits, nblocks, s1.misses - s0.misses);
    fake_log_print (fk, log1, stderr);
    abort ();
  }
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  uint64_t seed = test_seed ("unit-cache-readahead", true, 0);

  test_watchdog (120);
  fake_clock_set (1000000);
  pattern_fill (model, SIZE, 0, 1);
  test_sequential ("cache=64m,delwri=2", 256 * 1024);
  test_sequential ("cache=64m,ra=16k:1m,delwri=2", 1024 * 1024);
  test_no_read_ahead (seed);
  test_prefetch ("cache=16m,nora", 1024 * 1024 + 123, 300000);
  test_prefetch ("cache=16m,nora", 0, 4096);
  test_prefetch ("cache=16m", 5 * 1024 * 1024, 2 * 1024 * 1024);
  printf ("ok\n");
  return 0;
}
