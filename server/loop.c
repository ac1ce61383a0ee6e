/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the event loop threads.
 *
 * Each loop is a libev loop on its own thread that owns a share of
 * the connections: their sockets, timers and protocol state.  Loop 0
 * runs on the main thread; it also owns the listening sockets, the
 * signals (through signalfd, so every other thread keeps them blocked)
 * and the --run child.  It hands each accepted socket to the loops in
 * turn (--loops N), so several cores can serve connections.
 *
 * Other threads talk to a loop only through its ev_async "wake" and
 * the fields under loop->lock: a list of connections that need looking
 * at (a worker queued a reply the socket did not take, the last
 * request of a closing connection finished, ...), sockets handed over
 * by loop 0, and the stop request.  The calls the code below makes on
 * a loop (loop_attention and the like) are loop-state.c's, so nothing
 * below calls back up into this file.
 *
 * Shutdown (SIGTERM, SIGINT, end of --run): loop 0 stops accepting and
 * asks every loop to stop.  A loop closes connections still in the
 * handshake, lets the others finish the requests already at workers
 * (no new ones are read) and send their replies, drops stragglers
 * after SHUTDOWN_GRACE seconds, and ends when it has no connection
 * left.  main() then writes back everything and exits.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

struct loop *loops;
unsigned nr_loops;

static unsigned next_loop;      /* round robin, loop 0 only */

static void
grace_cb (struct ev_loop *ev, ev_timer *w, int revents)
{
  struct loop *loop = w->data;
  struct connection *conn, *next;

  for (conn = loop->conns; conn; conn = conn->next)
    log_warning ("conn %" PRIu64 " (%s): not finished %g s after the "
                 "shutdown began: dropping it", conn->id, conn->peer,
                 SHUTDOWN_GRACE);
  for (conn = loop->conns; conn; conn = next) {
    next = conn->next;
    conn_kill (conn, "shutdown grace period over");
  }
  /* Connections with requests at workers stay until those finish. */
  for (conn = loop->conns; conn; conn = next) {
    next = conn->next;
    conn_check (conn);
  }
}

static void
begin_stopping (struct loop *loop)
{
  struct connection *conn, *next;

  loop->stopping = true;
  for (conn = loop->conns; conn; conn = conn->next) {
    if (conn->phase == PHASE_HANDSHAKE)
      conn_kill (conn, "server shutting down");
    else
      conn_finish (conn, "server shutting down");
  }
  for (conn = loop->conns; conn; conn = next) {
    next = conn->next;
    conn_check (conn);
  }
  if (loop->nr_conns > 0)
    ev_timer_start (loop->ev, &loop->grace);
  loop_maybe_finish (loop);
}

static void
wake_cb (struct ev_loop *ev, ev_async *w, int revents)
{
  struct loop *loop = w->data;
  struct connection *batch[64];
  int *fds;
  size_t n, nr_fds;
  bool stop;

  lock_or_abort (&loop->lock);
  fds = loop->new_fds;
  nr_fds = loop->nr_new_fds;
  loop->new_fds = NULL;
  loop->nr_new_fds = loop->cap_new_fds = 0;
  stop = loop->stop;
  unlock_or_abort (&loop->lock);

  for (size_t i = 0; i < nr_fds; i++) {
    if (stop)
      close (fds[i]);
    else
      conn_new (loop, fds[i], &handshake_phase);
  }
  free (fds);

  /* Connections are taken off the list in batches under the lock, so
   * one is never twice in a batch (a worker re-adding it needs the
   * lock), and conn_free takes a freed one off the list.  Only
   * conn_check (X) frees X.  Whatever is left after a few rounds
   * comes back with the next wake-up (each addition sends one).
   */
  for (int round = 0; round < 8; round++) {
    n = 0;
    lock_or_abort (&loop->lock);
    while (loop->attention && n < sizeof batch / sizeof batch[0]) {
      struct connection *conn = loop->attention;
      loop->attention = conn->attention_next;
      conn->attention = false;
      batch[n++] = conn;
    }
    unlock_or_abort (&loop->lock);
    for (size_t i = 0; i < n; i++)
      conn_check (batch[i]);
    if (n == 0)
      break;
  }

  if (stop && !loop->stopping)
    begin_stopping (loop);
  loop_maybe_finish (loop);
}

