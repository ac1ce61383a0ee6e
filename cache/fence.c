/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: fences, the ranges being zeroed or trimmed on the host.
 *
 * While zero.c zeroes or trims whole blocks on the host, a fence over
 * them keeps write-back (flush.c) from writing dirty blocks inside the
 * range, and keeps a partial write (write.c, async.c) from reading old
 * bytes into a block there: data written after the zero started cannot
 * be overwritten by it, nor zeroed data resurrected.  The fences of an
 * export hang off it, guarded by exp->lock; exp->cond is broadcast
 * when one comes down.
 */
#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cleanup.h"
#include "internal.h"

bool
in_fence (struct cache_export *exp, uint64_t index)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);

  for (struct fence *f = exp->fences; f; f = f->next)
    if (index >= f->first && index < f->end)
      return true;
  return false;
}

void
wait_fences (struct cache_export *exp, uint64_t first, uint64_t end)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);
  bool overlap;

  do {
    overlap = false;
    for (struct fence *f = exp->fences; f; f = f->next)
      if (f->first < end && first < f->end)
        overlap = true;
    if (overlap)
      pthread_cond_wait (&exp->cond, &exp->lock);
  } while (overlap);
}

void
fence_up (struct cache_export *exp, struct fence *f)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);
  f->next = exp->fences;
  exp->fences = f;
}

void
fence_down (struct cache_export *exp, struct fence *f)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);
  for (struct fence **p = &exp->fences; *p; p = &(*p)->next)
    if (*p == f) {
      *p = f->next;
      break;
    }
  pthread_cond_broadcast (&exp->cond);
}
