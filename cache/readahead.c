/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: read-ahead and prefetch.
 *
 * Each export remembers where its last read ended.  A read starting
 * exactly there is sequential: the read-ahead window opens at ra= MIN
 * and doubles with every further sequential read up to MAX, and the
 * blocks beyond the read are queued for the prefetch thread, which
 * reads them at background priority (client reads go first on the I/O
 * threads).  Any other read closes the window.  Reads of ra= MAX or
 * more read nothing ahead: their client is reading ahead itself.  NBD_CMD_CACHE queues
 * its range the same way.  Prefetch never evicts dirty blocks to make
 * room: it stops where the cache would have to write back first.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

struct prefetch_job {
  struct cache_export *exp;
  uint64_t first, end;          /* block indexes */
  struct prefetch_job *next;
};

/* The queue and the thread (lock guards everything here). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct prefetch_job *head, *tail;
static struct cache_export *working_on; /* export of the running job */
static bool stop, running;
static pthread_t thread;

int
prefetch_queue (struct cache_export *exp, uint64_t first, uint64_t end)
{
  struct prefetch_job *job;

  if (end > exp->nblocks)
    end = exp->nblocks;
  if (first >= end)
    return 0;
  job = malloc (sizeof *job);
  if (job == NULL)
    return -1;
  *job = (struct prefetch_job) { .exp = exp, .first = first, .end = end };
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  /* Started on first use, so that it is started after any fork. */
  if (!running && prefetcher_start () == -1) {
    free (job);
    return -1;
  }
  if (tail)
    tail->next = job;
  else
    head = job;
  tail = job;
  pthread_cond_broadcast (&cond);
  return 0;
}

void
readahead_note (struct cache_export *exp, uint64_t offset, uint64_t count)
{
  uint64_t from, to;

  uint64_t end = offset + count;

  if (!cache.cfg.ra_enabled)
    return;
  /* Random reads (the common case under load) take no lock. */
  if (offset != __atomic_exchange_n (&exp->ra_next, end, __ATOMIC_RELAXED) ||
      offset == 0) {
    if (__atomic_load_n (&exp->ra_window, __ATOMIC_RELAXED) != 0) {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);
      __atomic_store_n (&exp->ra_window, 0, __ATOMIC_RELAXED);
      exp->ra_end = 0;
    }
    return;
  }
  /* A read as large as the largest window is its own read-ahead: a
   * client reading that much at a time keeps the next reads in flight
   * already, and a prefetch of them would only race with them (and
   * send them to a thread to wait for it).
   */
  if (count >= cache.cfg.ra_max)
    return;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);
    uint64_t window = exp->ra_window == 0 ? cache.cfg.ra_min
      : exp->ra_window * 2 > cache.cfg.ra_max ? cache.cfg.ra_max
      : exp->ra_window * 2;

    /* Stored atomically: also read without the lock, above. */
    __atomic_store_n (&exp->ra_window, window, __ATOMIC_RELAXED);
    from = exp->ra_end > end ? exp->ra_end : end;
    to = end + window;
    if (to > exp->be.size)
      to = exp->be.size;
    if (from >= to)
      return;
    exp->ra_end = to;
  }
  prefetch_queue (exp, from / CACHE_BLOCK_SIZE,
                  (to + CACHE_BLOCK_SIZE - 1) / CACHE_BLOCK_SIZE);
}

int
cache_prefetch (struct cache_export *exp, uint64_t count, uint64_t offset)
{
  uint64_t first, end, limit;

  if (offset > exp->be.size || count > exp->be.size - offset) {
    errno = EINVAL;
    return -1;
  }
  if (count == 0)
    return 0;
  first = offset / CACHE_BLOCK_SIZE;
  end = (offset + count + CACHE_BLOCK_SIZE - 1) / CACHE_BLOCK_SIZE;
  /* A prefetch is a hint: no more than the export may hold in the
   * cache (wipe=, at most the whole cache), since reading further would
   * only evict what it had just read.  A client can ask for a whole
   * multi-terabyte export in one 64-bit NBD_CMD_CACHE.
   */
  limit = exp->wipe_blocks < cache.max_blocks ? exp->wipe_blocks
    : cache.max_blocks;
  if (end - first > limit)
    end = first + limit;
  return prefetch_queue (exp, first, end);
}

/* Read the missing blocks of [first, end) into the cache. */
static void
prefetch_range (struct cache_export *exp, uint64_t first, uint64_t end)
{
  struct block *run[IO_RUN_BLOCKS];
  unsigned n = 0;

  for (uint64_t idx = first; idx < end; idx++) {
    struct shard *s = shard_of (exp, idx);
    struct block *b;
    bool stop_here = false, skip = false;

    {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
      b = block_lookup (s, exp, idx);
      if (b)
        skip = true;            /* resident or being read already */
      else if ((b = block_alloc (s, exp, idx)) == NULL)
        stop_here = true;
      else {
        b->busy |= BUSY_READ;
        run[n++] = b;
      }
    }
    if ((skip || stop_here || n == IO_RUN_BLOCKS) && n > 0) {
      if (fill_run (exp, run, n, IO_PRIO_BACKGROUND, true) == -1)
        return;                 /* logged; the client read will retry */
      n = 0;
    }
    if (stop_here)
      return;
  }
  if (n > 0)
    fill_run (exp, run, n, IO_PRIO_BACKGROUND, true);
}

static void *
prefetch_thread (void *arg)
{
  lock_or_abort (&lock);
  for (;;) {
    struct prefetch_job *job;

    while (head == NULL && !stop)
      pthread_cond_wait (&cond, &lock);
    if (stop)
      break;
    job = head;
    head = job->next;
    if (head == NULL)
      tail = NULL;
    working_on = job->exp;
    unlock_or_abort (&lock);

    prefetch_range (job->exp, job->first, job->end);
    free (job);

    lock_or_abort (&lock);
    working_on = NULL;
    pthread_cond_broadcast (&cond);
  }
  unlock_or_abort (&lock);
  return NULL;
}

int
prefetcher_start (void)
{
  int err;

  if (running)
    return 0;
  stop = false;
  err = pthread_create (&thread, NULL, prefetch_thread, NULL);
  if (err) {
    errno = err;
    log_error ("cache: starting the read-ahead thread: %m");
    return -1;
  }
  running = true;
  return 0;
}

static void
free_jobs (struct cache_export *exp)
{
  struct prefetch_job **p = &head;

  tail = NULL;
  while (*p) {
    struct prefetch_job *job = *p;
    if (exp == NULL || job->exp == exp) {
      *p = job->next;
      free (job);
    }
    else {
      tail = job;
      p = &job->next;
    }
  }
}

void
prefetcher_stop (void)
{
  if (!running)
    return;
  lock_or_abort (&lock);
  stop = true;
  free_jobs (NULL);
  pthread_cond_broadcast (&cond);
  unlock_or_abort (&lock);
  pthread_join (thread, NULL);
  running = false;
}

void
prefetch_forget (struct cache_export *exp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  free_jobs (exp);
  while (working_on == exp)
    pthread_cond_wait (&cond, &lock);
}
