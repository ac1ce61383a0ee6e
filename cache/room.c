/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: making room, when a request finds a shard with no
 * block to spare.
 *
 * A request that needs a block in a full shard calls make_room and
 * retries.  In order: an export at its wipe= share gives up one of its
 * own clean blocks; otherwise a clean block of another shard moves
 * over (block.c); otherwise the oldest dirty blocks of the shard are
 * written back (flush.c), the export's own or another's; a shard left
 * with no blocks at all has some written back elsewhere for the retry
 * to steal; and if everything is busy, it waits for a change.  No lock
 * is held across the write-back: another export being written back is
 * held by a reference (exports.c), which its cache_export_close waits
 * for.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cleanup.h"
#include "internal.h"

/* How make_room goes on, decided under the shard lock. */
enum room_plan {
  ROOM_WRITE_BACK,              /* write back blocks of the target */
  ROOM_ELSEWHERE,               /* an empty shard: write back anywhere */
  ROOM_RETRY,                   /* busy blocks waited for, or none left */
};

/* Blocks are busy or fenced: give their owners a moment. */
static void
wait_a_moment (struct shard *s)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_nsec += 10 * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
  pthread_cond_timedwait (&s->cond, &s->lock, &ts);
}

/* Choose what make_room writes back: exp's own blocks, or those of
 * another export with dirty blocks in shard s (*target, with a
 * reference taken).  Waits for a busy block if there is nothing to
 * write back.  The locks go before any write-back.
 */
static enum room_plan
plan_room (struct shard *s, struct cache_export *exp, bool at_share,
           struct cache_export **target)
{
  unsigned sn = shard_number (s);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
  bool any_busy = false;
  struct block *b;

  if (exp->shard[sn].dirty.count > 0 || at_share) {
    *target = exp;
    return ROOM_WRITE_BACK;
  }
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);

    for (struct cache_export *e = cache.exports; e; e = e->next)
      if (e->shard[sn].dirty.count > 0 && export_get_locked (e)) {
        *target = e;
        return ROOM_WRITE_BACK;
      }
  }
  b = s->hand;
  for (uint64_t i = 0; b && i < s->nresident; i++, b = b->cnext)
    any_busy |= b->busy != 0;
  if (!any_busy && s->nresident == 0 && s->free == NULL &&
      __atomic_load_n (&cache.arena_full, __ATOMIC_RELAXED))
    return ROOM_ELSEWHERE;
  /* Blocks are busy (or were freed meanwhile): wait for a change. */
  if (any_busy)
    shard_wait (s);
  return ROOM_RETRY;
}

/* An empty shard: its blocks went to other shards, where they are all
 * dirty or busy (steal_block found no clean one).  Write some back
 * there, for the retry to steal.
 */
static int
room_elsewhere (struct shard *s)
{
  uint64_t written = 0;
  int err = 0;

  for (struct cache_export *e = export_next (NULL); e; e = export_next (e)) {
    uint64_t n = 0;

    if (writeback (e, WB_ROOM, 0, 0, NULL, &n, NULL) == -1 && err == 0)
      err = errno;
    written += n;
    if (written > 0) {
      export_put (e);
      break;
    }
  }
  if (written == 0 && err) {
    errno = err;
    return -1;
  }
  if (written == 0)
    wait_a_moment (s);          /* all busy or fenced elsewhere */
  return 0;
}

/* A request found shard s full of dirty or busy blocks: write some back
 * (or wait for a busy one), so that a retry can find a clean block.
 * Holds no lock across the write-back: another export written back is
 * held by a reference, which its cache_export_close waits for.
 */
int
make_room (struct shard *s, struct cache_export *exp)
{
  struct cache_export *target = NULL;
  uint64_t written = 0;
  bool at_share;
  int r, err;

  /* At its wipe= share, the export gives up one of its own clean
   * blocks, wherever it is.
   */
  at_share = export_at_share (exp);
  if (at_share && evict_own (exp))
    return 0;
  /* Otherwise a clean block of another shard moves over. */
  if (!at_share && steal_block (s))
    return 0;

  switch (plan_room (s, exp, at_share, &target)) {
  case ROOM_RETRY:
    return 0;
  case ROOM_ELSEWHERE:
    return room_elsewhere (s);
  case ROOM_WRITE_BACK:
    break;
  }
  r = writeback (target, WB_ROOM, 0, 0, at_share ? NULL : s, &written,
                 NULL);
  err = errno;
  if (target != exp)
    export_put (target);
  if (r == -1 && written == 0) {
    errno = err;
    return -1;
  }
  if (written == 0)
    wait_a_moment (s);          /* all fenced or busy */
  return 0;
}
