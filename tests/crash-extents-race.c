/* SPDX-License-Identifier: BSD-3-Clause */
/* Regression test: cache_extents must not report a hole where an
 * acknowledged write lies, even when the block is written back while
 * the extents are being worked out.
 *
 * Found by test-crash-daemon-kill9.sh: a structured READ of 64 KiB or
 * more (the daemon sends holes as NBD_REPLY_TYPE_OFFSET_HOLE, from
 * cache_extents) sometimes returned zeroes over data written, and
 * acknowledged, before the READ was sent.  cache_extents asked the
 * host for its extents first (a hole: the block was only in the cache)
 * and listed the dirty blocks afterwards; a write-back that finished
 * in between took the block off the dirty list, so it was in neither
 * view.  Here the write-back is made to happen exactly there, inside
 * the backend's extents call, so the race is hit every time.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static struct cache_export *ce;
static int (*real_extents) (void *handle, uint64_t offset, uint64_t count,
                            device_extent_fn fn, void *opaque);
static bool flush_inside;

/* The host's extents, then a write-back before the cache looks at its
 * dirty blocks.
 */
static int
racing_extents (void *handle, uint64_t offset, uint64_t count,
                device_extent_fn fn, void *opaque)
{
  int r = real_extents (handle, offset, count, fn, opaque);

  if (flush_inside) {
    flush_inside = false;
    assert (cache_flush (ce) == 0);
  }
  return r;
}

struct seen {
  uint64_t data_bytes_in_block;
  uint64_t block;
};

static int
collect (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct seen *s = opaque;
  uint64_t start = offset > s->block ? offset : s->block;
  uint64_t end = offset + length < s->block + BLK
    ? offset + length : s->block + BLK;

  if (!hole && end > start)
    s->data_bytes_in_block += end - start;
  return 0;
}

int
main (void)
{
  struct fake_config fc = { .name = "race", .size = SIZE };
  struct fake *fk;
  struct cache_backend be;
  static char data[BLK], back[BLK];
  struct seen seen = { .block = 64 * 1024 };

  test_cache_init ("cache=1m,delwri=60,commit=medium", false);
  fk = fake_new (&fc);
  fake_backend (fk, &be);
  real_extents = be.extents;
  be.extents = racing_extents;
  ce = cache_export_open_backend (&be);
  assert (ce != NULL);

  /* A block over a host hole, only in the cache (dirty). */
  pattern_fill (data, BLK, seen.block, 7);
  assert (cache_write (ce, data, BLK, seen.block, 0) == 0);
  assert (!fake_allocated (fk, seen.block));

  flush_inside = true;
  assert (cache_extents (ce, 128 * 1024, 0, collect, &seen) == 0);
  assert (!flush_inside);
  assert (fake_allocated (fk, seen.block));     /* it was written back */
  if (seen.data_bytes_in_block != BLK) {
    fprintf (stderr, "crash-extents-race: FAIL: the block at %" PRIu64
             " holds acknowledged data (written back during the extents "
             "query) but cache_extents reported %" PRIu64 " of its %d "
             "bytes as a hole: a sparse READ returns zeroes there\n",
             seen.block, BLK - seen.data_bytes_in_block, BLK);
    exit (EXIT_FAILURE);
  }
  assert (cache_read (ce, back, BLK, seen.block) == 0);
  assert (memcmp (back, data, BLK) == 0);

  assert (cache_export_close (ce) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
  printf ("crash-extents-race: ok\n");
  return 0;
}
