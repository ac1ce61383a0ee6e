/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: write-back under memory pressure.
 *
 * delwri= is the latest a block may stay dirty, not the earliest it
 * may be written: once a shard's dirty blocks pass three quarters of
 * its share of the cache, the flusher writes back the oldest, deadline
 * or not, down to half, so that writers find clean blocks to replace
 * instead of waiting for a write-back of their own.  Below the mark
 * nothing is written before its deadline.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (16 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static uint8_t buf[BLK], back[BLK];

/* Write blocks [0, n) with a pattern; returns the dirty count. */
static uint64_t
write_blocks (struct cache_export *exp, unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    memset (buf, (int) (i + 1), BLK);
    assert (cache_write (exp, buf, BLK, (uint64_t) i * BLK, 0) == 0);
  }
  return test_stats (exp).dirty_blocks;
}

static void
test_by_hand (void)
{
  struct fake_config fc = { .name = "pressure", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  uint64_t dirty, cap;

  printf ("by hand\n");
  test_cache_init ("cache=1m,delwri=60,postpone=60,commit=medium,nora",
                   false);
  exp = test_open (fk);

  /* Few dirty blocks: nothing is due, nothing is pressing. */
  assert (write_blocks (exp, 20) == 20);
  assert (cache_writeback_due () == 0);
  assert (cache_writeback_pressure () == 0);
  assert (fake_ops (fk, FAKE_PWRITE) == 0);

  /* Fill the cache with dirty blocks (make_room writes some back). */
  cap = test_stats (exp).resident_blocks;
  dirty = write_blocks (exp, 2000);
  cap = test_stats (exp).resident_blocks;
  printf ("  %llu resident, %llu dirty\n", (unsigned long long) cap,
          (unsigned long long) dirty);
  assert (dirty > cap * 3 / 4);
  assert (cache_writeback_due () == 0);    /* still nothing due */
  assert (cache_writeback_pressure () > 0);
  dirty = test_stats (exp).dirty_blocks;
  printf ("  after: %llu dirty\n", (unsigned long long) dirty);
  assert (dirty <= cap / 2 + 8);
  /* The oldest went first; the newest are still dirty, and all of it
   * reads back.
   */
  for (unsigned i = 1900; i < 2000; i++) {
    assert (cache_read (exp, back, BLK, (uint64_t) i * BLK) == 0);
    assert (back[0] == (uint8_t) (i + 1) && back[BLK - 1] == (uint8_t) (i + 1));
  }
  assert (cache_flush (exp) == 0);
  for (unsigned i = 0; i < 2000; i += 97) {
    memset (buf, (int) (i + 1), BLK);
    assert (fake_durable_is (fk, buf, BLK, (uint64_t) i * BLK));
  }
  cache_export_close (exp);
  cache_shutdown ();
  fake_free (fk);
}

/* The flusher thread is kicked when a shard passes the mark. */
static void
test_flusher (void)
{
  struct fake_config fc = { .name = "pressure", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  uint64_t cap, dirty = 0;
  int i;

  printf ("the flusher\n");
  test_cache_init ("cache=1m,delwri=60,postpone=60,commit=medium,nora", true);
  exp = test_open (fk);
  write_blocks (exp, 2000);
  cap = test_stats (exp).resident_blocks;
  for (i = 0; i < 500; i++) {
    dirty = test_stats (exp).dirty_blocks;
    if (dirty <= cap * 3 / 4)
      break;
    usleep (10000);
  }
  printf ("  %llu resident, %llu dirty after %d ms\n",
          (unsigned long long) cap, (unsigned long long) dirty, i * 10);
  assert (dirty <= cap * 3 / 4);
  cache_export_close (exp);
  cache_shutdown ();
  fake_free (fk);
}

int
main (void)
{
  test_by_hand ();
  test_flusher ();
  printf ("ok\n");
  return 0;
}
