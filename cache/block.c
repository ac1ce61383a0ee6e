/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: cache blocks, shards, memory and replacement.
 *
 * Memory: blocks are allocated from the system in chunks, on demand,
 * until the number of blocks that fit in cache= (data and metadata
 * both counted) is reached; alloc= chunks are allocated at start-up.
 * Allocated blocks are never returned before shutdown: a block that is
 * dropped goes on its shard's free list.
 *
 * Replacement is CLOCK with protection, as io-blk's protect= option
 * describes it.  A block read once (a streaming read, a read-ahead
 * block on its first use) has no credit and is the first to go when
 * the hand reaches it.  A block referenced again gets 1 + protect
 * credits: the hand must pass it that many times without a new
 * reference before it can be evicted, so a hot set survives a long
 * streaming read.  Dirty and busy blocks are skipped: they are made
 * clean by write-back first (flush.c, make_room).  Under wipe= an
 * export that already holds its share of a shard can only replace its
 * own blocks there.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#define CHUNK_BLOCKS 256        /* 1 MiB of data per system allocation */
/* A chunk is mapped directly, its data first, then its struct blocks:
 * from malloc, each would cost a page more (0.4% of cache=) and sit in
 * an arena.  A last, smaller chunk maps as much but touches only the
 * pages it uses.
 */
#define CHUNK_BYTES \
  ((size_t) CHUNK_BLOCKS * (CACHE_BLOCK_SIZE + sizeof (struct block)))

static struct block *clock_victim (struct shard *s, struct cache_export *exp);

/* Blocks allocated from the system but not yet given to a shard
 * (cache.lock).
 */
static struct block *pool;

static uint64_t
mix (uint64_t a, uint64_t b)
{
  uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ b * 0xC2B2AE3D27D4EB4FULL;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 32);
}

struct shard *
shard_of (const struct cache_export *exp, uint64_t index)
{
  return &cache.shards[mix (exp->id, index >> GROUP_SHIFT)
                       & (cache.nshards - 1)];
}

unsigned
shard_number (const struct shard *s)
{
  return s - cache.shards;
}

static struct block **
bucket (struct shard *s, const struct cache_export *exp, uint64_t index)
{
  uint64_t group = mix (index >> GROUP_SHIFT, exp->id + 1);
  uint64_t within = index & ((1u << GROUP_SHIFT) - 1);

  return &s->buckets[((group << GROUP_SHIFT) | within) & (s->nbuckets - 1)];
}

struct block *
block_lookup (struct shard *s, struct cache_export *exp, uint64_t index)
{
  for (struct block *b = *bucket (s, exp, index); b; b = b->hnext)
    if (b->index == index && b->exp == exp)
      return b;
  return NULL;
}

uint8_t
sectors_touched (uint32_t lo, uint32_t hi)
{
  unsigned first = lo / SECTOR_SIZE, last = (hi - 1) / SECTOR_SIZE;
  return (uint8_t) (((1u << (last + 1)) - 1) & ~((1u << first) - 1));
}

uint8_t
sectors_covered (uint32_t lo, uint32_t hi)
{
  unsigned first = (lo + SECTOR_SIZE - 1) / SECTOR_SIZE;
  unsigned end = hi / SECTOR_SIZE;
  if (end <= first)
    return 0;
  return (uint8_t) (((1u << end) - 1) & ~((1u << first) - 1));
}

uint8_t
block_range_mask (const struct cache_export *exp, uint64_t index)
{
  return index == exp->nblocks - 1 ? exp->last_mask : FULL_MASK;
}

void
shard_wait (struct shard *s)
{
  pthread_cond_wait (&s->cond, &s->lock);
}

void
shard_wake (struct shard *s)
{
  pthread_cond_broadcast (&s->cond);
}

/* Allocate one chunk into the pool (cache.lock held).  n blocks. */
static int
grow_pool (uint64_t n)
{
  struct block *blocks;
  char *data;

  /* Room to record the chunk first: none is mapped and then lost. */
  if (chunk_vector_reserve (&cache.chunks, 1) == -1)
    return -1;
  data = mmap (NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED)
    return -1;
  cache.chunks.ptr[cache.chunks.len++] = data;
  blocks = (struct block *) (data + (size_t) CHUNK_BLOCKS * CACHE_BLOCK_SIZE);
  /* Pushed last first, so blocks taken one after another are
   * neighbours in memory (a sequential read becomes few iovecs).
   */
  for (uint64_t i = n; i-- > 0; ) {
    blocks[i].data = data + i * CACHE_BLOCK_SIZE;
    blocks[i].hnext = pool;
    pool = &blocks[i];
  }
  cache.arena_blocks += n;
  return 0;
}

