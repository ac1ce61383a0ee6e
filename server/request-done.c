/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: requests coming back to their connection.
 *
 * A request handed off by the loop (request.c) comes back here once
 * its reply is made, from a worker or an I/O thread (request-work.c)
 * or from the loop's io_uring (uring.c): counted out of the
 * connection, its reply queued (and sent at once from the worker when
 * the socket is idle), the loop woken only when it has something to
 * do, and the request freed.  This is the bottom of the request
 * files: it calls the output queue (output.c) and loop_attention, and
 * nothing that decodes or runs requests.
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

void
request_free (struct request *req)
{
  if (req) {
    free (req->buf);
    outmsg_free (req->msg);
    free (req);
  }
}

void
conn_request_done (struct connection *conn, struct request *req,
                   struct outmsg *reply)
{
  conn_request_back (conn, req, reply, true);
}

/* A request in flight is done (conn->lock held): count it out and
 * queue its reply.  Returns true if the loop must look at the
 * connection for more than sending (it died, reading may resume, a
 * closing connection has nothing left in flight).
 */
static bool
request_back_locked (struct connection *conn, struct request *req,
                     struct outmsg *reply)
{
  conn->inflight--;
  conn_hold_locked (conn, -(int64_t) req->acct);
  req->acct = 0;
  if (reply == NULL && !conn->dead) {
    /* The client would wait for this reply forever. */
    log_error ("conn %" PRIu64 ": no memory for a reply: dropping the "
               "connection", conn->id);
    conn->dead = true;
    conn_drop_output_locked (conn);
  }
  if (conn->dead)
    outmsg_free (reply);
  else {
    conn_queue_locked (conn, reply);
  }
  return conn->dead || (conn->read_paused && conn_under_limits_locked (conn))
    || (conn->inflight == 0 && conn->phase_closing);
}

void
conn_request_back (struct connection *conn, struct request *req,
                   struct outmsg *reply, bool send_here)
{
  bool check;

  lock_or_abort (&conn->lock);
  check = request_back_locked (conn, req, reply);
  if (send_here && !conn->dead && conn->out_head == reply
      && conn->ops->send_from_any_thread)
    conn_send_locked (conn);
  if (conn->out_head)
    conn->want_write = true;
  /* Wake the loop only when it has something to do. */
  if (check || conn->want_write)
    loop_attention (conn->loop, conn);
  unlock_or_abort (&conn->lock);
  /* conn may be freed from here on. */
  request_free (req);
}

void
conn_request_back_loop (struct connection *conn, struct request *req,
                        struct outmsg *reply)
{
  bool check;

  lock_or_abort (&conn->lock);
  check = request_back_locked (conn, req, reply);
  unlock_or_abort (&conn->lock);
  request_free (req);
  /* Not here: the caller may be in the middle of this connection. */
  if (check)
    loop_attention (conn->loop, conn);
}
