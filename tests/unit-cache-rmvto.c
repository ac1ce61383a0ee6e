/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: coherence with the host file (rmvto=).
 *
 * Someone changes the host file behind the cache (possible under
 * denyno).  Within rmvto of the last access the cache keeps serving
 * what it holds and does not even ask; after more than rmvto idle the
 * next access revalidates, and on a change the export's clean blocks
 * are dropped (the new data is read) and revalidations_changed counts
 * it, while dirty blocks are kept and still written back.  No change
 * means nothing is dropped.  rmvto=none, or a backend that cannot
 * revalidate, never asks.  Time is the fake clock.
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

#define SIZE (1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static uint8_t buf[SIZE];
static uint8_t want[SIZE];

/* Clean blocks 0-3 and a dirty block 8 (written through the cache). */
#define CLEAN_LEN (4 * BLK)
#define DIRTY_OFF (8 * BLK)

static void
read_expect (struct cache_export *exp, uint64_t offset, uint64_t count,
             uint32_t tag, const char *what)
{
  assert (cache_read (exp, buf, count, offset) == 0);
  pattern_fill (want, count, offset, tag);
  check_bytes (what, buf, want, count, offset);
}

/* The host file is rewritten behind the cache with tag. */
static void
change_behind (struct fake *fk, uint32_t tag)
{
  pattern_fill (want, SIZE, 0, tag);
  fake_fill (fk, want, SIZE, 0);
  fake_set_changed (fk);
}

static void
test_changed (void)
{
  struct fake_config fc = { .name = "rmvto", .size = SIZE,
                            .can_revalidate = true };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  size_t log0;

  printf ("rmvto=2: a change behind the cache is noticed after 2 s idle\n");
  pattern_fill (want, SIZE, 0, 1);
  fake_fill (fk, want, SIZE, 0);
  fake_clock_set (1000000);
  test_cache_init ("cache=4m,rmvto=2,delwri=1h,commit=medium,nora", false);
  exp = test_open (fk);

  read_expect (exp, 0, CLEAN_LEN, 1, "first read");
  pattern_fill (buf, BLK, DIRTY_OFF, 5);
  assert (cache_write (exp, buf, BLK, DIRTY_OFF, 0) == 0);

  change_behind (fk, 2);
  /* 1 s later: within rmvto, the cache serves what it has. */
  fake_clock_advance (1000);
  log0 = fake_log_len (fk);
  read_expect (exp, 0, CLEAN_LEN, 1, "within rmvto");
  if (fake_log_count (fk, FAKE_PREAD, log0, 0, 0) != 0 ||
      fake_log_count (fk, FAKE_REVALIDATE, log0, 0, 0) != 0) {
    fprintf (stderr, "within rmvto: the cache went to the host:\n");
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  assert (test_stats (exp).revalidations_changed == 0);

  /* More than 2 s idle: the next read sees the new data. */
  fake_clock_advance (2001);
  log0 = fake_log_len (fk);
  read_expect (exp, 0, CLEAN_LEN, 2, "after rmvto idle");
  assert (fake_log_count (fk, FAKE_REVALIDATE, log0, 0, 0) == 1);
  assert (test_stats (exp).revalidations_changed == 1);
  /* The dirty block was not dropped. */
  read_expect (exp, DIRTY_OFF, BLK, 5, "dirty block after a change");
  assert (test_stats (exp).dirty_blocks == 1);
  assert (cache_flush (exp) == 0);
  pattern_fill (want, BLK, DIRTY_OFF, 5);
  assert (fake_durable_is (fk, want, BLK, DIRTY_OFF));

  /* Idle again, no change this time: nothing is dropped. */
  fake_clock_advance (2001);
  log0 = fake_log_len (fk);
  read_expect (exp, 0, CLEAN_LEN, 2, "after idle, no change");
  assert (fake_log_count (fk, FAKE_REVALIDATE, log0, 0, 0) == 1);
  assert (fake_log_count (fk, FAKE_PREAD, log0, 0, 0) == 0);
  assert (test_stats (exp).revalidations_changed == 1);

  /* Steady access every second never revalidates. */
  log0 = fake_log_len (fk);
  for (int i = 0; i < 10; i++) {
    fake_clock_advance (1000);
    read_expect (exp, 0, BLK, 2, "steady access");
  }
  assert (fake_log_count (fk, FAKE_REVALIDATE, log0, 0, 0) == 0);

  /* A write is an access too, and a change is noticed before it. */
  change_behind (fk, 3);
  fake_clock_advance (2500);
  pattern_fill (buf, 100, 2 * BLK + 10, 6);
  assert (cache_write (exp, buf, 100, 2 * BLK + 10, 0) == 0);
  assert (test_stats (exp).revalidations_changed == 2);
  assert (cache_read (exp, buf, CLEAN_LEN, 0) == 0);
  pattern_fill (want, CLEAN_LEN, 0, 3);
  pattern_fill (want + 2 * BLK + 10, 100, 2 * BLK + 10, 6);
  check_bytes ("write after a change", buf, want, CLEAN_LEN, 0);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
test_never (const char *opts, bool can_revalidate)
{
  struct fake_config fc = { .name = "no-rmvto", .size = SIZE,
                            .can_revalidate = can_revalidate };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;

  printf ("%s%s: never revalidates\n", opts,
          can_revalidate ? "" : " (backend cannot revalidate)");
  pattern_fill (want, SIZE, 0, 1);
  fake_fill (fk, want, SIZE, 0);
  test_cache_init (opts, false);
  exp = test_open (fk);
  read_expect (exp, 0, CLEAN_LEN, 1, "first read");
  change_behind (fk, 2);
  fake_clock_advance (60 * 1000);
  read_expect (exp, 0, CLEAN_LEN, 1, "cached data, no revalidation");
  assert (fake_ops (fk, FAKE_REVALIDATE) == 0);
  assert (test_stats (exp).revalidations_changed == 0);
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  test_watchdog (60);
  test_changed ();
  test_never ("cache=4m,rmvto=none,nora", true);
  test_never ("cache=4m,rmvto=2,nora", false);
  printf ("ok\n");
  return 0;
}
