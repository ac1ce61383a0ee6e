/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the flusher thread.
 *
 * One background thread writes back what nobody waits for: it sleeps
 * until the earliest deadline (cache_next_due, see due.c), at most
 * flusher_interval_ms, or until kicked; then it writes back the blocks
 * past their deadline in every export (cache_writeback_due), the
 * oldest dirty blocks of shards over dirty_high
 * (cache_writeback_pressure), and flushes the exports asked for by
 * cache_flush_soon.  Tests run the same rounds by hand.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

int
cache_writeback_due (void)
{
  uint64_t total = 0, next_due = UINT64_MAX;
  int r = 0;

  /* Blocks dirtied from now on lower next_due themselves
   * (flusher_note_dirty); the walk below finds the others.
   */
  __atomic_store_n (&cache.next_due_ms, UINT64_MAX, __ATOMIC_SEQ_CST);
  for (struct cache_export *exp = export_next (NULL); exp;
       exp = export_next (exp)) {
    uint64_t n = 0;
    if (writeback (exp, WB_DUE, 0, 0, NULL, &n, &next_due) == -1)
      r = -1;
    total += n;
  }
  lower_next_due (next_due);
  return r == -1 ? -1 : (int) (total > INT32_MAX ? INT32_MAX : total);
}

void
cache_flush_soon (struct cache_export *exp)
{
  __atomic_store_n (&exp->flush_soon, true, __ATOMIC_SEQ_CST);
  flusher_kick ();
}

/* The flusher's part of cache_flush_soon. */
static void
flush_requested (void)
{
  for (struct cache_export *exp = export_next (NULL); exp;
       exp = export_next (exp))
    if (__atomic_exchange_n (&exp->flush_soon, false, __ATOMIC_SEQ_CST) &&
        cache_flush (exp) == -1)
      log_error ("%s: writing back after a client disconnected: %m",
                 exp->name);
}

/* The longest the flusher sleeps between rounds: it wakes for the
 * earliest deadline (cache_next_due) as well; these rounds only catch
 * what nothing announced.
 */
static uint64_t
flusher_interval_ms (void)
{
  uint64_t t = cache.cfg.delwri_ms < cache.cfg.postpone_ms
    ? cache.cfg.delwri_ms : cache.cfg.postpone_ms;

  if (t == 0)
    return 100;                 /* delwri=0: kicked by every write */
  t /= 4;
  return t < 10 ? 10 : t > 1000 ? 1000 : t;
}

static void *
flusher_thread (void *arg)
{
  lock_or_abort (&cache.bg_lock);
  while (!cache.bg_stop) {
    if (!cache.flush_kick) {
      struct timespec ts;
      uint64_t ms = flusher_interval_ms ();
      uint64_t t = now_ms (), due = cache_next_due ();

      if (due <= t)
        ms = 0;
      else if (due - t < ms)
        ms = due - t;
      if (ms > 0) {
        clock_gettime (CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000;
        }
        /* Woken before the time: an earlier deadline, or a kick. */
        if (pthread_cond_timedwait (&cache.bg_cond, &cache.bg_lock,
                                    &ts) == 0 &&
            !cache.flush_kick && !cache.bg_stop)
          continue;
      }
    }
    if (cache.bg_stop)
      break;
    bool pressure = cache.pressure_kick;
    cache.flush_kick = cache.pressure_kick = false;
    unlock_or_abort (&cache.bg_lock);
    cache_writeback_due ();
    if (pressure)
      cache_writeback_pressure ();
    flush_requested ();
    lock_or_abort (&cache.bg_lock);
  }
  unlock_or_abort (&cache.bg_lock);
  return NULL;
}

int
flusher_start (void)
{
  int err;

  if (cache.flusher_running)
    return 0;
  cache.bg_stop = false;
  err = pthread_create (&cache.flusher, NULL, flusher_thread, NULL);
  if (err) {
    errno = err;
    log_error ("cache: starting the flusher thread: %m");
    return -1;
  }
  cache.flusher_running = true;
  return 0;
}

/* Stop the flusher thread, if it runs, and unmap the free bounce
 * buffers (cache_shutdown calls this after the final write-back).
 */
void
flusher_stop (void)
{
  if (cache.flusher_running) {
    lock_or_abort (&cache.bg_lock);
    cache.bg_stop = true;
    pthread_cond_broadcast (&cache.bg_cond);
    unlock_or_abort (&cache.bg_lock);
    pthread_join (cache.flusher, NULL);
    cache.flusher_running = false;
  }
  bounce_drain ();
}

/* Shards over dirty_high: write back their oldest dirty blocks, of
 * every export, until they are down to dirty_low (or nothing more can
 * be written now).  Earlier than delwri= asks, which is allowed: it is
 * the latest a block may stay dirty.
 */
int
cache_writeback_pressure (void)
{
  uint64_t total = 0;
  int r = 0;

  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    bool progress = true;

    for (;;) {
      uint64_t ndirty;

      lock_or_abort (&s->lock);
      ndirty = s->ndirty;
      unlock_or_abort (&s->lock);
      if (!progress || ndirty <= cache.dirty_low)
        break;
      progress = false;
      for (struct cache_export *exp = export_next (NULL); exp;
           exp = export_next (exp)) {
        uint64_t n = 0;

        if (writeback (exp, WB_ROOM, 0, 0, s, &n, NULL) == -1)
          r = -1;
        total += n;
        progress |= n > 0;
      }
    }
  }
  return r == -1 ? -1 : (int) (total > INT32_MAX ? INT32_MAX : total);
}
