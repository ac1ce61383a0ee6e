/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the cache's life: set-up and shutdown, exports opened
 * and closed, and what they report.
 *
 * cache_init sizes the one cache of the process from cache= (hash
 * tables, shards, the block arena) and starts the flusher;
 * cache_shutdown closes what is left and frees it.  An export joins
 * the list of exports when opened, and at close is written back,
 * unlinked, and has its blocks dropped.  The reads and writes are in
 * io.c, rmvto= revalidation in revalidate.c.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* The result of a pthread_*_init: 0, or -1 with errno set, logged. */
static int
init_result (int err, const char *what)
{
  if (err == 0)
    return 0;
  errno = err;
  log_error ("cache: initialising %s: %m", what);
  return -1;
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
  if (init_result (pthread_mutex_init (&cache.lock, NULL),
                   "the cache lock") == -1 ||
      init_result (pthread_mutex_init (&cache.bg_lock, NULL),
                   "the flusher lock") == -1)
    return -1;
  {
    pthread_condattr_t attr;
    int r;

    if (init_result (pthread_condattr_init (&attr),
                     "the flusher condition") == -1)
      return -1;
    r = init_result (pthread_condattr_setclock (&attr, CLOCK_MONOTONIC),
                     "the flusher condition's clock");
    if (r == 0)
      r = init_result (pthread_cond_init (&cache.bg_cond, &attr),
                       "the flusher condition");
    pthread_condattr_destroy (&attr);
    if (r == -1)
      return -1;
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
    if (init_result (pthread_mutex_init (&s->lock, NULL),
                     "a shard lock") == -1 ||
        init_result (pthread_cond_init (&s->cond, NULL),
                     "a shard condition") == -1)
      return -1;
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
  if (exp->name == NULL || exp->shard == NULL)
    goto fail;
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

  if (init_result (pthread_mutex_init (&exp->lock, NULL),
                   "an export lock") == -1)
    goto fail;
  if (init_result (pthread_cond_init (&exp->cond, NULL),
                   "an export condition") == -1) {
    pthread_mutex_destroy (&exp->lock);
    goto fail;
  }
  exp->last_access_ms = now_ms ();

  exports_link (exp);
  return exp;

 fail:
  free (exp->name);
  free (exp->shard);
  free (exp);
  return NULL;
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
  exports_unlink (exp);
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