void
loop_adopt_fd (int fd)
{
  struct loop *loop;

  if (server_is_shutting_down ()) {
    close (fd);
    return;
  }
  loop = &loops[next_loop++ % nr_loops];
  if (loop->index == 0) {
    conn_new (loop, fd, &handshake_phase);
    return;
  }
  lock_or_abort (&loop->lock);
  if (loop->nr_new_fds == loop->cap_new_fds) {
    size_t cap = loop->cap_new_fds ? loop->cap_new_fds * 2 : 16;
    int *p = realloc (loop->new_fds, cap * sizeof *p);
    if (p == NULL) {
      unlock_or_abort (&loop->lock);
      log_error ("accepting a connection: %m");
      close (fd);
      return;
    }
    loop->new_fds = p;
    loop->cap_new_fds = cap;
  }
  loop->new_fds[loop->nr_new_fds++] = fd;
  unlock_or_abort (&loop->lock);
  ev_async_send (loop->ev, &loop->wake);
}

void
server_shutdown (void)
{
  if (!server_begin_shutdown ())
    return;
  log_debug ("shutting down: finishing requests in flight, then writing "
             "back the cache");
  notify_send ("STOPPING=1\nSTATUS=shutting down: finishing the "
               "requests in flight");
  listen_stop ();
  captive_terminate ();
  for (unsigned i = 0; i < nr_loops; i++) {
    lock_or_abort (&loops[i].lock);
    loops[i].stop = true;
    unlock_or_abort (&loops[i].lock);
    ev_async_send (loops[i].ev, &loops[i].wake);
  }
}

int
loops_init (unsigned n)
{
  int err;

  loops = calloc (n, sizeof *loops);
  if (loops == NULL) {
    log_error ("calloc: %m");
    return -1;
  }
  nr_loops = n;
  for (unsigned i = 0; i < n; i++) {
    struct loop *loop = &loops[i];

    loop->index = i;
    err = pthread_mutex_init (&loop->lock, NULL);
    if (err) {
      errno = err;
      log_error ("event loop %u: pthread_mutex_init: %m", i);
      return -1;
    }
    /* signalfd: the signals are blocked in every thread (signals.c). */
    loop->ev = i == 0 ? ev_default_loop (EVFLAG_SIGNALFD)
      : ev_loop_new (EVFLAG_AUTO);
    if (loop->ev == NULL) {
      log_error ("creating event loop %u failed (libev)", i);
      return -1;
    }
    ev_set_userdata (loop->ev, loop);
    ev_async_init (&loop->wake, wake_cb);
    loop->wake.data = loop;
    ev_async_start (loop->ev, &loop->wake);
    ev_timer_init (&loop->grace, grace_cb, SHUTDOWN_GRACE, 0.);
    loop->grace.data = loop;
    loop_poll_init (loop);
    /* Host reads on the loop, unless nio=0 (the serving thread reads)
     * or noaiod (the I/O threads complete them).
     */
    if (request_host_io_threads && !request_noaiod)
      uring_init (loop);
  }
  return 0;
}

static void *
loop_thread (void *arg)
{
  struct loop *loop = arg;

  ev_run (loop->ev, 0);
  return NULL;
}

int
loops_start_threads (void)
{
  for (unsigned i = 1; i < nr_loops; i++) {
    int err = pthread_create (&loops[i].thread, NULL, loop_thread,
                              &loops[i]);
    if (err) {
      errno = err;
      log_error ("starting event loop thread %u: %m", i);
      return -1;
    }
  }
  return 0;
}

void
loops_run (void)
{
  ev_run (loops[0].ev, 0);
  for (unsigned i = 1; i < nr_loops; i++)
    pthread_join (loops[i].thread, NULL);
}

void
loops_free (void)
{
  for (unsigned i = 0; i < nr_loops; i++) {
    ev_async_stop (loops[i].ev, &loops[i].wake);
    ev_idle_stop (loops[i].ev, &loops[i].poll);
    uring_free (&loops[i]);
    if (i > 0)
      ev_loop_destroy (loops[i].ev);
    free (loops[i].new_fds);
    pthread_mutex_destroy (&loops[i].lock);
  }
  if (nr_loops > 0)
    ev_loop_destroy (loops[0].ev);
  free (loops);
  loops = NULL;
  nr_loops = 0;
}
