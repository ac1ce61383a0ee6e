/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: zero, trim and extents.
 *
 * Zeroing or trimming whole blocks is done on the host (fallocate),
 * not through the cache, so the order against cached blocks matters:
 *
 *  1. a fence over the range (fence.c) stops write-back of dirty
 *     blocks inside it, so nothing written before the zero can land
 *     after it;
 *  2. every cached block in the range is dropped, dirty or not,
 *     waiting for blocks under I/O (a write-back already in flight
 *     completes before the host zero starts);
 *  3. the host zeroes (or punches) the range;
 *  4. clean blocks read in meanwhile, possibly with the old contents,
 *     are dropped again; dirty ones hold writes made after the zero
 *     started and stay;
 *  5. the fence comes down and write-back of those may proceed.
 *
 * Partial blocks at either end of a zero are written as zeroes through
 * the cache, like any write; the ends of a trim are left alone, since
 * trim is advisory.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

/* Drop a block (all), or what of it may predate the host zero: a clean
 * block entirely, the clean sectors of a dirty one.
 */
static void
sweep_block (struct shard *s, struct block *b, bool all)
{
  if (all || !b->dirty)
    block_drop (s, b);
  else
    b->valid &= b->dirty;
}

/* Drop cached blocks of exp in [first, end): all of them, or only the
 * clean ones.  Waits for busy blocks.  Walks whichever is shorter: the
 * indexes of the range, or the blocks resident in each shard.
 */
static void
sweep (struct cache_export *exp, uint64_t first, uint64_t end, bool all)
{
  uint64_t resident = 0;

  for (unsigned i = 0; i < cache.nshards; i++)
    resident += cache.shards[i].nresident;

  if (end - first <= resident) {
    for (uint64_t idx = first; idx < end; idx++) {
      struct shard *s = shard_of (exp, idx);
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
      struct block *b;

      while ((b = block_lookup (s, exp, idx)) != NULL && b->busy)
        shard_wait (s);
      if (b)
        sweep_block (s, b, all);
    }
    return;
  }

  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    uint64_t n;
    struct block *b;

  restart:
    n = s->nresident;
    b = s->hand;
    while (n-- > 0 && b) {
      struct block *next = b->cnext;
      if (b->exp == exp && b->index >= first && b->index < end) {
        if (b->busy) {
          shard_wait (s);
          goto restart;
        }
        sweep_block (s, b, all);
      }
      b = s->hand ? next : NULL;
    }
  }
}

/* Zero or trim whole blocks [first, end) on the host, in order with the
 * cache (see the top of the file).
 */
static int
host_range (struct cache_export *exp, uint64_t first, uint64_t end,
            bool trim, bool may_trim, bool fast_only)
{
  struct fence f = { .first = first, .end = end };
  uint64_t offset = first * CACHE_BLOCK_SIZE;
  uint64_t stop = end * CACHE_BLOCK_SIZE;
  int r, err;

  if (stop > exp->be.size)
    stop = exp->be.size;
  fence_up (exp, &f);
  sweep (exp, first, end, true);
  if (trim)
    r = exp->be.trim (exp->be.handle, offset, stop - offset);
  else
    r = exp->be.zero (exp->be.handle, offset, stop - offset, may_trim,
                      fast_only);
  err = errno;
  sweep (exp, first, end, false);
  fence_down (exp, &f);
  if (r == -1 && !(fast_only && (err == ENOTSUP || err == EOPNOTSUPP)))
    log_error ("%s: %s %llu bytes at %llu on the host: %s", exp->name,
               trim ? "trimming" : "zeroing",
               (unsigned long long) (stop - offset),
               (unsigned long long) offset, strerror (err));
  errno = err == EOPNOTSUPP ? ENOTSUP : err;
  return r;
}

