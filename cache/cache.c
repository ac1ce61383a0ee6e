/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the cache API: set-up, exports, reads and writes.
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
#include <sys/uio.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

struct cache cache;

static uint64_t
monotonic_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
cache_set_clock (cache_clock_fn fn)
{
  cache.now_ms = fn ? fn : monotonic_ms;
}

static uint64_t
round_down_pow2 (uint64_t v)
{
  uint64_t p = 1;
  while (p * 2 <= v)
    p *= 2;
  return p;
}

int
cache_init (const struct blk_config *blk, bool start_flusher)
{
  uint64_t per_block = CACHE_BLOCK_SIZE + sizeof (struct block);
  uint64_t hash_bytes, budget;

  if (cache.now_ms == NULL)
    cache.now_ms = monotonic_ms;
  cache.cfg = *blk;
  cache.cfg.verbose_flags = NULL;
  cache.next_due_ms = UINT64_MAX;
  pthread_mutex_init (&cache.lock, NULL);
  pthread_mutex_init (&cache.bg_lock, NULL);
  {
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&cache.bg_cond, &attr);
    pthread_condattr_destroy (&attr);
  }

  /* Everything counts against cache=: the hash tables first, then as
   * many blocks (data and metadata) as fit in the rest.
   */
  hash_bytes = blk->hash * sizeof (struct block *);
  if (hash_bytes + 4 * per_block > blk->cache) {
    hash_bytes = (blk->cache / 8) / sizeof (struct block *) * sizeof (struct block *);
  }
  budget = blk->cache - hash_bytes - sizeof cache.shards;
  cache.max_blocks = budget / per_block;
  cache.max_pinned = cache.max_blocks / 4;
  if (cache.max_blocks < 4) {
    log_error ("cache=%llu: too small to hold any blocks",
               (unsigned long long) blk->cache);
    errno = EINVAL;
    return -1;
  }

  /* Enough shards to spread contention, few enough that each holds a
   * useful number of blocks.
   */
  cache.nshards = round_down_pow2 (cache.max_blocks / 64);
  if (cache.nshards > MAX_SHARDS)
    cache.nshards = MAX_SHARDS;
  if (cache.nshards == 0)
    cache.nshards = 1;

  cache.dirty_high = cache.max_blocks / cache.nshards * 3 / 4;
  cache.dirty_low = cache.max_blocks / cache.nshards / 2;
  if (cache.dirty_high < 2)
    cache.dirty_high = 2;

  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    uint64_t nb = hash_bytes / sizeof (struct block *) / cache.nshards;

    memset (s, 0, sizeof *s);
    pthread_mutex_init (&s->lock, NULL);
    pthread_cond_init (&s->cond, NULL);
    s->nbuckets = round_down_pow2 (nb ? nb : 1);
    s->buckets = calloc (s->nbuckets, sizeof *s->buckets);
    if (s->buckets == NULL) {
      log_error ("cache: allocating the hash table: %m");
      return -1;
    }
    cache.overhead_bytes += s->nbuckets * sizeof *s->buckets;
  }
  cache.overhead_bytes += sizeof cache.shards;

  if (arena_init () == -1)
    return -1;
  if (start_flusher && cache_start_flusher () == -1)
    return -1;
  log_debug ("cache: %llu bytes: %llu blocks of %d in %u shards, "
             "commit=%d delwri=%llums",
             (unsigned long long) blk->cache,
             (unsigned long long) cache.max_blocks, CACHE_BLOCK_SIZE,
             cache.nshards, blk->commit,
             (unsigned long long) blk->delwri_ms);
  return 0;
}

int
cache_start_flusher (void)
{
  return flusher_start ();
}

int
cache_shutdown (void)
{
  int r = 0;

  /* Exports should be closed already; write back anything left. */
  while (cache.exports) {
    if (cache_export_close (cache.exports) == -1 && r == 0)
      r = -1;
  }
  flusher_stop ();
  prefetcher_stop ();
  for (unsigned i = 0; i < cache.nshards; i++) {
    free (cache.shards[i].buckets);
    cache.shards[i].buckets = NULL;
  }
  arena_free ();
  cache.overhead_bytes = 0;
  cache.nshards = 0;
  return r;
}

