/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the cache API for data: reads, writes and flush.
 *
 * A request is split into cache blocks.  Blocks already holding the
 * bytes asked for are served under their shard lock; missing ones are
 * made resident, marked busy and read from the host in runs, one host
 * transfer per run of neighbouring blocks.  Writes go into the blocks
 * (reading a sector first only when a write covers part of a sector
 * that holds nothing yet) and mark them dirty; whether they are also
 * written back before the call returns is the commit level's decision,
 * made in commit_write below, where the rules of cache.h are applied.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "internal.h"

int
check_range (const struct cache_export *exp, uint64_t count, uint64_t offset,
             int err)
{
  if (offset > exp->be.size || count > exp->be.size - offset) {
    errno = err;
    return -1;
  }
  return 0;
}

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
write_range (struct cache_export *exp, const char *buf, uint64_t count,
             uint64_t offset)
{
  uint64_t first = offset / CACHE_BLOCK_SIZE;
  uint64_t last = (offset + count - 1) / CACHE_BLOCK_SIZE;
  uint64_t t = now_ms ();

  for (uint64_t idx = first; idx <= last; idx++) {
    uint64_t bstart = idx * CACHE_BLOCK_SIZE;
    uint32_t lo, hi;
    uint8_t touched, covered;
    struct shard *s = shard_of (exp, idx);
    struct block *b;
    bool existed;

    block_span (idx, offset, count, &lo, &hi);
    touched = sectors_touched (lo, hi);
    covered = sectors_covered (lo, hi);

    lock_or_abort (&s->lock);
  again:
    b = block_lookup (s, exp, idx);
    existed = b != NULL;
    if (b == NULL) {
      b = block_alloc (s, exp, idx);
      if (b == NULL) {
        unlock_or_abort (&s->lock);
        if (make_room (s, exp) == -1)
          return -1;
        lock_or_abort (&s->lock);
        goto again;
      }
    }
    /* A fill reads the host straight into the block's memory: let it
     * finish rather than have it overwrite these bytes.
     */
    if (b->busy & BUSY_READ) {
      shard_wait (s);
      goto again;
    }
    /* Part of a sector that holds nothing: read it first.  Not while
     * a zero of the block is on its way to the host: the old bytes
     * read now would be kept, dirty, after the zero.
     */
    if (touched & ~covered & ~b->valid) {
      if (in_fence (exp, idx)) {
        unlock_or_abort (&s->lock);
        wait_fences (exp, idx, idx + 1);
        lock_or_abort (&s->lock);
        goto again;
      }
      b->busy |= BUSY_READ;
      unlock_or_abort (&s->lock);
      if (fill_run (exp, &b, 1, IO_PRIO_CLIENT, false) == -1)
        return -1;
      lock_or_abort (&s->lock);
      goto again;
    }
    memcpy (b->data + lo, buf + (bstart + lo - offset), hi - lo);
    b->valid |= touched;
    block_set_dirty (s, b, touched, t);
    if (existed)
      block_reference (s, b);
    unlock_or_abort (&s->lock);
  }
  TRACK (exp, offset, count);
  return 0;
}

/* Apply a write to the cache if that needs no host I/O: every block
 * resident or free to take, none being filled, no partial sector to
 * read.  Returns 1 if applied, 0 if not (part of it may have been:
 * writing it again is harmless), -1 on error.
 */
