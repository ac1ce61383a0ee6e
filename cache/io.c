/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the synchronous data API: cache_read and cache_write,
 * and their nowait variants.
 *
 * A request is split into cache blocks.  Blocks already holding the
 * bytes asked for are served under their shard lock; missing ones are
 * made resident, marked busy and read from the host in runs, one host
 * transfer per run of neighbouring blocks.  cache_read and cache_write
 * first try the asynchronous path (async.c), run to its end in the
 * caller's thread, and fall back to the walks here for what it does
 * not take in stride.  Writing into the blocks and the commit level
 * are in write.c.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "internal.h"

/* Read [offset, offset+count) of exp into buf through the cache. */
static int
read_range (struct cache_export *exp, char *buf, uint64_t count,
            uint64_t offset)
{
  struct block *run[IO_RUN_BLOCKS];
  unsigned n = 0;
  uint64_t first = offset / CACHE_BLOCK_SIZE;
  uint64_t last = (offset + count - 1) / CACHE_BLOCK_SIZE;

#define ISSUE_RUN()                                                     \
  do {                                                                  \
    if (n > 0 && fill_run_copy (exp, run, n, IO_PRIO_CLIENT, false,     \
                                buf, offset, count) == -1)              \
      return -1;                                                        \
    n = 0;                                                              \
  } while (0)

  for (uint64_t idx = first; idx <= last; idx++) {
    uint64_t bstart = idx * CACHE_BLOCK_SIZE;
    uint32_t lo, hi;
    uint8_t need;
    struct shard *s = shard_of (exp, idx);
    struct block *b;

    block_span (idx, offset, count, &lo, &hi);
    need = sectors_touched (lo, hi);
    if (n > 0 && run[n - 1]->index != idx - 1)
      ISSUE_RUN ();

    lock_or_abort (&s->lock);
  again:
    b = block_lookup (s, exp, idx);
    if (idx == first) {
      EXP_SHARD (exp, s)->read_requests++;
      EXP_SHARD (exp, s)->read_bytes += count;
    }
    if (b && (b->valid & need) == need) {
      memcpy (buf + (bstart + lo - offset), b->data + lo, hi - lo);
      block_reference (s, b);
      EXP_SHARD (exp, s)->hits++;
      unlock_or_abort (&s->lock);
      continue;
    }
    if (b && (b->busy & BUSY_READ)) {
      if (n > 0) {
        unlock_or_abort (&s->lock);
        ISSUE_RUN ();
        lock_or_abort (&s->lock);
      }
      else
        shard_wait (s);
      goto again;
    }
    if (b == NULL) {
      b = block_alloc (s, exp, idx);
      if (b == NULL) {
        unlock_or_abort (&s->lock);
        ISSUE_RUN ();
        if (make_room (s, exp) == -1)
          return -1;
        lock_or_abort (&s->lock);
        goto again;
      }
    }
    b->busy |= BUSY_READ;
    run[n++] = b;
    unlock_or_abort (&s->lock);
    if (n == IO_RUN_BLOCKS)
      ISSUE_RUN ();
  }
  ISSUE_RUN ();
#undef ISSUE_RUN
  return 0;
}

int
cache_read (struct cache_export *exp, void *buf, uint64_t count,
            uint64_t offset)
{
  struct cache_io *io;
  int r;

  if (check_range (exp, count, offset, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 0;
  /* The asynchronous path, run to its end in this thread: one walk
   * copies the hits and takes the missing blocks, then one host read
   * per run fills them straight.
   */
  r = cache_read_start (exp, buf, count, offset, &io);
  if (r == 2)
    r = cache_io_run (io) == -1 ? -1 : 1;
  if (r != 0)
    return r == 1 ? 0 : -1;
  /* What that path does not take in stride (blocks being filled by
   * someone else, part-valid blocks, a full cache, revalidation due).
   */
  revalidate_if_idle (exp);
  if (read_range (exp, buf, count, offset) == -1)
    return -1;
  readahead_note (exp, offset, count);
  return 0;
}

int
cache_read_nowait (struct cache_export *exp, void *buf, uint64_t count,
                   uint64_t offset)
{
  uint64_t first, last;
  struct shard *held = NULL;
  char *dest = buf;

  if (check_range (exp, count, offset, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 1;
  if (!may_skip_revalidation (exp))
    return 0;

  first = offset / CACHE_BLOCK_SIZE;
  last = (offset + count - 1) / CACHE_BLOCK_SIZE;
  for (uint64_t idx = first; idx <= last; idx++) {
    uint32_t lo, hi;
    struct shard *s = shard_of (exp, idx);
    struct block *b;

    block_span (idx, offset, count, &lo, &hi);
    hold_shard (&held, s);
    b = block_lookup (s, exp, idx);
    if (b == NULL || (b->valid & sectors_touched (lo, hi))
        != sectors_touched (lo, hi)) {
      release_shard (&held);
      return 0;
    }
    memcpy (dest + (idx * CACHE_BLOCK_SIZE + lo - offset), b->data + lo,
            hi - lo);
    block_reference (s, b);
    EXP_SHARD (exp, s)->hits++;
    if (idx == last) {          /* served: count the request once */
      EXP_SHARD (exp, s)->read_requests++;
      EXP_SHARD (exp, s)->read_bytes += count;
    }
  }
  release_shard (&held);
  readahead_note (exp, offset, count);
  return 1;
}

int
cache_write_nowait (struct cache_export *exp, const void *buf,
                    uint64_t count, uint64_t offset, unsigned flags)
{
  int r;

  /* SYNC and ASYNC writes go to the host before the reply. */
  if (!write_is_delayed (flags) && !exp->be.readonly
      && check_range (exp, count, offset, ENOSPC) == 0 && count > 0)
    return 0;
  r = insert_nowait (exp, buf, count, offset);
  if (r == 1 && cache.cfg.delwri_ms == 0)
    flusher_kick ();
  return r;
}

int
cache_write (struct cache_export *exp, const void *buf, uint64_t count,
             uint64_t offset, unsigned flags)
{
  struct cache_io *io;
  int r;

  if (exp->be.readonly) {
    errno = EPERM;
    return -1;
  }
  if (check_range (exp, count, offset, ENOSPC) == -1)
    return -1;
  if (count == 0)
    return 0;
  /* The asynchronous path, run in this thread: into the blocks, then
   * (for a write the commit level makes durable) written back from
   * them.
   */
  r = cache_write_start (exp, buf, count, offset, flags, &io);
  if (r == 2)
    r = cache_io_run (io) == -1 ? -1 : 1;
  if (r != 0)
    return r == 1 ? 0 : -1;
  revalidate_if_idle (exp);
  {
    struct shard *s = shard_of (exp, offset / CACHE_BLOCK_SIZE);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    EXP_SHARD (exp, s)->write_requests++;
    EXP_SHARD (exp, s)->write_bytes += count;
  }
  if (write_range (exp, buf, count, offset) == -1) {
    TRACK (exp, offset, count);   /* part of it may have changed */
    return -1;
  }
  return commit_write (exp, offset / CACHE_BLOCK_SIZE,
                       (offset + count - 1) / CACHE_BLOCK_SIZE + 1, flags,
                       false);
}
