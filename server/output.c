/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: a connection's output queue and what it holds.
 *
 * Replies and option replies wait on conn->out_head until the
 * transport takes them.  Any thread may queue under conn->lock: the
 * loop queues what it answers itself (handshake, fast-path reads,
 * errors) and writes it once per batch of input (conn_queue,
 * conn_flush); a worker's reply goes through conn_request_back
 * (request-done.c), which writes it at once when the queue was empty
 * and the transport allows it.  What the socket does not take waits
 * for the connection's write watcher (connection.c's write_cb), with
 * the stall timer running outside the handshake.
 *
 * Every byte queued or held for a request in flight is counted in
 * conn->buffered and in the process's budget (--max-buffered), and
 * conn_under_limits_locked says whether a connection may read another
 * request.  This file sits below the protocol (handshake.c,
 * request.c) and connection.c, and calls neither.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

/* ---- the queue (any thread, conn->lock held) ---- */

/* A message is done with: a batch buffer is kept for the next batch
 * (one per connection), anything else freed.
 */
static void
retire_locked (struct connection *conn, struct outmsg *m)
{
  if (m->reusable && conn->spare_batch == NULL && !conn->dead) {
    if (m->npins)
      cache_unpin (m->pins, m->npins);
    m->next = NULL;
    m->niov = m->cur = m->hdr_used = m->acct = m->npins = 0;
    conn->spare_batch = m;
  }
  else
    outmsg_free (m);
}

void
conn_drop_output_locked (struct connection *conn)
{
  struct outmsg *m;

  while ((m = conn->out_head) != NULL) {
    conn->out_head = m->next;
    conn_hold_locked (conn, -(int64_t) m->acct);
    outmsg_free (m);
  }
  conn->out_tail = NULL;
}

ssize_t
conn_send_locked (struct connection *conn)
{
  struct iovec iov[CONN_SEND_IOV];
  struct outmsg *m;
  ssize_t r, total = 0;
  int n;

  while (conn->out_head) {
    n = 0;
    for (m = conn->out_head; m && n < CONN_SEND_IOV; m = m->next)
      for (size_t i = m->cur; i < m->niov && n < CONN_SEND_IOV; i++)
        iov[n++] = m->iov[i];
    if (n > 0) {
      r = conn->ops->send (conn, iov, n);
      if (r == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return total;
        if (peer_vanished (errno))
          log_peer_vanished (conn);
        else
          conn_debug (conn, "send: %m");
        conn->dead = true;
        conn_drop_output_locked (conn);
        return -1;
      }
    }
    else
      r = 0;
    total += r;
    /* Retire what was sent. */
    while ((m = conn->out_head) != NULL) {
      while (m->cur < m->niov && (size_t) r >= m->iov[m->cur].iov_len) {
        r -= m->iov[m->cur].iov_len;
        m->cur++;
      }
      if (m->cur < m->niov) {
        m->iov[m->cur].iov_base = (char *) m->iov[m->cur].iov_base + r;
        m->iov[m->cur].iov_len -= r;
        break;
      }
      conn->out_head = m->next;
      if (conn->out_head == NULL)
        conn->out_tail = NULL;
      conn_hold_locked (conn, -(int64_t) m->acct);
      retire_locked (conn, m);
    }
  }
  return total;
}

static void
append_locked (struct connection *conn, struct outmsg *msg)
{
  msg->next = NULL;
  if (conn->out_tail)
    conn->out_tail->next = msg;
  else
    conn->out_head = msg;
  conn->out_tail = msg;
}

void
conn_queue_locked (struct connection *conn, struct outmsg *msg)
{
  conn_hold_locked (conn, msg->acct);
  append_locked (conn, msg);
}

/* Loop thread: output waits, so watch for the socket to drain. */
static void
start_writing (struct connection *conn)
{
  if (ev_is_active (&conn->ww))
    return;
  ev_io_start (conn->loop->ev, &conn->ww);
  if (conn->phase != PHASE_HANDSHAKE && !ev_is_active (&conn->timer)) {
    ev_timer_set (&conn->timer, opt.stall_timeout, opt.stall_timeout);
    ev_timer_start (conn->loop->ev, &conn->timer);
  }
}

void
conn_queue (struct connection *conn, struct outmsg *msg)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conn->lock);
  if (conn->dead) {
    outmsg_free (msg);
    return;
  }
  conn_queue_locked (conn, msg);
}

struct outmsg *
conn_batch_buffer (struct connection *conn)
{
  struct outmsg *b;

  lock_or_abort (&conn->lock);
  b = conn->spare_batch;
  conn->spare_batch = NULL;
  unlock_or_abort (&conn->lock);
  if (b == NULL && (b = outmsg_new (1, CONN_BATCH_SIZE)) != NULL)
    b->reusable = true;
  return b;
}

void
conn_flush (struct connection *conn)
{
  bool pending;

  if (conn->batch) {
    conn_queue (conn, conn->batch);
    conn->batch = NULL;
  }
  lock_or_abort (&conn->lock);
  if (!conn->dead && conn->out_head)
    conn_send_locked (conn);
  pending = conn->out_head != NULL && !conn->dead;
  unlock_or_abort (&conn->lock);
  if (pending)
    start_writing (conn);
}

/* ---- the memory budget ---- */

/* The memory budget (--max-buffered): bytes held by all connections
 * (payloads of requests in flight, replies not yet sent).
 */
static uint64_t total_held;             /* atomic */

void
conn_hold_locked (struct connection *conn, int64_t delta)
{
  conn->buffered += delta;
  __atomic_add_fetch (&total_held, delta, __ATOMIC_RELAXED);
  /* Less held: a connection that stopped reading may go on.  Whatever
   * the path (a reply sent by a worker or the loop, dropped, a request
   * back), its loop looks at it (conn_check resumes it).
   */
  if (delta < 0 && conn->read_paused && !conn->phase_closing
      && conn_under_limits_locked (conn))
    loop_attention (conn->loop, conn);
}

uint64_t
conn_total_held (void)
{
  return __atomic_load_n (&total_held, __ATOMIC_RELAXED);
}

/* Whether the connection may read another request.  Its own limits,
 * and the process's: over --max-buffered, every connection that holds
 * something waits until what it holds has gone (the clients that stop
 * reading replies keep waiting, and are cut off by --stall-timeout),
 * while one holding nothing may always take one request.  So every
 * client makes progress, and memory stays within the budget plus one
 * request per connection, however many connections there are.
 */
bool
conn_under_limits_locked (const struct connection *conn)
{
  if (conn->inflight >= CONN_MAX_INFLIGHT
      || conn->buffered >= CONN_MAX_BUFFERED)
    return false;
  return conn->buffered == 0
    || __atomic_load_n (&total_held, __ATOMIC_RELAXED) < opt.max_buffered;
}
