/* SPDX-License-Identifier: BSD-3-Clause */
/* Regression test: a write must not fail with ENOMEM because the cache
 * is full of another export's dirty blocks; they can be written back.
 *
 * Found by test-hostile-big-writes.sh (ASan build): while one client
 * streamed 32 MiB writes into lo1, a well-behaved client's WRITE to lo0
 * failed with "Cannot allocate memory".  make_room, asked for a block
 * in a shard that holds none (its blocks were all taken over by other
 * shards, which the streaming writes had filled with dirty data), found
 * no clean block to steal and no dirty block in that shard to write
 * back, and gave up with ENOMEM instead of writing back dirty blocks of
 * another shard.  Here the state is built directly: every block of a
 * two-shard cache dirty in shard 0 (export A, no flusher, delwri=60),
 * then a write of export B to a block of shard 1.
 *
 * This test uses the cache's internals (shard_of, to find which
 * blocks land in which shard).
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"
#include "../cache/internal.h"

#define SIZE (8 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static char data[BLK];

/* The first block index >= from of exp that lands in shard sn. */
static uint64_t
block_in_shard (struct cache_export *exp, unsigned sn, uint64_t from)
{
  for (uint64_t i = from; i < SIZE / BLK; i++)
    if (shard_number (shard_of (exp, i)) == sn)
      return i;
  fprintf (stderr, "crash-cache-starve: no block of shard %u\n", sn);
  exit (77);
}

int
main (void)
{
  struct fake_config fa = { .name = "A", .size = SIZE };
  struct fake_config fb = { .name = "B", .size = SIZE };
  struct fake *fka, *fkb;
  struct cache_export *a, *b;
  uint64_t idx = 0, n = 0;
  int r;

  /* 1 MiB: about 250 blocks, in two shards. */
  test_cache_init ("cache=1m,delwri=60,commit=medium", false);
  fka = fake_new (&fa);
  fkb = fake_new (&fb);
  a = test_open (fka);
  b = test_open (fkb);
  if (cache.nshards != 2) {
    fprintf (stderr, "crash-cache-starve: SKIP: %u shards, this test "
             "wants 2\n", cache.nshards);
    return 77;
  }

  /* Fill the whole cache with dirty blocks of A, all in shard 0. */
  memset (data, 0xa5, BLK);
  for (;;) {
    if (cache.arena_blocks == cache.max_blocks && n >= cache.max_blocks)
      break;
    idx = block_in_shard (a, 0, idx);
    assert (cache_write (a, data, BLK, idx * BLK, 0) == 0);
    idx++;
    n++;
    if (n > cache.max_blocks + 1)
      break;
  }
  printf ("%" PRIu64 " dirty blocks of A in shard 0 (cache: %" PRIu64
          " blocks)\n", n, cache.max_blocks);

  /* B writes one block that lands in the empty shard 1. */
  idx = block_in_shard (b, 1, 0);
  memset (data, 0x5a, BLK);
  r = cache_write (b, data, BLK, idx * BLK, 0);
  if (r == -1) {
    fprintf (stderr, "crash-cache-starve: FAIL: a write of export B "
             "failed with %s: the cache is full of A's dirty blocks, which "
             "it could write back, but make_room gives up for an empty "
             "shard\n", strerror (errno));
    exit (EXIT_FAILURE);
  }
  assert (cache_flush (b) == 0);
  assert (fake_image_is (fkb, data, BLK, idx * BLK));
  assert (cache_export_close (a) == 0);
  assert (cache_export_close (b) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fka);
  fake_free (fkb);
  printf ("crash-cache-starve: ok\n");
  return 0;
}
