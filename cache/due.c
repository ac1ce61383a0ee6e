/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: when dirty blocks are due, and waking the flusher.
 *
 * A delayed block must reach the host by min(last dirtied + delwri=,
 * first dirtied + postpone=).  The flusher thread (flusher.c) sleeps
 * until the earliest deadline it knows of, cache.next_due_ms; whoever
 * gives a block an earlier one lowers it here and wakes the flusher.
 * A kick asks for a round now (delwri=0 writes, a shard over
 * dirty_high, cache_flush_soon).  Only cache.bg_lock is taken here, so
 * these may be called with any other lock held.
 */
#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cleanup.h"
#include "internal.h"

/* When the flusher must write the block back: delwri= after the last
 * write into it or postpone= after it became dirty, whichever comes
 * first; after a failed write-back, not before the retry time.
 */
uint64_t
due_time (const struct block *b)
{
  uint64_t by_delwri = b->last_dirty_ms + cache.cfg.delwri_ms;
  uint64_t by_postpone = b->first_dirty_ms + cache.cfg.postpone_ms;
  uint64_t deadline = by_delwri < by_postpone ? by_delwri : by_postpone;

  return deadline > b->retry_ms ? deadline : b->retry_ms;
}

/* Lower cache.next_due_ms to due; true if it was later. */
bool
lower_next_due (uint64_t due)
{
  uint64_t cur = __atomic_load_n (&cache.next_due_ms, __ATOMIC_SEQ_CST);

  while (due < cur)
    if (__atomic_compare_exchange_n (&cache.next_due_ms, &cur, due, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
      return true;
  return false;
}

/* The flusher sleeps until next_due_ms: tell it of an earlier one.
 * It rarely happens (a first dirty block after a quiet spell): a block
 * made dirty later has a later deadline than those dirty already.
 */
static void
reschedule (uint64_t due)
{
  if (lower_next_due (due)) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.bg_lock);
    pthread_cond_broadcast (&cache.bg_cond);
  }
}

void
flusher_note_dirty (uint64_t t)
{
  uint64_t wait = cache.cfg.delwri_ms < cache.cfg.postpone_ms
    ? cache.cfg.delwri_ms : cache.cfg.postpone_ms;

  reschedule (t + wait);
}

void
flusher_note_still_dirty (const struct block *b)
{
  reschedule (due_time (b));
}

uint64_t
cache_next_due (void)
{
  return __atomic_load_n (&cache.next_due_ms, __ATOMIC_SEQ_CST);
}

void
flusher_kick (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.bg_lock);
  cache.flush_kick = true;
  pthread_cond_broadcast (&cache.bg_cond);
}

void
flusher_kick_pressure (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.bg_lock);
  cache.flush_kick = cache.pressure_kick = true;
  pthread_cond_broadcast (&cache.bg_cond);
}