/* A never-used block, while the cache is below cache=. */
static struct block *
arena_take (void)
{
  struct block *b;

  if (__atomic_load_n (&cache.arena_full, __ATOMIC_RELAXED))
    return NULL;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);
  if (pool == NULL) {
    uint64_t left = cache.max_blocks - cache.arena_blocks;
    if (left == 0) {
      __atomic_store_n (&cache.arena_full, true, __ATOMIC_RELAXED);
      return NULL;
    }
    if (grow_pool (left < CHUNK_BLOCKS ? left : CHUNK_BLOCKS) == -1) {
      log_warning ("cache: cannot allocate memory: %m; working with %llu "
                   "blocks", (unsigned long long) cache.arena_blocks);
      return NULL;
    }
  }
  b = pool;
  pool = b->hnext;
  return b;
}

int
arena_init (void)
{
  uint64_t want = cache.cfg.alloc / (CACHE_BLOCK_SIZE + sizeof (struct block));

  if (want > cache.max_blocks)
    want = cache.max_blocks;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);
  while (cache.arena_blocks < want) {
    uint64_t n = want - cache.arena_blocks;
    if (grow_pool (n < CHUNK_BLOCKS ? n : CHUNK_BLOCKS) == -1) {
      log_error ("cache: alloc=: cannot allocate %llu bytes: %m",
                 (unsigned long long) cache.cfg.alloc);
      return -1;
    }
  }
  return 0;
}

void
arena_free (void)
{
  for (size_t i = 0; i < cache.chunks.len; i++)
    munmap (cache.chunks.ptr[i], CHUNK_BYTES);
  chunk_vector_reset (&cache.chunks);
  cache.arena_blocks = 0;
  cache.arena_full = false;
  pool = NULL;
}

static void
ring_insert (struct shard *s, struct block *b)
{
  if (s->hand == NULL) {
    b->cnext = b->cprev = b;
    s->hand = b;
    return;
  }
  /* Just behind the hand: the last block it will reach. */
  b->cnext = s->hand;
  b->cprev = s->hand->cprev;
  b->cprev->cnext = b;
  s->hand->cprev = b;
}

static void
ring_remove (struct shard *s, struct block *b)
{
  if (b->cnext == b)
    s->hand = NULL;
  else {
    if (s->hand == b)
      s->hand = b->cnext;
    b->cprev->cnext = b->cnext;
    b->cnext->cprev = b->cprev;
  }
  b->cnext = b->cprev = NULL;
}

static void
hash_remove (struct shard *s, struct block *b)
{
  struct block **p = bucket (s, b->exp, b->index);

  while (*p != b)
    p = &(*p)->hnext;
  *p = b->hnext;
  b->hnext = NULL;
}

static void
dirty_unlink (struct shard *s, struct block *b)
{
  struct dirty_list *l = &b->exp->shard[shard_number (s)].dirty;

  if (b->dprev)
    b->dprev->dnext = b->dnext;
  else
    l->head = b->dnext;
  if (b->dnext)
    b->dnext->dprev = b->dprev;
  else
    l->tail = b->dprev;
  b->dprev = b->dnext = NULL;
  l->count--;
  s->ndirty--;
}

void
block_set_dirty (struct shard *s, struct block *b, uint8_t mask, uint64_t t)
{
  if (b->dirty == 0) {
    struct dirty_list *l = &b->exp->shard[shard_number (s)].dirty;
    b->first_dirty_ms = t;
    b->retry_ms = 0;
    b->dprev = l->tail;
    b->dnext = NULL;
    if (l->tail)
      l->tail->dnext = b;
    else
      l->head = b;
    l->tail = b;
    l->count++;
    if (++s->ndirty == cache.dirty_high)
      flusher_kick_pressure ();
    flusher_note_dirty (t);
  }
  b->dirty |= mask;
  b->last_dirty_ms = t;
  b->gen++;
}

void
block_set_clean (struct shard *s, struct block *b)
{
  if (b->dirty) {
    dirty_unlink (s, b);
    b->dirty = 0;
  }
}

void
block_drop (struct shard *s, struct block *b)
{
  block_set_clean (s, b);
  hash_remove (s, b);
  ring_remove (s, b);
  b->exp->shard[shard_number (s)].resident--;
  __atomic_fetch_sub (&b->exp->resident_total, 1, __ATOMIC_RELAXED);
  s->nresident--;
  b->exp = NULL;
  b->valid = 0;
  /* A zero-copy reader still sends from its memory: the last one
   * frees it (cache_unpin).  Sequentially consistent, against the
   * unpin: of the two, at least one sees the other.
   */
  b->home = shard_number (s);
  __atomic_store_n (&b->orphan, true, __ATOMIC_SEQ_CST);
  if (__atomic_load_n (&b->pins, __ATOMIC_SEQ_CST) != 0)
    return;
  __atomic_store_n (&b->orphan, false, __ATOMIC_RELAXED);
  b->hnext = s->free;
  s->free = b;
}

