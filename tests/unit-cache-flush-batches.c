/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: flushing more dirty blocks than one write-back
 * batch holds.
 *
 * A flush (and a FUA write) works through the dirty blocks in batches
 * of a few thousand, lowest block first, in one of two ways: walking
 * the block numbers when most of the range is dirty, or the dirty
 * lists when it is sparse.  Each must leave the durable image equal to
 * what was written, write every dirty block exactly once (neighbours
 * in one host write, at most 1 MiB each), and leave nothing dirty.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define BLK CACHE_BLOCK_SIZE
#define MiB (1024 * 1024)

static uint8_t *model;

static struct fake *
setup (uint64_t size, const char *opts, struct cache_export **exp)
{
  struct fake_config fc = { .name = "batches", .size = size, .no_log = true };
  struct fake *fk = fake_new (&fc);

  free (model);
  model = calloc (1, size);
  assert (model);
  test_cache_init (opts, false);
  *exp = test_open (fk);
  return fk;
}

static void
write_block (struct cache_export *exp, uint64_t index, uint32_t tag,
             unsigned flags)
{
  uint8_t buf[BLK];

  pattern_fill (buf, BLK, index * BLK, tag);
  assert (cache_write (exp, buf, BLK, index * BLK, flags) == 0);
  memcpy (model + index * BLK, buf, BLK);
}

static void
finish (struct fake *fk, struct cache_export *exp, uint64_t size,
        uint64_t expect_blocks, uint64_t max_writes, const char *what)
{
  uint64_t w0 = fake_ops (fk, FAKE_PWRITE), b0 = fake_bytes (fk, FAKE_PWRITE);
  uint64_t writes, bytes;

  assert (cache_flush (exp) == 0);
  writes = fake_ops (fk, FAKE_PWRITE) - w0;
  bytes = fake_bytes (fk, FAKE_PWRITE) - b0;
  printf ("  %s: %llu blocks in %llu host writes\n", what,
          (unsigned long long) (bytes / BLK), (unsigned long long) writes);
  assert (fake_durable_is (fk, model, size, 0));
  assert (bytes == expect_blocks * BLK);        /* each block once */
  assert (writes <= max_writes);
  assert (test_stats (exp).dirty_blocks == 0);
  /* Nothing left: a second flush writes nothing. */
  w0 = fake_ops (fk, FAKE_PWRITE);
  assert (cache_flush (exp) == 0);
  assert (fake_ops (fk, FAKE_PWRITE) == w0);
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  struct cache_export *exp;
  struct fake *fk;
  uint64_t state = test_seed ("random mix", false, 42);
  uint64_t n;

  /* Dense: 12000 neighbouring blocks of a 64 MiB export. */
  printf ("dense\n");
  fk = setup (64 * MiB, "cache=96m,delwri=1h,nora", &exp);
  for (uint64_t i = 1000; i < 13000; i++)
    write_block (exp, i, 1, 0);
  finish (fk, exp, 64 * MiB, 12000, 12000 / 256 + 2, "dense");

  /* Sparse: every seventh block of a 256 MiB export, 9362 blocks, no
   * two neighbours.
   */
  printf ("sparse\n");
  fk = setup (256 * MiB, "cache=64m,delwri=1h,nora", &exp);
  n = 0;
  for (uint64_t i = 3; i < 256 * MiB / BLK; i += 7, n++)
    write_block (exp, i, 2, 0);
  finish (fk, exp, 256 * MiB, n, n, "sparse");

  /* Random: 3000 writes of 1 to 8 blocks over 256 MiB, overlapping
   * (some 12000 blocks, a sparse fifth of the export).
   */
  printf ("random\n");
  fk = setup (256 * MiB, "cache=96m,delwri=1h,nora", &exp);
  {
    uint8_t *dirty = calloc (1, 256 * MiB / BLK);
    uint64_t blocks = 0;

    assert (dirty);
    for (int k = 0; k < 3000; k++) {
      uint64_t len = 1 + test_rand_below (&state, 8);
      uint64_t first = test_rand_below (&state, 256 * MiB / BLK - len);
      for (uint64_t i = first; i < first + len; i++) {
        write_block (exp, i, 3 + k, 0);
        if (!dirty[i]++)
          blocks++;
      }
    }
    free (dirty);
    finish (fk, exp, 256 * MiB, blocks, blocks, "random");
  }

  /* A FUA write of 10240 blocks at commit=medium is durable on return. */
  printf ("FUA\n");
  fk = setup (64 * MiB, "cache=96m,delwri=1h,commit=medium,nora", &exp);
  {
    uint8_t *buf = malloc (40 * MiB);

    assert (buf);
    pattern_fill (buf, 40 * MiB, 8 * MiB, 9);
    assert (cache_write (exp, buf, 40 * MiB, 8 * MiB, CACHE_FUA) == 0);
    memcpy (model + 8 * MiB, buf, 40 * MiB);
    free (buf);
    assert (fake_durable_is (fk, model, 64 * MiB, 0));
    assert (test_stats (exp).dirty_blocks == 0);
  }
  finish (fk, exp, 64 * MiB, 0, 0, "after FUA");

  free (model);
  printf ("ok\n");
  return 0;
}
