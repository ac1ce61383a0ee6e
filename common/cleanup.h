/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: scope-based cleanup.
 *
 * Resources acquired in a function are released when the variable
 * goes out of scope, so early returns cannot leak file descriptors,
 * memory or locks.  configure refuses compilers without
 * __attribute__((cleanup)).
 */
#ifndef NBDL_CLEANUP_H
#define NBDL_CLEANUP_H

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static inline void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}
#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))

static inline void
cleanup_close (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
#define CLEANUP_CLOSE __attribute__ ((cleanup (cleanup_close)))

/* A failed lock or unlock means memory corruption or a programming
 * error: there is no sane way to continue.
 */
static inline void
lock_or_abort (pthread_mutex_t *m)
{
  if (pthread_mutex_lock (m) != 0)
    abort ();
}

static inline void
unlock_or_abort (pthread_mutex_t *m)
{
  if (pthread_mutex_unlock (m) != 0)
    abort ();
}

static inline void
cleanup_unlock (pthread_mutex_t **m)
{
  unlock_or_abort (*m);
}

#define NBDL_CONCAT_(a, b) a##b
#define NBDL_CONCAT(a, b) NBDL_CONCAT_ (a, b)
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                           \
  __attribute__ ((cleanup (cleanup_unlock)))                            \
  pthread_mutex_t *NBDL_CONCAT (_lock_, __LINE__) = (mutex);            \
  lock_or_abort (NBDL_CONCAT (_lock_, __LINE__))

#endif /* NBDL_CLEANUP_H */
