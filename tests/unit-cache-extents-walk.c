/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: extents of a fragmented host file.
 *
 * One block-status request must not walk the whole of a fragmented
 * file: cache_extents describes a prefix (at most a bounded number of
 * host extents), contiguous from the offset asked for, and a client
 * asking again from where the answer ended gets the rest, every extent
 * right.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (32 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

struct walk {
  struct fake *fk;
  uint64_t next;                /* where the next extent must start */
  size_t n;
};

static int
check_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct walk *w = opaque;

  assert (offset == w->next);
  assert (length > 0);
  for (uint64_t o = offset; o < offset + length; o += BLK)
    assert (fake_allocated (w->fk, o) == !hole);
  w->next = offset + length;
  w->n++;
  return 0;
}

int
main (void)
{
  struct fake_config fc = { .name = "fragmented", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  static uint8_t block[BLK];
  struct walk w = { .fk = fk };
  unsigned requests = 0;

  test_watchdog (60);
  memset (block, 0x5a, BLK);
  /* Every other block allocated: SIZE / BLK extents in all. */
  for (uint64_t o = 0; o < SIZE; o += 2 * BLK)
    fake_fill (fk, block, BLK, o);

  test_cache_init ("cache=1m,delwri=1h,nora", false);
  exp = test_open (fk);

  while (w.next < SIZE) {
    size_t before = w.n;
    assert (cache_extents (exp, SIZE - w.next, w.next, check_extent,
                           &w) == 0);
    assert (w.n > before);            /* progress every time */
    assert (w.n - before <= 64);      /* a bounded walk */
    requests++;
  }
  printf ("%zu extents in %u requests\n", w.n, requests);
  assert (w.n == SIZE / BLK);
  assert (requests > 1);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
  return EXIT_SUCCESS;
}
