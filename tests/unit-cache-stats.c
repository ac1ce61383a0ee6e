/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: per-export statistics on a scripted sequence.
 *
 * Each step moves exactly the counters it should: request and byte
 * counts of client reads and writes, hits and misses per cache block,
 * resident and dirty blocks, write-backs (two adjacent dirty blocks
 * are one host write) and their bytes, flushes and write-back errors.
 * Another export's counters do not move.  Read-ahead is off and
 * nothing is written back behind the script's back.
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

#define SIZE (1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static uint8_t buf[SIZE];

#define EXPECT(st, field, value)                                        \
  do {                                                                  \
    if ((st).field != (uint64_t) (value)) {                             \
      fprintf (stderr, "%s: " #field " is %" PRIu64 ", expected %"      \
               PRIu64 "\n", step, (st).field, (uint64_t) (value));      \
      abort ();                                                         \
    }                                                                   \
  } while (0)

int
main (void)
{
  struct fake_config fc = { .name = "stats", .size = SIZE };
  struct fake_config oc = { .name = "quiet", .size = SIZE };
  struct fake *fk = fake_new (&fc), *ok = fake_new (&oc);
  struct cache_export *exp, *quiet;
  struct cache_stats st, zero;
  struct fake_fault f = { .err = EIO, .times = 1 };
  const char *step;

  test_watchdog (60);
  fake_clock_set (1000000);
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  quiet = test_open (ok);
  memset (&zero, 0, sizeof zero);

  step = "a new export";
  st = test_stats (exp);
  assert (memcmp (&st, &zero, sizeof st) == 0);

  step = "write 8 KiB at 0";
  memset (buf, 1, 2 * BLK);
  assert (cache_write (exp, buf, 2 * BLK, 0, 0) == 0);
  st = test_stats (exp);
  EXPECT (st, write_requests, 1);
  EXPECT (st, write_bytes, 2 * BLK);
  EXPECT (st, resident_blocks, 2);
  EXPECT (st, dirty_blocks, 2);
  EXPECT (st, read_requests, 0);
  EXPECT (st, hits, 0);
  EXPECT (st, misses, 0);

  step = "read those 8 KiB";
  assert (cache_read (exp, buf, 2 * BLK, 0) == 0);
  st = test_stats (exp);
  EXPECT (st, read_requests, 1);
  EXPECT (st, read_bytes, 2 * BLK);
  EXPECT (st, hits, 2);
  EXPECT (st, misses, 0);

  step = "read 4 KiB at 16 KiB (not cached)";
  assert (cache_read (exp, buf, BLK, 4 * BLK) == 0);
  st = test_stats (exp);
  EXPECT (st, read_requests, 2);
  EXPECT (st, read_bytes, 3 * BLK);
  EXPECT (st, hits, 2);
  EXPECT (st, misses, 1);
  EXPECT (st, resident_blocks, 3);
  EXPECT (st, dirty_blocks, 2);

  step = "read it again, then 100 bytes of it";
  assert (cache_read (exp, buf, BLK, 4 * BLK) == 0);
  assert (cache_read (exp, buf, 100, 4 * BLK + 10) == 0);
  st = test_stats (exp);
  EXPECT (st, read_requests, 4);
  EXPECT (st, read_bytes, 4 * BLK + 100);
  EXPECT (st, hits, 4);
  EXPECT (st, misses, 1);

  step = "read 3 blocks straddling 2 cached ones (unaligned)";
  assert (cache_read (exp, buf, 2 * BLK, 3 * BLK + 1) == 0);
  st = test_stats (exp);
  EXPECT (st, read_requests, 5);
  EXPECT (st, hits, 5);         /* block 4 */
  EXPECT (st, misses, 3);       /* blocks 3 and 5 */
  EXPECT (st, resident_blocks, 5);

  step = "flush";
  assert (cache_flush (exp) == 0);
  st = test_stats (exp);
  EXPECT (st, flushes, 1);
  EXPECT (st, writebacks, 1);
  EXPECT (st, writeback_bytes, 2 * BLK);
  EXPECT (st, writeback_errors, 0);
  EXPECT (st, dirty_blocks, 0);
  EXPECT (st, resident_blocks, 5);

  step = "a write-back that fails once";
  memset (buf, 2, BLK);
  assert (cache_write (exp, buf, BLK, 20 * BLK, 0) == 0);
  fake_set_fault (fk, FAKE_PWRITE, &f);
  assert (cache_flush (exp) == -1 && errno == EIO);
  st = test_stats (exp);
  EXPECT (st, write_requests, 2);
  EXPECT (st, write_bytes, 3 * BLK);
  EXPECT (st, flushes, 2);
  EXPECT (st, writeback_errors, 1);
  EXPECT (st, dirty_blocks, 1);
  assert (cache_flush (exp) == 0);
  st = test_stats (exp);
  EXPECT (st, flushes, 3);
  EXPECT (st, dirty_blocks, 0);
  /* Whether the failed attempt counts is not specified. */
  if (st.writebacks < 2 || st.writebacks > 3 ||
      st.writeback_bytes < 3 * BLK || st.writeback_bytes > 4 * BLK) {
    fprintf (stderr, "%s: %" PRIu64 " write-backs of %" PRIu64 " bytes\n",
             step, st.writebacks, st.writeback_bytes);
    abort ();
  }
  EXPECT (st, readahead_blocks, 0);
  EXPECT (st, revalidations_changed, 0);

  step = "the other export";
  st = test_stats (quiet);
  assert (memcmp (&st, &zero, sizeof st) == 0);

  assert (cache_export_close (exp) == 0);
  assert (cache_export_close (quiet) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
  fake_free (ok);
  printf ("ok\n");
  return 0;
}
