/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: cache_write_nowait, the event loop's write path.
 *
 * It must take a delayed write without any host I/O, and refuse
 * (return 0, so the caller falls back to cache_write) whenever host I/O
 * would be needed: a FUA write at medium, any write at high, a partial
 * sector that holds nothing, a cache full of dirty blocks.  What it
 * takes must read back and be written back like any other write.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (4 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static uint8_t buf[SIZE], back[SIZE];

static void
test_medium (void)
{
  struct fake_config fc = { .name = "nowait", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  size_t ops;

  printf ("commit=medium\n");
  test_cache_init ("cache=1m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  ops = fake_log_len (fk);

  /* A plain write of whole sectors: taken, no host I/O. */
  pattern_fill (buf, 3 * BLK + 512, 5 * BLK + 512, 7);
  assert (cache_write_nowait (exp, buf, 3 * BLK + 512, 5 * BLK + 512, 0) == 1);
  assert (fake_log_len (fk) == ops);
  assert (cache_read (exp, back, 3 * BLK + 512, 5 * BLK + 512) == 0);
  assert (memcmp (buf, back, 3 * BLK + 512) == 0);
  assert (test_stats (exp).write_requests == 1);
  assert (test_stats (exp).dirty_blocks == 4);

  /* FUA at medium is SYNC: refused, nothing counted. */
  assert (cache_write_nowait (exp, buf, BLK, 0, CACHE_FUA) == 0);
  assert (test_stats (exp).write_requests == 1);

  /* Part of a sector of an empty block: needs a read first. */
  ops = fake_log_len (fk);
  assert (cache_write_nowait (exp, buf, 100, 40 * BLK + 10, 0) == 0);
  assert (fake_log_len (fk) == ops);

  /* Errors are errors. */
  assert (cache_write_nowait (exp, buf, BLK, SIZE, 0) == -1);
  assert (errno == ENOSPC);

  /* A cache full of dirty blocks: refused rather than writing back. */
  for (uint64_t off = 0; ; off += BLK) {
    int r;
    assert (off < SIZE);
    r = cache_write_nowait (exp, buf, BLK, off, 0);
    assert (r != -1);
    if (r == 0)
      break;
  }
  assert (fake_ops (fk, FAKE_PWRITE) == 0);

  /* Everything taken reaches the host on flush: the host then holds
   * exactly what the cache shows.
   */
  assert (cache_flush (exp) == 0);
  assert (cache_read (exp, back, SIZE, 0) == 0);
  assert (fake_durable_is (fk, back, SIZE, 0));
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
test_level (const char *opts, unsigned flags, int expect)
{
  struct fake_config fc = { .name = "level", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;

  printf ("%s, flags %u: expect %d\n", opts, flags, expect);
  test_cache_init (opts, false);
  exp = test_open (fk);
  memset (buf, 0xa5, BLK);
  assert (cache_write_nowait (exp, buf, BLK, 0, flags) == expect);
  if (expect == 0)
    assert (test_stats (exp).dirty_blocks == 0);
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
test_readonly (void)
{
  struct fake_config fc = { .name = "ro", .size = SIZE, .readonly = true };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;

  printf ("read-only\n");
  test_cache_init ("cache=1m", false);
  exp = test_open (fk);
  assert (cache_write_nowait (exp, buf, BLK, 0, 0) == -1);
  assert (errno == EPERM);
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  test_watchdog (60);
  fake_clock_set (1000000);
  test_medium ();
  test_level ("cache=1m,commit=high", 0, 0);
  test_level ("cache=1m,commit=low", CACHE_FUA, 0);
  test_level ("cache=1m,commit=low", 0, 1);
  test_level ("cache=1m,commit=none", CACHE_FUA, 1);
  test_readonly ();
  printf ("ok\n");
  return EXIT_SUCCESS;
}
