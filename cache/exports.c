/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the list of open exports, and references to them.
 *
 * cache.exports lists every open export, for the walks that serve them
 * all: the flusher's rounds (flusher.c) and make_room looking for dirty
 * blocks of another export (flush.c).  Opening an export links it in,
 * closing unlinks it.  cache.lock guards the list and each export's
 * refs and closing, and is held only to walk the list, never across
 * I/O: a walk takes a reference on the export it is at and drops the
 * lock before writing back, and cache_export_close, having marked the
 * export closing (no new references), waits for the references to go
 * before unlinking it.  An export holding a reference stays linked, so
 * its next pointer is good to go on from.
 */
#include <config.h>

#include <pthread.h>
#include <stdbool.h>

#include "cleanup.h"
#include "internal.h"

/* An export's last reference went (with cache.lock). */
static pthread_cond_t unref_cond = PTHREAD_COND_INITIALIZER;

void
exports_link (struct cache_export *exp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);

  exp->id = ++cache.next_id;
  exp->next = cache.exports;
  cache.exports = exp;
}

void
exports_unlink (struct cache_export *exp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);

  exp->closing = true;
  while (exp->refs > 0)
    pthread_cond_wait (&unref_cond, &cache.lock);
  for (struct cache_export **p = &cache.exports; *p; p = &(*p)->next)
    if (*p == exp) {
      *p = exp->next;
      break;
    }
}

bool
export_get_locked (struct cache_export *exp)
{
  if (exp->closing)
    return false;
  exp->refs++;
  return true;
}

void
export_put (struct cache_export *exp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);

  if (--exp->refs == 0 && exp->closing)
    pthread_cond_broadcast (&unref_cond);
}

struct cache_export *
export_next (struct cache_export *after)
{
  struct cache_export *e;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&cache.lock);

    e = after ? after->next : cache.exports;
    while (e && !export_get_locked (e))
      e = e->next;
  }
  if (after)
    export_put (after);
  return e;
}
