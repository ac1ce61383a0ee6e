/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: reading blocks from the host into the cache.
 *
 * A run of neighbouring blocks, already made resident and marked
 * BUSY_READ by the caller, is read with one host transfer.  Writers
 * wait for BUSY_READ to clear, so a block that held nothing when the
 * fill began still holds nothing: such runs are read straight into the
 * blocks' memory.  A block holding some sectors already (a partial
 * write read the rest) is read into a bounce buffer and merged into
 * the sectors that hold nothing: the others are newer than the host.  The caller may ask for the requested bytes to be
 * copied out while each block is still locked, so a block cannot be
 * evicted between the fill and the copy.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

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

/* Read the run from the host: straight into the blocks when none of
 * them holds anything yet (nobody writes into a block being filled, so
 * nothing can be overwritten) and the backend reads vectors; else into
 * a bounce buffer, merged afterwards.  Returns the bounce buffer
 * (NULL for a direct read) in *bounce.
 */
static int
read_run (struct cache_export *exp, struct block **run, unsigned n,
          uint64_t offset, uint64_t len, enum io_priority prio,
          char **bounce)
{
  bool direct = exp->be.preadv != NULL;

  *bounce = NULL;
  for (unsigned i = 0; direct && i < n; i++) {
    struct shard *s = shard_of (exp, run[i]->index);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    direct = run[i]->valid == 0;
  }
  if (direct) {
    struct iovec iov[IO_RUN_BLOCKS];
    uint64_t left = len;

    for (unsigned i = 0; i < n; i++) {
      iov[i].iov_base = run[i]->data;
      iov[i].iov_len = left < CACHE_BLOCK_SIZE ? left : CACHE_BLOCK_SIZE;
      left -= iov[i].iov_len;
    }
    return exp->be.preadv (exp->be.handle, iov, n, offset, prio);
  }
  *bounce = malloc (len);
  if (*bounce == NULL)
    return -1;
  return exp->be.pread (exp->be.handle, *bounce, len, offset, prio);
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
  r = read_run (exp, run, n, offset, len, prio, &buf);
  if (r == -1) {
    err = errno ? errno : EIO;
    log_error ("%s: reading %llu bytes at %llu from the host: %m",
               exp->name, (unsigned long long) len,
               (unsigned long long) offset);
  }

  fill_complete (exp, run, n, r == 0 ? 0 : err, prefetch, buf, dest,
                 req_offset, req_count);
  if (r == 0)
    return 0;
  errno = err;
  return -1;
}

void
fill_complete (struct cache_export *exp, struct block **run, unsigned n,
               int err, bool prefetch, const char *bounce, char *dest,
               uint64_t req_offset, uint64_t req_count)
{
  for (unsigned i = 0; i < n; i++) {
    struct block *b = run[i];
    struct shard *s = shard_of (exp, b->index);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);

    b->busy &= ~BUSY_READ;
    if (err == 0) {
      if (prefetch && b->valid == 0)
        b->prefetched = true;
      if (prefetch)
        EXP_SHARD (exp, s)->readahead_blocks++;
      else
        EXP_SHARD (exp, s)->misses++;
      if (bounce)
        merge (exp, b, bounce + i * CACHE_BLOCK_SIZE);
      else
        b->valid = block_range_mask (exp, b->index);
      if (dest)
        copy_out (b, dest, req_offset, req_count);
    }
    else if (b->valid == 0 && b->dirty == 0 && b->busy == 0)
      block_drop (s, b);
    shard_wake (s);
  }
}

int
fill_run (struct cache_export *exp, struct block **run, unsigned n,
          enum io_priority prio, bool prefetch)
{
  return fill_run_copy (exp, run, n, prio, prefetch, NULL, 0, 0);
}
