/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: what the rest of the server asks of a loop.
 *
 * loop.c runs the loops and hands them their connections; the code
 * below it (connections, the output queue, requests coming back,
 * admission) needs only these few calls on a struct loop, so it never
 * calls back up into loop.c: loop_attention asks a loop, from any
 * thread, to look at a connection (the list under loop->lock, then
 * the loop's ev_async), loop_forget takes a freed connection off that
 * list, loop_note_input keeps the loop polling for the next request
 * (--poll), and loop_maybe_finish ends a stopping loop once its last
 * connection is gone (and, for loop 0, the --run child).  Whether the
 * server is shutting down is here too, for the handshake to ask.
 */
#include <config.h>

#include <sched.h>

#include "cleanup.h"
#include "internal.h"

static bool shutting_down;      /* written by loop 0, read anywhere */

bool
server_is_shutting_down (void)
{
  return __atomic_load_n (&shutting_down, __ATOMIC_RELAXED);
}

bool
server_begin_shutdown (void)
{
  if (server_is_shutting_down ())
    return false;
  __atomic_store_n (&shutting_down, true, __ATOMIC_RELAXED);
  return true;
}

void
loop_attention (struct loop *loop, struct connection *conn)
{
  lock_or_abort (&loop->lock);
  if (!conn->attention) {
    conn->attention = true;
    conn->attention_next = loop->attention;
    loop->attention = conn;
  }
  unlock_or_abort (&loop->lock);
  ev_async_send (loop->ev, &loop->wake);
}

/* --poll: a client at queue depth 1 sends its next request a few tens
 * of microseconds after our reply.  Sleeping in the kernel and being
 * woken again costs more than that; polling for it instead (yielding
 * the CPU to anything else runnable) answers sooner.  The poll stops
 * after --poll microseconds without input.
 */
void
loop_note_input (struct loop *loop)
{
  if (opt.poll_us == 0)
    return;
  loop->poll_until = ev_now (loop->ev) + opt.poll_us * 1e-6;
  if (!ev_is_active (&loop->poll))
    ev_idle_start (loop->ev, &loop->poll);
}

static void
poll_cb (struct ev_loop *ev, ev_idle *w, int revents)
{
  struct loop *loop = w->data;

  if (ev_now (ev) >= loop->poll_until)
    ev_idle_stop (ev, w);
  else
    sched_yield ();
}

void
loop_poll_init (struct loop *loop)
{
  ev_idle_init (&loop->poll, poll_cb);
  loop->poll.data = loop;
}

void
loop_forget (struct loop *loop, struct connection *conn)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&loop->lock);
  if (!conn->attention)
    return;
  for (struct connection **p = &loop->attention; *p;
       p = &(*p)->attention_next)
    if (*p == conn) {
      *p = conn->attention_next;
      break;
    }
  conn->attention = false;
}

void
loop_maybe_finish (struct loop *loop)
{
  if (!loop->stopping || loop->nr_conns > 0)
    return;
  if (loop->waits_for_child)
    return;
  ev_timer_stop (loop->ev, &loop->grace);
  ev_break (loop->ev, EVBREAK_ALL);
}
