/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the list of open exports.
 *
 * cache.exports lists every open export, for the walks that serve them
 * all: the flusher's rounds (flusher.c) and make_room looking for dirty
 * blocks of another export (flush.c).  Opening an export links it in,
 * closing unlinks it.  cache.lock guards the list; exports_rwlock is
 * held for reading by a walk while it uses the exports it finds, and
 * for writing to link or unlink one, so that no export goes away under
 * a walk.
 */
#include <config.h>

#include <pthread.h>

#include "cleanup.h"
#include "internal.h"

static pthread_rwlock_t exports_rwlock = PTHREAD_RWLOCK_INITIALIZER;

void
exports_link (struct cache_export *exp)
{
  pthread_rwlock_wrlock (&exports_rwlock);
  lock_or_abort (&cache.lock);
  exp->id = ++cache.next_id;
  exp->next = cache.exports;
  cache.exports = exp;
  unlock_or_abort (&cache.lock);
  pthread_rwlock_unlock (&exports_rwlock);
}

void
exports_unlink (struct cache_export *exp)
{
  pthread_rwlock_wrlock (&exports_rwlock);
  lock_or_abort (&cache.lock);
  for (struct cache_export **p = &cache.exports; *p; p = &(*p)->next)
    if (*p == exp) {
      *p = exp->next;
      break;
    }
  unlock_or_abort (&cache.lock);
  pthread_rwlock_unlock (&exports_rwlock);
}

void
exports_read_lock (void)
{
  pthread_rwlock_rdlock (&exports_rwlock);
}

void
exports_read_unlock (void)
{
  pthread_rwlock_unlock (&exports_rwlock);
}