/* Write zeroes through the cache (partial blocks). */
static int
zero_through_cache (struct cache_export *exp, uint64_t offset, uint64_t count)
{
  static const char zeroes[CACHE_BLOCK_SIZE];

  while (count > 0) {
    uint64_t n = count < CACHE_BLOCK_SIZE ? count : CACHE_BLOCK_SIZE;
    if (write_range (exp, zeroes, n, offset) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

/* The whole blocks inside [offset, offset+count): [*first, *end).  The
 * last block of an export whose size is not a multiple of the block
 * size counts as whole when the range reaches the end of the export.
 */
static void
inner_blocks (const struct cache_export *exp, uint64_t offset,
              uint64_t count, uint64_t *first, uint64_t *end)
{
  uint64_t stop = offset + count;

  *first = (offset + CACHE_BLOCK_SIZE - 1) / CACHE_BLOCK_SIZE;
  *end = stop == exp->be.size ? exp->nblocks : stop / CACHE_BLOCK_SIZE;
  if (*end < *first)
    *end = *first;
}

static int
check_write (const struct cache_export *exp, uint64_t count, uint64_t offset)
{
  if (exp->be.readonly) {
    errno = EPERM;
    return -1;
  }
  if (offset > exp->be.size || count > exp->be.size - offset) {
    errno = ENOSPC;
    return -1;
  }
  return 0;
}

int
cache_zero (struct cache_export *exp, uint64_t count, uint64_t offset,
            unsigned flags)
{
  uint64_t first, end, head_end, tail_start;
  bool whole;

  if (check_write (exp, count, offset) == -1)
    return -1;
  if (count == 0)
    return 0;
  STAT_ADD (exp, write_requests, 1);
  STAT_ADD (exp, write_bytes, count);
  inner_blocks (exp, offset, count, &first, &end);
  whole = end > first;
  head_end = whole ? first * CACHE_BLOCK_SIZE : offset + count;
  tail_start = whole && end * CACHE_BLOCK_SIZE < offset + count
    ? end * CACHE_BLOCK_SIZE : offset + count;

  /* The host part first: with CACHE_FAST_ZERO it may refuse, and then
   * nothing must have changed.
   */
  if (whole && host_range (exp, first, end, false, flags & CACHE_MAY_TRIM,
                           flags & CACHE_FAST_ZERO) == -1) {
    if (!(flags & CACHE_FAST_ZERO) || errno != ENOTSUP)
      TRACK (exp, offset, count);       /* part of it may have changed */
    return -1;
  }
  if (zero_through_cache (exp, offset, head_end - offset) == -1 ||
      zero_through_cache (exp, tail_start, offset + count - tail_start) == -1) {
    TRACK (exp, offset, count);
    return -1;
  }
  TRACK (exp, offset, count);
  /* fallocate is not covered by O_SYNC: a durable zero needs a flush. */
  return commit_write (exp, offset / CACHE_BLOCK_SIZE,
                       (offset + count - 1) / CACHE_BLOCK_SIZE + 1, flags,
                       whole);
}

int
cache_trim (struct cache_export *exp, uint64_t count, uint64_t offset,
            unsigned flags)
{
  uint64_t first, end;

  if (check_write (exp, count, offset) == -1)
    return -1;
  inner_blocks (exp, offset, count, &first, &end);
  if (end > first && host_range (exp, first, end, true, true, false) == -1) {
    TRACK (exp, offset, count);
    return -1;
  }
  /* A trim changes what reads may return: it counts as a change. */
  TRACK (exp, offset, count);
  return commit_write (exp, first, end, flags, end > first);
}

/* Extents: the host's, with holes split wherever a dirty block (data
 * not yet on the host) lies in them.
 */
struct extent {
  uint64_t offset, length;
  bool hole;
};

DEFINE_VECTOR (extent_list, struct extent);

static int
add_extent (struct extent_list *l, uint64_t offset, uint64_t length,
            bool hole)
{
  if (length == 0)
    return 0;
  if (l->len > 0 && l->ptr[l->len - 1].hole == hole &&
      l->ptr[l->len - 1].offset + l->ptr[l->len - 1].length == offset) {
    l->ptr[l->len - 1].length += length;
    return 0;
  }
  return extent_list_append (l, (struct extent) { offset, length, hole });
}

/* A reply may describe less than was asked (the client asks again
 * from where it ends), and clients mostly use the first extent: walking
 * a fragmented file to the end for every request would cost the square
 * of its fragments.  So the host walk stops after this many extents.
 */
#define MAX_HOST_EXTENTS 64

struct host_walk {
  struct extent_list list;
  bool full;                    /* stopped at MAX_HOST_EXTENTS */
};

static int
collect_host_extent (void *opaque, uint64_t offset, uint64_t length,
                     bool hole)
{
  struct host_walk *w = opaque;

  if (w->list.len >= MAX_HOST_EXTENTS) {
    w->full = true;
    return -1;
  }
  return add_extent (&w->list, offset, length, hole);
}

/* Block indexes, of the dirty blocks in the range. */
DEFINE_VECTOR (index_vector, uint64_t);

static int
compare_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

int
cache_extents (struct cache_export *exp, uint64_t count, uint64_t offset,
               cache_extent_fn fn, void *opaque)
{
  struct host_walk walk = { 0 };
  struct extent_list *host = &walk.list, out = { 0 };
  struct index_vector dirty = { 0 };
  const struct extent *last;
  size_t d = 0;
  uint64_t stop = offset + count;
  int r = -1;

  if (offset > exp->be.size || count > exp->be.size - offset) {
    errno = EINVAL;
    return -1;
  }
  if (count == 0)
    return 0;
  /* Dirty blocks of the range, sorted. */
  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    for (struct block *b = exp->shard[i].dirty.head; b; b = b->dnext) {
      uint64_t bs = b->index * CACHE_BLOCK_SIZE;
      if (bs >= stop || bs + CACHE_BLOCK_SIZE <= offset)
        continue;
      if (index_vector_append (&dirty, b->index) == -1)
        goto out;
    }
  }
  if (dirty.len > 1)
    qsort (dirty.ptr, dirty.len, sizeof *dirty.ptr, compare_u64);

  /* The host's extents only now: a block written back since the dirty
   * list was read is already data on the host, while one written back
   * between a host query and a later look at the dirty list would be
   * in neither view, and read as a hole.
   */
  if (exp->be.extents == NULL) {
    if (add_extent (host, offset, count, false) == -1)
      goto out;
  }
  else if (exp->be.extents (exp->be.handle, offset, count,
                            collect_host_extent, &walk) == -1 && !walk.full)
    goto out;
  if (host->len == 0) {
    errno = EIO;
    goto out;
  }
  /* Describe no further than the host walk went. */
  last = &host->ptr[host->len - 1];
  if (last->offset + last->length < stop)
    stop = last->offset + last->length;

  for (size_t i = 0; i < host->len; i++) {
    uint64_t pos = host->ptr[i].offset;
    uint64_t e_end = host->ptr[i].offset + host->ptr[i].length;

    if (!host->ptr[i].hole) {
      if (add_extent (&out, pos, e_end - pos, false) == -1)
        goto out;
      continue;
    }
    while (d < dirty.len && (dirty.ptr[d] + 1) * CACHE_BLOCK_SIZE <= pos)
      d++;
    while (pos < e_end) {
      uint64_t ds, de;
      if (d >= dirty.len || dirty.ptr[d] * CACHE_BLOCK_SIZE >= e_end) {
        if (add_extent (&out, pos, e_end - pos, true) == -1)
          goto out;
        break;
      }
      ds = dirty.ptr[d] * CACHE_BLOCK_SIZE;
      de = ds + CACHE_BLOCK_SIZE;
      if (ds < pos)
        ds = pos;
      if (de > e_end)
        de = e_end;
      if (add_extent (&out, pos, ds - pos, true) == -1 ||
          add_extent (&out, ds, de - ds, false) == -1)
        goto out;
      pos = de;
      d++;
    }
  }

  r = 0;
  for (size_t i = 0; i < out.len && r == 0; i++)
    r = fn (opaque, out.ptr[i].offset, out.ptr[i].length, out.ptr[i].hole);
 out:
  extent_list_reset (host);
  extent_list_reset (&out);
  index_vector_reset (&dirty);
  return r;
}