int
insert_nowait (struct cache_export *exp, const void *buf, uint64_t count,
               uint64_t offset)
{
  uint64_t first, last, t;
  struct shard *held = NULL;

  if (exp->be.readonly) {
    errno = EPERM;
    return -1;
  }
  if (check_range (exp, count, offset, ENOSPC) == -1)
    return -1;
  if (count == 0)
    return 1;
  if (!may_skip_revalidation (exp))
    return 0;

  first = offset / CACHE_BLOCK_SIZE;
  last = (offset + count - 1) / CACHE_BLOCK_SIZE;
  t = now_ms ();
  for (uint64_t idx = first; idx <= last; idx++) {
    uint32_t lo, hi;
    uint8_t touched;
    struct shard *s = shard_of (exp, idx);
    struct block *b;
    bool existed;

    block_span (idx, offset, count, &lo, &hi);
    touched = sectors_touched (lo, hi);
    hold_shard (&held, s);
    b = block_lookup (s, exp, idx);
    existed = b != NULL;
    if ((b == NULL && (b = block_alloc (s, exp, idx)) == NULL)
        || (b->busy & BUSY_READ)
        || (touched & ~sectors_covered (lo, hi) & ~b->valid)) {
      /* Room needs a write-back, a fill is under way, or a partial
       * sector needs a read.
       */
      release_shard (&held);
      return 0;
    }
    memcpy (b->data + lo,
            (const char *) buf + (idx * CACHE_BLOCK_SIZE + lo - offset),
            hi - lo);
    b->valid |= touched;
    block_set_dirty (s, b, touched, t);
    if (existed)
      block_reference (s, b);
    if (idx == last) {          /* done: count the request once */
      EXP_SHARD (exp, s)->write_requests++;
      EXP_SHARD (exp, s)->write_bytes += count;
    }
  }
  release_shard (&held);
  TRACK (exp, offset, count);
  return 1;
}

/* Whether a write with these flags is delayed (DELWRI) at the commit
 * level in force, rather than written back before the reply.
 */
bool
write_is_delayed (unsigned flags)
{
  enum commit_level level = cache.cfg.commit;

  return !(level == COMMIT_HIGH
           || ((flags & CACHE_FUA) && level != COMMIT_NONE));
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

/* The commit level decides what must be done before the reply.
 *
 *   commit=   FUA ("file-system data")    plain ("user data")
 *   high      SYNC: written and durable   SYNC
 *   medium    SYNC                        DELWRI
 *   low       ASYNC: written, not synced  DELWRI
 *   none      DELWRI                      DELWRI
 *
 * A pending error from an earlier failed write-back is returned by the
 * next SYNC or ASYNC write, so it reaches a client that asked for
 * durability.  durable_writes backends (O_SYNC files, memory) need no
 * fdatasync.
 */
int
commit_write (struct cache_export *exp, uint64_t first, uint64_t end,
              unsigned flags, bool need_flush)
{
  enum commit_level level = cache.cfg.commit;
  bool fua = flags & CACHE_FUA;
  bool sync = level == COMMIT_HIGH || (fua && level == COMMIT_MEDIUM);
  bool async = fua && level == COMMIT_LOW;
  int r = 0, err = 0, pending;

  if (!sync && !async) {
    if (cache.cfg.delwri_ms == 0)
      flusher_kick ();
    return 0;
  }
  if (writeback (exp, WB_RANGE, first, end, NULL, NULL, NULL) == -1) {
    r = -1;
    err = errno;
  }
  if (sync && (need_flush || !exp->be.durable_writes) &&
      exp->be.flush (exp->be.handle) == -1 && r == 0) {
    r = -1;
    err = errno;
  }
  pending = take_error (exp);
  if (r == 0 && pending) {
    r = -1;
    err = pending;
  }
  errno = err;
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

int
cache_flush (struct cache_export *exp)
{
  struct timespec t0, t1;
  int r = 0, err = 0, pending;

  clock_gettime (CLOCK_MONOTONIC, &t0);
  STAT_ADD (exp, flushes, 1);
  if (writeback (exp, WB_ALL, 0, exp->nblocks, NULL, NULL, NULL) == -1) {
    r = -1;
    err = errno;
  }
  /* Keep going: what was written must still be made durable. */
  if (!exp->be.durable_writes && !exp->be.readonly &&
      exp->be.flush (exp->be.handle) == -1 && r == 0) {
    r = -1;
    err = errno;
  }
  pending = take_error (exp);
  if (r == 0 && pending) {
    r = -1;
    err = pending;
  }
  clock_gettime (CLOCK_MONOTONIC, &t1);
  STAT_ADD (exp, flush_ns_total,
            (uint64_t) (t1.tv_sec - t0.tv_sec) * 1000000000
            + t1.tv_nsec - t0.tv_nsec);
  errno = err;
  return r;
}
