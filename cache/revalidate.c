/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: rmvto= revalidation.
 *
 * Another writer may change the host file while the cache holds
 * clean copies of it.  After rmvto= of idleness an export asks its
 * backend whether the host changed (revalidate) before using the cache
 * again; if it did, its clean blocks are dropped (dirty ones hold our
 * own newer writes and stay) and changed-block tracking counts every
 * block as changed.  The check is lock-free on the request path.
 */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

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
void
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
