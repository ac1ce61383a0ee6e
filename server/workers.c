/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the request worker pool (blk thread=MAX:LOW:HIGH).
 *
 * Requests that may wait for host I/O (cache misses, writes, flushes,
 * trims, zeroes, block status) run here, off the event loops, in
 * FIFO order.  The pool follows io-blk's thread= rule: at most MAX
 * threads; a thread is added when work is queued and too few are idle,
 * keeping LOW idle threads ready for a burst; an idle thread leaves
 * when more than HIGH are idle.  Threads inherit the blocked signal
 * mask of the loop that starts them.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Guarded by lock: */
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER; /* work or stop */
static pthread_cond_t exit_cond = PTHREAD_COND_INITIALIZER; /* a thread left */
static struct job *head, *tail;
static unsigned nr_queued;
static unsigned nr_threads;     /* running */
static unsigned nr_idle;        /* waiting on work_cond */
static unsigned max_threads, low_water, high_water;
static bool stopping;

static void *worker (void *arg);

/* Called with lock held. */
static int
spawn_locked (void)
{
  pthread_attr_t attr;
  pthread_t t;
  int err;

  err = pthread_attr_init (&attr);
  if (err) {
    errno = err;
    return -1;
  }
  err = pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  if (err == 0)
    err = pthread_create (&t, &attr, worker, NULL);
  pthread_attr_destroy (&attr);
  if (err) {
    errno = err;
    return -1;
  }
  nr_threads++;
  return 0;
}

static void *
worker (void *arg)
{
  struct job *job;

  lock_or_abort (&lock);
  for (;;) {
    while (head == NULL && !stopping) {
      if (nr_idle >= high_water && nr_threads > low_water)
        goto leave;             /* enough idle threads without me */
      nr_idle++;
      pthread_cond_wait (&work_cond, &lock);
      nr_idle--;
    }
    if (head == NULL)
      goto leave;               /* stopping and nothing left */
    job = head;
    head = job->next;
    if (head == NULL)
      tail = NULL;
    nr_queued--;
    unlock_or_abort (&lock);
    job->run (job);
    lock_or_abort (&lock);
  }
 leave:
  nr_threads--;
  pthread_cond_broadcast (&exit_cond);
  unlock_or_abort (&lock);
  return NULL;
}

int
workers_start (unsigned max, unsigned low, unsigned high)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

  max_threads = max ? max : 1;
  low_water = low < max_threads ? low : max_threads;
  high_water = high > low_water ? high : low_water;
  for (unsigned i = 0; i < low_water; i++)
    if (spawn_locked () == -1) {
      log_error ("starting worker threads: %m");
      return -1;
    }
  log_debug ("worker pool: at most %u threads, %u to %u idle",
             max_threads, low_water, high_water);
  return 0;
}

void
workers_submit (struct job *job)
{
  bool inline_run = false;

  lock_or_abort (&lock);
  job->next = NULL;
  if (tail)
    tail->next = job;
  else
    head = job;
  tail = job;
  nr_queued++;
  if ((nr_queued > nr_idle || nr_idle < low_water)
      && nr_threads < max_threads && spawn_locked () == -1) {
    log_warning ("adding a worker thread: %m");
    if (nr_threads == 0) {
      /* No thread at all: run it here rather than never. */
      head = tail = NULL;
      nr_queued = 0;
      inline_run = true;
    }
  }
  if (!inline_run)
    pthread_cond_signal (&work_cond);
  unlock_or_abort (&lock);
  if (inline_run)
    job->run (job);
}

void
workers_stop (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

  stopping = true;
  pthread_cond_broadcast (&work_cond);
  while (nr_threads > 0)
    pthread_cond_wait (&exit_cond, &lock);
}
