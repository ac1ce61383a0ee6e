/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the nio= host I/O threads and their queue.
 *
 * devb-loopback hands host I/O to a few threads so that a slow host
 * file does not stall everything else, and serves a client who is
 * waiting before the write-back and read-ahead nobody waits for.  One
 * pool serves every device.  The queue has one FIFO list per
 * priority; a thread always empties the client list first.  With
 * nio=0 there is no pool and requests run in the submitting thread.
 *
 * What goes through the queue is asynchronous: an event loop that
 * must not block submits a request with a completion (done), and the
 * thread that runs it calls done; that is the one handoff a cache miss
 * or a durable write costs.  A thread that may block anyway (a
 * worker, the flusher, the read-ahead thread, or an I/O thread in a
 * completion) does its host I/O itself with io_run: no handoff, and
 * no thread ever waits for a request queued behind its own.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "iothreads.h"
#include "log.h"

#define NR_PRIOS 2

/* queue_lock guards everything below it: the lists, the thread
 * counts, threads and stopping.  queue_cond is signalled when a
 * request is queued or stopping is set.  The lock is never held while
 * a request runs.
 */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static struct io_request *queue_head[NR_PRIOS];
static struct io_request *queue_tail[NR_PRIOS];
static pthread_t *threads;      /* started, to be joined */
static unsigned nr_threads;     /* entries in threads */
static unsigned nr_running;     /* not yet exited; 0: run in the submitter */
static bool stopping;           /* threads exit once the queue is empty */

/* Requests handed to a thread (not run in the submitter), in total:
 * atomic, for statistics and tests.
 */
static uint64_t handoffs;

/* Run one request; returns 0 or an errno value. */
static int
run (struct io_request *req)
{
  int r;

  switch (req->op) {
  case IO_OP_READ:
  case IO_OP_WRITE:
    if (req->count > SIZE_MAX)
      return EINVAL;
    if (req->op == IO_OP_READ)
      r = device_pread (req->dev, req->buf, req->count, req->offset);
    else
      r = device_pwrite (req->dev, req->buf, req->count, req->offset);
    break;
  case IO_OP_FLUSH:
    r = device_flush (req->dev);
    break;
  case IO_OP_TRIM:
    r = device_trim (req->dev, req->offset, req->count);
    break;
  case IO_OP_ZERO:
    r = device_zero (req->dev, req->offset, req->count, req->may_trim);
    break;
  case IO_OP_CALL:
    return 0;                   /* done does the work */
  default:
    return EINVAL;
  }
  return r == -1 ? (errno ? errno : EIO) : 0;
}

static void
complete (struct io_request *req)
{
  int err = run (req);

  req->done (req, err);
}

/* With queue_lock held: the oldest request of the most urgent
 * priority, or NULL.
 */
static struct io_request *
dequeue (void)
{
  unsigned p;

  for (p = 0; p < NR_PRIOS; ++p) {
    struct io_request *req = queue_head[p];

    if (req) {
      queue_head[p] = req->next;
      if (queue_head[p] == NULL)
        queue_tail[p] = NULL;
      req->next = NULL;
      return req;
    }
  }
  return NULL;
}

static void *
iothread (void *arg)
{
  (void) arg;
  for (;;) {
    struct io_request *req;

    lock_or_abort (&queue_lock);
    while ((req = dequeue ()) == NULL && !stopping)
      pthread_cond_wait (&queue_cond, &queue_lock);
    if (req == NULL) {
      /* The queue is empty and stays so for this thread: once the
       * last one is gone, submitters run requests themselves.
       */
      nr_running--;
      unlock_or_abort (&queue_lock);
      return NULL;
    }
    unlock_or_abort (&queue_lock);
    complete (req);
  }
}

int
iothreads_start (unsigned nio)
{
  sigset_t all, old;
  unsigned i;
  int err;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&queue_lock);
  if (nr_threads > 0) {
    errno = EBUSY;
    log_error ("iothreads: already started: %m");
    return -1;
  }
  if (nio == 0)
    return 0;
  threads = calloc (nio, sizeof *threads);
  if (threads == NULL) {
    log_error ("iothreads: calloc: %m");
    return -1;
  }
  stopping = false;

  /* The I/O threads take no signals: they belong to the main loop. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  for (i = 0; i < nio; ++i) {
    err = pthread_create (&threads[i], NULL, iothread, NULL);
    if (err != 0)
      break;
    nr_running++;
  }
  pthread_sigmask (SIG_SETMASK, &old, NULL);

  if (i < nio) {
    errno = err;
    log_error ("iothreads: starting thread %u of %u: %m", i + 1, nio);
    stopping = true;
    pthread_cond_broadcast (&queue_cond);
    unlock_or_abort (&queue_lock);
    while (i > 0)
      pthread_join (threads[--i], NULL);
    lock_or_abort (&queue_lock);
    free (threads);
    threads = NULL;
    stopping = false;
    errno = err;
    return -1;
  }
  nr_threads = nio;
  return 0;
}

void
iothreads_stop (void)
{
  pthread_t *joining;
  unsigned i, n;

  lock_or_abort (&queue_lock);
  stopping = true;
  pthread_cond_broadcast (&queue_cond);
  joining = threads;
  n = nr_threads;
  unlock_or_abort (&queue_lock);

  /* Requests queued until the last thread exits still run. */
  for (i = 0; i < n; ++i)
    pthread_join (joining[i], NULL);

  lock_or_abort (&queue_lock);
  if (threads == joining) {
    free (threads);
    threads = NULL;
    nr_threads = 0;
  }
  stopping = false;
  unlock_or_abort (&queue_lock);
}

void
io_submit (struct io_request *req)
{
  unsigned p = req->prio == IO_PRIO_CLIENT ? 0 : 1;

  lock_or_abort (&queue_lock);
  if (nr_running == 0) {
    unlock_or_abort (&queue_lock);
    complete (req);
    return;
  }
  __atomic_fetch_add (&handoffs, 1, __ATOMIC_RELAXED);
  req->next = NULL;
  if (queue_tail[p])
    queue_tail[p]->next = req;
  else
    queue_head[p] = req;
  queue_tail[p] = req;
  pthread_cond_signal (&queue_cond);
  unlock_or_abort (&queue_lock);
}

int
io_run (struct io_request *req)
{
  int err = run (req);

  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

uint64_t
iothreads_handoffs (void)
{
  return __atomic_load_n (&handoffs, __ATOMIC_RELAXED);
}
