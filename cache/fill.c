/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: reading blocks from the host into the cache.
 *
 * A run of neighbouring blocks, already made resident and marked
 * BUSY_READ by the caller, is read with one host transfer and merged
 * into the sectors of each block that hold nothing yet: sectors a
 * writer filled while the read was in flight are newer than the host
 * and are kept.  The caller may ask for the requested bytes to be
 * copied out while each block is still locked, so a block cannot be
 * evicted between the fill and the copy.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

/* Copy the requested part of block b into dest (shard lock held). */
static void
copy_out (struct block *b, char *dest, uint64_t req_offset,
          uint64_t req_count)
{
  uint64_t bstart = b->index * CACHE_BLOCK_SIZE;
  uint64_t lo = req_offset > bstart ? req_offset : bstart;
  uint64_t hi = req_offset + req_count < bstart + CACHE_BLOCK_SIZE
    ? req_offset + req_count : bstart + CACHE_BLOCK_SIZE;

  if (lo < hi)
    memcpy (dest + (lo - req_offset), b->data + (lo - bstart), hi - lo);
}

/* Merge host data into the invalid sectors of b (shard lock held). */
static void
merge (struct cache_export *exp, struct block *b, const char *src)
{
  uint8_t mask = block_range_mask (exp, b->index);
  uint8_t missing = mask & ~b->valid;

  if (missing == mask)
    memcpy (b->data, src, __builtin_popcount (mask) * SECTOR_SIZE);
  else
    for (unsigned i = 0; i < SECTORS_PER_BLOCK; i++)
      if (missing & (1u << i))
        memcpy (b->data + i * SECTOR_SIZE, src + i * SECTOR_SIZE,
                SECTOR_SIZE);
  b->valid |= mask;
}

int
fill_run_copy (struct cache_export *exp, struct block **run, unsigned n,
               enum io_priority prio, bool prefetch, char *dest,
               uint64_t req_offset, uint64_t req_count)
{
  uint64_t offset = run[0]->index * CACHE_BLOCK_SIZE;
  uint64_t len = (uint64_t) n * CACHE_BLOCK_SIZE;
  CLEANUP_FREE char *buf = NULL;
  int r, err = 0;

  if (offset + len > exp->be.size)
    len = exp->be.size - offset;
  buf = malloc (len);
  if (buf == NULL)
    r = -1;
  else
    r = exp->be.pread (exp->be.handle, buf, len, offset, prio);
  if (r == -1) {
    err = errno;
    log_error ("%s: reading %llu bytes at %llu from the host: %m",
               exp->name, (unsigned long long) len,
               (unsigned long long) offset);
  }

  for (unsigned i = 0; i < n; i++) {
    struct block *b = run[i];
    struct shard *s = shard_of (exp, b->index);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);

    b->busy &= ~BUSY_READ;
    if (r == 0) {
      if (prefetch && b->valid == 0)
        b->prefetched = true;
      if (prefetch)
        EXP_SHARD (exp, s)->readahead_blocks++;
      else
        EXP_SHARD (exp, s)->misses++;
      merge (exp, b, buf + i * CACHE_BLOCK_SIZE);
      if (dest)
        copy_out (b, dest, req_offset, req_count);
    }
    else if (b->valid == 0 && b->dirty == 0 && b->busy == 0)
      block_drop (s, b);
    shard_wake (s);
  }

  if (r == 0)
    return 0;
  errno = err;
  return -1;
}

int
fill_run (struct cache_export *exp, struct block **run, unsigned n,
          enum io_priority prio, bool prefetch)
{
  return fill_run_copy (exp, run, n, prio, prefetch, NULL, 0, 0);
}