struct cache_export *
cache_export_open_backend (const struct cache_backend *be)
{
  struct cache_export *exp = calloc (1, sizeof *exp);
  uint64_t wipe_blocks;
  uint64_t tail;

  if (exp == NULL)
    return NULL;
  exp->be = *be;
  exp->name = strdup (be->name ? be->name : "export");
  if (posix_memalign ((void **) &exp->shard, 64,
                      cache.nshards * sizeof *exp->shard) != 0)
    exp->shard = NULL;
  if (exp->name == NULL || exp->shard == NULL) {
    free (exp->name);
    free (exp->shard);
    free (exp);
    return NULL;
  }
  memset (exp->shard, 0, cache.nshards * sizeof *exp->shard);
  exp->nblocks = (be->size + CACHE_BLOCK_SIZE - 1) / CACHE_BLOCK_SIZE;
  tail = be->size % CACHE_BLOCK_SIZE;
  exp->last_mask = tail ? (uint8_t) ((1u << (tail / SECTOR_SIZE)) - 1)
    : FULL_MASK;

  /* wipe= is a share of the blocks that fit in the cache. */
  if (cache.cfg.wipe >= cache.cfg.cache)
    exp->wipe_blocks = UINT64_MAX;
  else {
    wipe_blocks = (unsigned __int128) cache.max_blocks * cache.cfg.wipe
      / cache.cfg.cache;
    exp->wipe_blocks = wipe_blocks > 0 ? wipe_blocks : 1;
  }

  pthread_mutex_init (&exp->lock, NULL);
  pthread_cond_init (&exp->cond, NULL);
  exp->last_access_ms = now_ms ();

  /* The flusher walks the list holding the exports lock for reading. */
  exports_write_lock ();
  lock_or_abort (&cache.lock);
  exp->id = ++cache.next_id;
  exp->next = cache.exports;
  cache.exports = exp;
  unlock_or_abort (&cache.lock);
  exports_write_unlock ();
  return exp;
}

static void
unlink_export (struct cache_export *exp)
{
  exports_write_lock ();
  lock_or_abort (&cache.lock);
  for (struct cache_export **p = &cache.exports; *p; p = &(*p)->next)
    if (*p == exp) {
      *p = exp->next;
      break;
    }
  unlock_or_abort (&cache.lock);
  exports_write_unlock ();
}

/* Drop every block of exp (nothing may be busy or dirty any more). */
static void
drop_all_blocks (struct cache_export *exp)
{
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
      if (b->exp == exp) {
        if (b->busy) {
          shard_wait (s);
          goto restart;
        }
        block_drop (s, b);
      }
      b = s->hand ? next : NULL;
    }
  }
}

int
cache_export_close (struct cache_export *exp)
{
  int r;

  prefetch_forget (exp);
  r = cache_flush (exp);
  if (r == -1)
    log_error ("%s: writing back at close: %m; data not written back is "
               "lost", exp->name);
  track_close (exp, r == 0);
  unlink_export (exp);
  drop_all_blocks (exp);
  if (exp->be.close)
    exp->be.close (exp->be.handle);
  free (exp->name);
  free (exp->shard);
  free (exp);
  return r;
}

const char *
cache_export_name (const struct cache_export *exp)
{
  return exp->name;
}

uint64_t
cache_export_size (const struct cache_export *exp)
{
  return exp->be.size;
}

uint32_t
cache_export_blksz (const struct cache_export *exp)
{
  return exp->be.blksz;
}

uint32_t
cache_export_preferred (const struct cache_export *exp)
{
  uint32_t p = exp->be.blksz;

  if (exp->be.preferred > p)
    p = exp->be.preferred;
  return p > CACHE_BLOCK_SIZE ? p : CACHE_BLOCK_SIZE;
}

bool
cache_export_readonly (const struct cache_export *exp)
{
  return exp->be.readonly;
}

