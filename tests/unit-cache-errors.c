/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: host errors are kept, reported and retried.
 *
 * A write-back that fails (EIO, ENOSPC, or a short write that left
 * half the data behind) keeps its blocks dirty, counts in
 * writeback_errors, and its error is returned by the next cache_flush
 * or FUA write on the export, even if the fault has cleared by then;
 * the blocks are retried and, once the host works again, a flush
 * succeeds and every acknowledged write is durable.  A flush keeps
 * going after an error and returns the first.  A failed fdatasync is
 * returned by cache_flush.  Read errors reach the caller and cache
 * nothing; later reads work.  Under memory pressure with a failing
 * host nothing acknowledged is dropped.
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

#define SIZE (2 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE
#define DELWRI_MS 2000

static uint8_t model[SIZE];
static uint8_t buf[SIZE];
static uint8_t data[SIZE];

static struct fake *fk;
static struct cache_export *ex;

static void
setup (const char *opts)
{
  struct fake_config fc = { .name = "errors", .size = SIZE };

  fk = fake_new (&fc);
  pattern_fill (model, SIZE, 0, 1);
  fake_fill (fk, model, SIZE, 0);
  test_cache_init (opts, false);
  ex = test_open (fk);
}

static void
teardown (void)
{
  assert (cache_export_close (ex) == 0);
  assert (cache_shutdown () == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  fake_free (fk);
}

static void
do_write (uint64_t offset, uint64_t count, uint32_t tag, unsigned flags)
{
  pattern_fill (data, count, offset, tag);
  assert (cache_write (ex, data, count, offset, flags) == 0);
  memcpy (model + offset, data, count);
}

static void
expect_error (int r, int err, const char *what)
{
  if (r != -1 || errno != err) {
    fprintf (stderr, "%s: returned %d (%s), expected -1 with %s\n", what, r,
             r == -1 ? strerror (errno) : "no error", strerror (err));
    fake_log_print (fk, 0, stderr);
    abort ();
  }
}

static void
check_reads (const char *what)
{
  assert (cache_read (ex, buf, SIZE, 0) == 0);
  check_bytes (what, buf, model, SIZE, 0);
}

static void
set_fault (enum fake_op_kind kind, int err, bool partial, uint64_t skip,
           int64_t times)
{
  struct fake_fault f = { .err = err, .partial = partial, .skip = skip,
                          .times = times };

  fake_set_fault (fk, kind, &f);
}

/* A failing write-back, seen by cache_writeback_due and cache_flush,
 * then retried once the host works again.
 */
static void
test_write_back_fails (int err, bool partial)
{
  struct cache_stats st;
  char what[128];

  snprintf (what, sizeof what, "write-back fails with %s%s", strerror (err),
            partial ? " after a short write" : "");
  printf ("%s\n", what);
  setup ("cache=4m,delwri=2,commit=medium,nora");

  do_write (10 * BLK, 3 * BLK, 2, 0);
  set_fault (FAKE_PWRITE, err, partial, 0, -1);
  fake_clock_advance (DELWRI_MS);
  expect_error (cache_writeback_due (), err, what);
  st = test_stats (ex);
  if (st.dirty_blocks != 3 || st.writeback_errors == 0) {
    fprintf (stderr, "%s: %" PRIu64 " dirty blocks (expected 3), %" PRIu64
             " write-back errors\n", what, st.dirty_blocks,
             st.writeback_errors);
    abort ();
  }
  check_reads ("reads after a failed write-back");

  /* Still failing: the flush says so, and keeps the blocks. */
  expect_error (cache_flush (ex), err, what);
  assert (test_stats (ex).dirty_blocks == 3);
  assert (test_stats (ex).writeback_errors > st.writeback_errors);
  check_reads ("reads after a failed flush");

  /* Fixed: the retry succeeds and everything is durable. */
  fake_clear_faults (fk);
  assert (cache_flush (ex) == 0);
  assert (test_stats (ex).dirty_blocks == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  teardown ();
}

/* The error of a background write-back is reported once, to the next
 * flush (or FUA write), even though the host has recovered meanwhile.
 */
static void
test_error_reported_later (bool by_fua)
{
  const char *what = by_fua ? "write-back error reported by the next FUA "
    "write" : "write-back error reported by the next flush";
  int r;

  printf ("%s\n", what);
  setup ("cache=4m,delwri=2,commit=medium,nora");
  do_write (20 * BLK + 5, 2 * BLK, 3, 0);
  set_fault (FAKE_PWRITE, EIO, false, 0, 1);
  fake_clock_advance (DELWRI_MS);
  expect_error (cache_writeback_due (), EIO, what);
  assert (test_stats (ex).dirty_blocks > 0);
  fake_clear_faults (fk);       /* the host works again */

  if (by_fua) {
    pattern_fill (data, BLK, 100 * BLK, 4);
    r = cache_write (ex, data, BLK, 100 * BLK, CACHE_FUA);
    expect_error (r, EIO, what);
    /* Not acknowledged, so it may or may not have been written: make
     * the model agree with whatever the cache now holds.
     */
    assert (cache_read (ex, model + 100 * BLK, BLK, 100 * BLK) == 0);
  }
  else
    expect_error (cache_flush (ex), EIO, what);

  /* Reported once: the next flush retries the blocks and succeeds. */
  r = cache_flush (ex);
  if (r != 0) {
    fprintf (stderr, "%s: the flush after the error was reported failed "
             "too: %m\n", what);
    abort ();
  }
  assert (test_stats (ex).dirty_blocks == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  teardown ();
}

/* A FUA write (commit=medium) whose own pwrite or fdatasync fails. */
static void
test_fua_fails (enum fake_op_kind kind)
{
  char what[64];
  int r;

  snprintf (what, sizeof what, "FUA write with a failing %s",
            fake_kind_name (kind));
  printf ("%s\n", what);
  setup ("cache=4m,delwri=2,commit=medium,nora");
  set_fault (kind, EIO, false, 0, 1);
  pattern_fill (data, 5000, 30 * BLK + 1, 5);
  expect_error (cache_write (ex, data, 5000, 30 * BLK + 1, CACHE_FUA),
                EIO, what);
  assert (cache_read (ex, model + 30 * BLK, 2 * BLK, 30 * BLK) == 0);
  /* Once the host works, a flush (at most one more report of the same
   * failure) leaves everything durable.
   */
  r = cache_flush (ex);
  if (r == -1)
    assert (cache_flush (ex) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  teardown ();
}

/* Three separate runs; the first host write of the flush fails.  The
 * flush goes on with the others and returns the error.
 */
static void
test_flush_keeps_going (void)
{
  static const uint64_t runs[3] = { 40 * BLK, 140 * BLK, 240 * BLK };
  unsigned in_host = 0, dirty_runs = 0;
  struct cache_stats st;

  printf ("flush keeps going after a failed write\n");
  setup ("cache=4m,delwri=2,commit=medium,nora");
  for (int i = 0; i < 3; i++)
    do_write (runs[i], 4 * BLK, 10 + i, 0);
  set_fault (FAKE_PWRITE, EIO, false, 0, 1);
  expect_error (cache_flush (ex), EIO, "flush with one failing write");
  for (int i = 0; i < 3; i++) {
    if (fake_durable_is (fk, model + runs[i], 4 * BLK, runs[i]))
      in_host++;
    else
      dirty_runs++;
  }
  st = test_stats (ex);
  if (in_host != 2 || st.dirty_blocks != 4 || st.writeback_errors == 0) {
    fprintf (stderr, "flush with one failing write: %u of 3 runs durable "
             "(expected 2), %" PRIu64 " dirty blocks (expected 4)\n",
             in_host, st.dirty_blocks);
    fake_log_print (fk, 0, stderr);
    abort ();
  }
  assert (cache_flush (ex) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  teardown ();
}

static void
test_fdatasync_fails (void)
{
  printf ("failing fdatasync\n");
  setup ("cache=4m,delwri=2,commit=medium,nora");
  do_write (50 * BLK, 2 * BLK, 20, 0);
  set_fault (FAKE_FLUSH, EIO, false, 0, 1);
  expect_error (cache_flush (ex), EIO, "flush with a failing fdatasync");
  assert (cache_flush (ex) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));

  /* commit=high: the sync of a plain write fails. */
  teardown ();
  setup ("cache=4m,delwri=2,commit=high,nora");
  set_fault (FAKE_FLUSH, ENOSPC, false, 0, 1);
  pattern_fill (data, 100, 60 * BLK, 21);
  expect_error (cache_write (ex, data, 100, 60 * BLK, 0), ENOSPC,
                "commit=high write with a failing fdatasync");
  assert (cache_read (ex, model + 60 * BLK, BLK, 60 * BLK) == 0);
  if (cache_flush (ex) == -1)
    assert (cache_flush (ex) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  teardown ();
}

static void
test_read_fails (bool partial)
{
  const char *what = partial ? "short host read" : "failing host read";
  struct fake_fault f = { .err = EIO, .partial = partial, .times = -1,
                          .offset = 70 * BLK, .count = BLK };
  int r;

  printf ("%s\n", what);
  setup ("cache=4m,delwri=2,commit=medium,nora");
  fake_set_fault (fk, FAKE_PREAD, &f);
  memset (buf, 0, 2 * BLK);
  expect_error (cache_read (ex, buf, 2 * BLK, 69 * BLK + 100), EIO, what);
  expect_error (cache_read (ex, buf, 10, 70 * BLK + 7), EIO, what);
  r = cache_read_nowait (ex, buf, 10, 70 * BLK + 7);
  assert (r == 0 || (r == -1 && errno == EIO));
  /* Other blocks read fine meanwhile. */
  assert (cache_read (ex, buf, BLK, 90 * BLK) == 0);
  check_bytes (what, buf, model + 90 * BLK, BLK, 90 * BLK);

  /* A partial write into the bad block needs its old contents: either
   * it fails, or it is kept and reads back merged once the host works.
   */
  pattern_fill (data, 100, 70 * BLK + 2000, 30);
  r = cache_write (ex, data, 100, 70 * BLK + 2000, 0);
  assert (r == 0 || (r == -1 && errno == EIO));
  if (r == 0)
    memcpy (model + 70 * BLK + 2000, data, 100);

  fake_clear_faults (fk);
  check_reads ("reads once the host works again");
  assert (cache_flush (ex) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  teardown ();
}

/* Write four times the cache while write-backs fail now and then:
 * whatever was acknowledged ends up durable.
 */
static void
test_pressure (int err)
{
  unsigned acked = 0, failed = 0;
  uint64_t failed_at[64];
  int r;

  printf ("memory pressure with failing write-backs (%s)\n", strerror (err));
  setup ("cache=256k,delwri=2,commit=medium,nora");
  set_fault (FAKE_PWRITE, err, err == EIO, 3, 5);
  for (uint64_t pos = 0; pos + 3 * BLK <= 4 * 256 * 1024; pos += 3 * BLK) {
    pattern_fill (data, 3 * BLK, pos, 40);
    if (cache_write (ex, data, 3 * BLK, pos, 0) == 0) {
      memcpy (model + pos, data, 3 * BLK);
      acked++;
    }
    else {
      assert (errno == err || errno == EIO || errno == ENOSPC ||
              errno == ENOMEM);
      assert (failed < 64);
      failed_at[failed++] = pos;
    }
    check_memory ();
  }
  printf ("  %u writes acknowledged, %u failed\n", acked, failed);
  fake_clear_faults (fk);
  r = cache_flush (ex);
  if (r == -1) {
    assert (errno == err);
    assert (cache_flush (ex) == 0);
  }
  /* A failed write may or may not have landed: take what is there. */
  for (unsigned i = 0; i < failed; i++)
    assert (cache_read (ex, model + failed_at[i], 3 * BLK, failed_at[i])
            == 0);
  check_reads ("after pressure");
  assert (fake_durable_is (fk, model, SIZE, 0));
  teardown ();
}

int
main (void)
{
  test_watchdog (60);
  fake_clock_set (1000000);
  test_write_back_fails (EIO, false);
  test_write_back_fails (ENOSPC, false);
  test_write_back_fails (EIO, true);
  test_write_back_fails (ENOSPC, true);
  test_error_reported_later (false);
  test_error_reported_later (true);
  test_fua_fails (FAKE_PWRITE);
  test_fua_fails (FAKE_FLUSH);
  test_flush_keeps_going ();
  test_fdatasync_fails ();
  test_read_fails (false);
  test_read_fails (true);
  test_pressure (EIO);
  test_pressure (ENOSPC);
  printf ("ok\n");
  return 0;
}
