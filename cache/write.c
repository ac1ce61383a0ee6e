/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: writing into the cache, and what the commit level then
 * requires.
 *
 * Writes go into the blocks (reading a sector first only when a write
 * covers part of a sector that holds nothing yet) and mark them dirty;
 * whether they are also written back before the call returns is the
 * commit level's decision, made in commit_write below, where the rules
 * of cache.h are applied.  cache_write (io.c), the asynchronous path
 * (async.c) and the partial blocks of a zero (zero.c) write through
 * here.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"

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