void
cache_unpin (struct cache_pin *const *pins, size_t npins)
{
  for (size_t i = 0; i < npins; i++) {
    struct block *b = (struct block *) pins[i];

    if (__atomic_sub_fetch (&b->pins, 1, __ATOMIC_SEQ_CST) == 0
        && __atomic_load_n (&b->orphan, __ATOMIC_SEQ_CST)) {
      struct shard *s = &cache.shards[b->home];
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);

      /* Whoever clears orphan under the lock frees it, once. */
      if (__atomic_load_n (&b->orphan, __ATOMIC_RELAXED)
          && __atomic_load_n (&b->pins, __ATOMIC_RELAXED) == 0) {
        __atomic_store_n (&b->orphan, false, __ATOMIC_RELAXED);
        b->hnext = s->free;
        s->free = b;
      }
    }
  }
  __atomic_sub_fetch (&cache.pinned, npins, __ATOMIC_RELAXED);
}

void
block_reference (struct shard *s, struct block *b)
{
  if (b->prefetched) {
    b->prefetched = false;      /* its first real use */
    EXP_SHARD (b->exp, s)->readahead_hits++;
  }
  else
    b->credits = 1 + cache.cfg.protect;
}

/* Sweep the hand for a clean, idle block without credit (of exp only,
 * if exp is set).  The hand takes a credit from each block it passes.
 */
static struct block *
clock_victim (struct shard *s, struct cache_export *exp)
{
  uint64_t steps = s->nresident * (cache.cfg.protect + 3);

  /* Every block dirty: nothing to find, and a full sweep of a large
   * shard on every allocation is what a write-heavy working set larger
   * than the cache would pay otherwise.
   */
  if (s->ndirty >= s->nresident)
    return NULL;
  while (s->hand && steps-- > 0) {
    struct block *b = s->hand;
    s->hand = b->cnext;
    if (b->busy || b->dirty || (exp && b->exp != exp)
        || __atomic_load_n (&b->pins, __ATOMIC_RELAXED))
      continue;
    if (b->credits > 0) {
      b->credits--;
      continue;
    }
    return b;
  }
  return NULL;
}

bool
export_at_share (const struct cache_export *exp)
{
  return __atomic_load_n (&exp->resident_total, __ATOMIC_RELAXED)
    >= exp->wipe_blocks;
}

bool
evict_own (struct cache_export *exp)
{
  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    struct block *b;

    if (exp->shard[i].resident == 0)
      continue;
    b = clock_victim (s, exp);
    if (b) {
      block_drop (s, b);
      return true;
    }
  }
  return false;
}

bool
steal_block (struct shard *s)
{
  static unsigned next;         /* atomic: spreads the victims */
  unsigned start = __atomic_fetch_add (&next, 1, __ATOMIC_RELAXED);

  for (unsigned k = 0; k < cache.nshards; k++) {
    struct shard *t = &cache.shards[(start + k) & (cache.nshards - 1)];
    struct block *b;

    if (t == s)
      continue;
    lock_or_abort (&t->lock);
    b = clock_victim (t, NULL);
    if (b) {
      block_drop (t, b);
      t->free = b->hnext;       /* off t's free list... */
    }
    unlock_or_abort (&t->lock);
    if (b) {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
      b->hnext = s->free;       /* ...onto s's */
      s->free = b;
      return true;
    }
  }
  return false;
}

struct block *
block_alloc (struct shard *s, struct cache_export *exp, uint64_t index)
{
  unsigned sn = shard_number (s);
  bool at_share = export_at_share (exp);
  struct block *b = NULL;

  if (!at_share) {
    if (s->free) {
      b = s->free;
      s->free = b->hnext;
    }
    else
      b = arena_take ();
  }
  if (b == NULL) {
    b = clock_victim (s, at_share ? exp : NULL);
    if (b == NULL)
      return NULL;
    block_drop (s, b);
    s->free = b->hnext;         /* take it straight back off the free list */
  }

  b->exp = exp;
  b->index = index;
  b->valid = b->dirty = b->busy = b->credits = 0;
  b->prefetched = false;
  b->gen = 0;
  b->dprev = b->dnext = NULL;
  b->hnext = *bucket (s, exp, index);
  *bucket (s, exp, index) = b;
  ring_insert (s, b);
  exp->shard[sn].resident++;
  __atomic_fetch_add (&exp->resident_total, 1, __ATOMIC_RELAXED);
  s->nresident++;
  return b;
}