bool
cache_export_can_fua (const struct cache_export *exp)
{
  return cache.cfg.commit != COMMIT_NONE;
}

/* Drop the clean blocks of exp: the host changed behind our back. */
static void
drop_clean_blocks (struct cache_export *exp)
{
  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    uint64_t n = s->nresident;
    struct block *b = s->hand;

    while (n-- > 0 && b) {
      struct block *next = b->cnext;
      if (b->exp == exp && !b->dirty && !b->busy)
        block_drop (s, b);
      b = s->hand ? next : NULL;
    }
  }
}

/* rmvto=: after that long idle, check the host file before using the
 * cache again.
 */
static void
revalidate_if_idle (struct cache_export *exp)
{
  uint64_t t, last;

  if (!cache.cfg.rmvto_enabled || !exp->be.can_revalidate ||
      exp->be.revalidate == NULL)
    return;
  /* Lock-free: this is on every request.  Of several threads arriving
   * after the idle period, the one that swaps the time in checks.
   */
  t = now_ms ();
  last = __atomic_load_n (&exp->last_access_ms, __ATOMIC_RELAXED);
  if (last == t ||
      !__atomic_compare_exchange_n (&exp->last_access_ms, &last, t, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    return;
  if (t - last > cache.cfg.rmvto_ms &&
      exp->be.revalidate (exp->be.handle) == 1) {
    log_warning ("%s: the host file changed behind our back: dropping its "
                 "cached clean blocks%s", exp->name,
                 exp->track ? "; every block counts as changed" : "");
    drop_clean_blocks (exp);
    /* Changed-block tracking cannot know what the other writer did. */
    TRACK (exp, 0, exp->be.size);
    STAT_ADD (exp, revalidations_changed, 1);
  }
}

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

/* Whether a request may be served without a look at the host: not if
 * rmvto= idleness means revalidating first (which may stat).  If it
 * may, this is an access (at most one store per millisecond).
 */
bool
may_skip_revalidation (struct cache_export *exp)
{
  uint64_t t, last;

  if (!cache.cfg.rmvto_enabled || !exp->be.can_revalidate)
    return true;
  t = now_ms ();
  last = __atomic_load_n (&exp->last_access_ms, __ATOMIC_RELAXED);
  if (t - last > cache.cfg.rmvto_ms)
    return false;
  if (t != last)
    __atomic_store_n (&exp->last_access_ms, t, __ATOMIC_RELAXED);
  return true;
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

void
cache_export_stats (const struct cache_export *exp, struct cache_stats *st)
{
  const struct export_counters *c = &exp->stats;

#define GET(f) __atomic_load_n (&c->f, __ATOMIC_RELAXED)
  memset (st, 0, sizeof *st);
  st->write_requests = GET (write_requests);
  st->write_bytes = GET (write_bytes);
  st->writebacks = GET (writebacks);
  st->writeback_bytes = GET (writeback_bytes);
  st->writeback_errors = GET (writeback_errors);
  st->flushes = GET (flushes);
  st->flush_ns = GET (flush_ns_total);
  st->revalidations_changed = GET (revalidations_changed);
#undef GET
  st->tracked_dirty_bytes =
    track_dirty_bytes_live ((struct cache_export *) exp);
  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    const struct export_shard *es = &exp->shard[i];
    st->resident_blocks += es->resident;
    st->dirty_blocks += es->dirty.count;
    st->hits += es->hits;
    st->misses += es->misses;
    st->readahead_blocks += es->readahead_blocks;
    st->readahead_hits += es->readahead_hits;
    st->read_requests += es->read_requests;
    st->read_bytes += es->read_bytes;
    st->write_requests += es->write_requests;
    st->write_bytes += es->write_bytes;
  }
}

void
cache_memory (uint64_t *in_use, uint64_t *limit)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);
  *in_use = cache.overhead_bytes
    + cache.arena_blocks * (CACHE_BLOCK_SIZE + sizeof (struct block));
  *limit = cache.cfg.cache;
}
