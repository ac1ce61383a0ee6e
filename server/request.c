/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the transmission phase.
 *
 * The loop thread decodes requests from the connection's input (their
 * framing, compact or extended, is framing.c's), checks each in
 * validate_request (framing.c: the one place that logs "invalid
 * request: ..." and picks the errno) and then either answers it on the
 * spot or hands it to the worker pool:
 *
 * - a READ of at most FASTPATH_MAX bytes that the cache holds entirely
 *   is answered on the loop thread, with no handoff: small ones copied
 *   by cache_read_nowait, large ones (FASTPATH_PIN_MIN and up) sent
 *   straight from the cache's blocks, pinned by cache_read_pinned;
 * - a READ it does not hold (without holes to report) and a WRITE that
 *   must be durable before its reply are one hop: the loop does the
 *   cache's part and the host I/O goes to its io_uring (uring.c) or,
 *   without one, to an I/O thread (host_io_done);
 * - everything else that may wait for host I/O (flushes, zeroes, trims,
 *   prefetch, block status, larger or sparse reads, everything with
 *   nio=0) runs on a worker, which sends the reply itself
 *   (request-work.c).
 *
 * Replies may therefore leave in any order.  A refused WRITE's payload
 * is still read and thrown away so the stream stays in step; a request
 * with a bad magic drops the connection, since nothing after it can be
 * trusted.  The mapping of NBD flags to cache flags is here and in
 * request-work.c: FUA -> CACHE_FUA, no NO_HOLE -> CACHE_MAY_TRIM,
 * FAST_ZERO -> CACHE_FAST_ZERO.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

/* ---- on the loop ---- */

static void
queue_reply (struct connection *conn, struct outmsg *msg)
{
  if (msg == NULL)
    conn_kill (conn, "out of memory");
  else
    conn_queue (conn, msg);
}

/* Replies answered on the loop go into the connection's batch, one
 * buffer for many, which conn_flush queues: no allocation per reply.
 * batch_put returns room for len bytes (NULL: out of memory);
 * batch_unput takes back the last len bytes put.
 */
static void *
batch_put (struct connection *conn, size_t len, size_t acct)
{
  struct outmsg *b = conn->batch;

  if (b && b->hdr_used + len > b->hdr_cap) {
    conn_queue (conn, b);
    conn->batch = b = NULL;
  }
  if (b == NULL) {
    b = len > CONN_BATCH_SIZE ? outmsg_new (1, len) : conn_batch_buffer (conn);
    if (b == NULL)
      return NULL;
    conn->batch = b;
  }
  b->acct += acct;
  return outmsg_put (b, len);
}

static void
batch_unput (struct connection *conn, size_t len, size_t acct)
{
  struct outmsg *b = conn->batch;

  b->acct -= acct;
  b->hdr_used -= len;
  b->iov[b->niov - 1].iov_len -= len;
  if (b->iov[b->niov - 1].iov_len == 0)
    b->niov--;
}

/* A simple reply on the loop (OK, or an error without a message). */
static void
batch_simple (struct connection *conn, const struct request *req,
              uint32_t error)
{
  void *p = batch_put (conn, reply_simple_size (req, error), 0);

  if (p == NULL)
    conn_kill (conn, "out of memory");
  else
    reply_simple_header (p, req, error);
}

static void
count_in_flight (struct connection *conn, struct request *req)
{
  lock_or_abort (&conn->lock);
  conn->inflight++;
  conn_hold_locked (conn, req->acct);
  unlock_or_abort (&conn->lock);
  __atomic_fetch_add (&conn->exp->host_io_requests, 1, __ATOMIC_RELAXED);
}

static void
hand_to_iothread (struct connection *conn, struct request *req)
{
  count_in_flight (conn, req);
  request_to_iothread (req);
}

/* A READ the cache does not hold entirely, read into a reply of its
 * own: the resident part now, the rest by an I/O thread, which sends
 * the reply.  Returns true if the read was dealt with (req is then
 * gone); false if a worker must do it (req->msg may be set: the worker
 * reads into it).
 */
static bool
read_one_hop (struct connection *conn, struct request *req)
{
  struct outmsg *msg;
  int r = 0;

  /* A large one is sent from the cache's blocks, pinned. */
  if (req->count >= FASTPATH_PIN_MIN) {
    size_t pins = CACHE_PINS_FOR ((uint64_t) req->count, req->offset);
    size_t niov, npins;

    msg = reply_read_pinned (req, conn->structured, pins);
    if (msg) {
      r = cache_read_start_pinned (conn->exp->ce, req->count, req->offset,
                                   msg->iov + msg->niov,
                                   msg->max_iov - msg->niov, &niov,
                                   msg->pins, &npins, &req->io);
      if (r == 0 || r == -1)
        outmsg_free (msg);
      else {
        msg->niov += niov;
        msg->npins = npins;
        req->msg = msg;
        __atomic_fetch_add (&conn->exp->zero_copy_reads, 1,
                            __ATOMIC_RELAXED);
      }
    }
  }
  if (r == 0) {
    req->msg = reply_read_inline (req, conn->structured, &req->msg_data);
    if (req->msg == NULL)
      return false;             /* the worker path reports ENOMEM */
    r = cache_read_start (conn->exp->ce, req->msg_data, req->count,
                          req->offset, &req->io);
  }
  switch (r) {
  case 0:
    return false;
  case 1:                       /* resident after all */
    msg = req->msg;
    req->msg = NULL;
    msg->acct = req->count;
    conn_queue (conn, msg);
    __atomic_fetch_add (&conn->exp->fastpath_reads, 1, __ATOMIC_RELAXED);
    break;
  case 2:
    req->acct = req->count;
    if (uring_read (conn->loop, req))
      count_in_flight (conn, req);
    else
      hand_to_iothread (conn, req);
    return true;
  default:
    queue_reply (conn, reply_error (req, conn->structured, errno,
                                    strerror (errno)));
    break;
  }
  request_free (req);
  return true;
}

/* A WRITE the cache can take without host I/O (a delayed write into
 * resident or free blocks) is answered here, like a read hit: the
 * payload at buf.  Returns true if it was.
 */
static bool
write_on_loop (struct connection *conn, const struct request *req,
               const void *buf)
{
  unsigned cf = req->flags & NBD_CMD_FLAG_FUA ? CACHE_FUA : 0;
  struct cache_io *io = NULL;
  int r;

  if (request_host_io_threads)
    r = cache_write_start (conn->exp->ce, buf, req->count, req->offset, cf,
                           &io);
  else
    r = cache_write_nowait (conn->exp->ce, buf, req->count, req->offset, cf);
  if (r == 0)
    return false;
  if (r == 2) {
    /* In the cache; durable is the I/O thread's part.  The payload is
     * not needed any more.
     */
    struct request *c = malloc (sizeof *c);

    if (c == NULL) {
      cache_io_cancel (io);
      return false;             /* a worker writes it again, durably */
    }
    *c = *req;
    c->buf = NULL;
    c->msg = NULL;
    c->acct = 0;
    c->io = io;
    count_in_flight (conn, c);
    if (!uring_write (conn->loop, c))
      request_to_iothread (c);
    return true;
  }
  if (r == 1)
    batch_simple (conn, req, NBD_SUCCESS);
  else
    queue_reply (conn, reply_error (req, conn->structured, errno,
                                    strerror (errno)));
  __atomic_fetch_add (&conn->exp->fastpath_writes, 1, __ATOMIC_RELAXED);
  return true;
}

/* A WRITE whose payload arrived in its own buffer (read_cb). */
static bool
write_fast_path (struct connection *conn, struct request *req)
{
  if (!write_on_loop (conn, req, req->buf))
    return false;
  request_free (req);
  return true;
}

/* A WRITE whose whole payload is in the input buffer is taken from
 * there: no request to allocate, no copy but the one into the cache.
 * Returns true if it was (the payload is then consumed).
 */
static bool
write_in_place (struct connection *conn, const struct request *req)
{
  if (req->count > conn->in_end - conn->in_start
      || !write_on_loop (conn, req, conn->inbuf + conn->in_start))
    return false;
  conn->in_start += req->count;
  conn->wrote = true;
  return true;
}

static void
submit (struct connection *conn, struct request *req)
{
  if (req->type == NBD_CMD_WRITE || req->type == NBD_CMD_WRITE_ZEROES
      || req->type == NBD_CMD_TRIM)
    conn->wrote = true;
  if (req->type == NBD_CMD_WRITE && req->count <= FASTPATH_MAX
      && write_fast_path (conn, req))
    return;
  lock_or_abort (&conn->lock);
  conn->inflight++;
  conn_hold_locked (conn, req->acct);
  unlock_or_abort (&conn->lock);
  __atomic_fetch_add (&conn->exp->worker_requests, 1, __ATOMIC_RELAXED);
  req->job.run = request_run;
  workers_submit (&req->job);
}

/* A READ of FASTPATH_PIN_MIN to FASTPATH_MAX bytes that the cache
 * holds entirely: its reply points into the cache's blocks, which stay
 * pinned until it is sent.  No copy, no handoff.  Returns true if it
 * was answered; false if a worker must read it (a miss, or the cache
 * has too much pinned already).
 */
static bool
read_pinned (struct connection *conn, struct request *req)
{
  size_t pins = CACHE_PINS_FOR ((uint64_t) req->count, req->offset);
  struct outmsg *msg;
  size_t niov, npins;

  msg = reply_read_pinned (req, conn->structured, pins);
  if (msg == NULL)
    return false;               /* the worker path reports ENOMEM */
  if (cache_read_pinned (conn->exp->ce, req->count, req->offset,
                         msg->iov + msg->niov, msg->max_iov - msg->niov,
                         &niov, msg->pins, &npins) != 1) {
    outmsg_free (msg);
    return false;
  }
  msg->niov += niov;
  msg->npins = npins;
  msg->acct = req->count;
  __atomic_fetch_add (&conn->exp->fastpath_reads, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add (&conn->exp->zero_copy_reads, 1, __ATOMIC_RELAXED);
  conn_queue (conn, msg);
  return true;
}

/* A READ of at most FASTPATH_MAX bytes, answered here if the cache
 * holds it: a large one by read_pinned, a smaller one copied into the
 * batch (a copy of a few KiB costs less than pinning).  Returns true
 * if the read was answered here (a hit, or an error); false if a
 * worker must do it.
 */
static bool
read_fast_path (struct connection *conn, struct request *req)
{
  size_t hdr = reply_read_header_size (req, conn->structured);
  char *p;
  int r;

  if (req->count >= FASTPATH_PIN_MIN)
    return read_pinned (conn, req);
  p = batch_put (conn, hdr + req->count, req->count);
  if (p == NULL)
    return false;               /* the worker path reports ENOMEM */
  r = cache_read_nowait (conn->exp->ce, p + hdr, req->count, req->offset);
  if (r != 1) {
    batch_unput (conn, hdr + req->count, req->count);
    if (r == 0)
      return false;
    queue_reply (conn, reply_error (req, conn->structured, errno,
                                    strerror (errno)));
    return true;
  }
  reply_read_header (p, req, conn->structured);
  __atomic_fetch_add (&conn->exp->fastpath_reads, 1, __ATOMIC_RELAXED);
  return true;
}

void
request_payload_done (struct connection *conn)
{
  struct request *req = conn->rx_req;

  conn->rx_req = NULL;
  conn->rx_got = 0;
  submit (conn, req);
  conn_flush (conn);            /* a reply from the fast path */
}

static bool
over_limits (struct connection *conn)
{
  bool over;
  uint64_t held;

  lock_or_abort (&conn->lock);
  over = !conn_under_limits_locked (conn);
  if (over)
    conn->read_paused = true;
  held = conn->buffered;
  unlock_or_abort (&conn->lock);
  if (over) {
    ev_io_stop (conn->loop->ev, &conn->rw);
    conn_debug (conn, "over the limits (holding %" PRIu64 " bytes, all "
                "connections %" PRIu64 "): reading paused", held,
                conn_total_held ());
  }
  return over;
}

static int
decode_requests (struct connection *conn)
{
  while (conn->phase == PHASE_TRANSMISSION) {
    size_t avail = conn->in_end - conn->in_start;
    struct request r = { .conn = conn }, *req;
    char what[160];
    int err, hlen;

    /* The rest of a refused request's payload. */
    if (conn->discard) {
      size_t n = avail < conn->discard ? avail : conn->discard;
      conn->in_start += n;
      conn->discard -= n;
      if (conn->discard)
        return 0;
      continue;
    }
    if (conn->rx_req)
      return 0;
    hlen = parse_header (conn, &r);
    if (hlen <= 0)
      return hlen;
    if (over_limits (conn))
      return 0;
    if (log_verbose > 1)
      conn_debug (conn, "%s flags 0x%x offset %" PRIu64 " count %" PRIu64,
                  command_name (r.type), r.flags, r.offset, r.count);

    /* With extended headers a WRITE's length is its payload's, with or
     * without PAYLOAD_LEN (which the protocol asks for, but qemu 10, for
     * one, does not send, and qemu's own server does not require).
     */
    if (conn->extended
        && ((r.flags & NBD_CMD_FLAG_PAYLOAD_LEN) || r.type == NBD_CMD_WRITE)) {
      /* Longer than any payload we take: the protocol says hang up,
       * since skipping it could take forever.
       */
      if (r.count > MAX_REQUEST_SIZE) {
        conn->in_start += hlen;
        snprintf (what, sizeof what, "%s with a payload of %" PRIu64
                  " bytes (at most %d)", command_name (r.type), r.count,
                  MAX_REQUEST_SIZE);
        log_warning ("conn %" PRIu64 " (%s): invalid request: %s: closing "
                     "the connection", conn->id, conn->peer, what);
        queue_reply (conn, reply_error (&r, true, EINVAL, what));
        conn_finish (conn, "request payload too large");
        return 0;
      }
      if (r.type != NBD_CMD_WRITE) {
        err = take_payload (conn, &r, hlen, what, sizeof what);
        if (err == 1)
          return 0;
        if (err) {
          queue_reply (conn, reply_error (&r, true, err, what));
          continue;
        }
        hlen = 0;               /* consumed with the payload */
      }
    }
    conn->in_start += hlen;

    if (r.type == NBD_CMD_DISC) {
      conn_finish (conn, "client sent NBD_CMD_DISC");
      return 0;
    }
    err = validate_request (conn, &r, what, sizeof what);
    if (err) {
      queue_reply (conn, reply_error (&r, conn->structured, err, what));
      if (r.type == NBD_CMD_WRITE)
        conn->discard = r.count;
      continue;
    }
    /* Zero-length requests are valid and do nothing. */
    if (r.count == 0 && r.type != NBD_CMD_FLUSH) {
      queue_reply (conn, r.type == NBD_CMD_READ
                   ? reply_read_data (&r, conn->structured, NULL)
                   : reply_ok (&r));
      continue;
    }
    /* The hot paths: a read the cache holds, a write it can take at
     * once, answered here.
     */
    if (r.type == NBD_CMD_READ && r.count <= FASTPATH_MAX
        && read_fast_path (conn, &r))
      continue;
    if (r.type == NBD_CMD_WRITE && r.count <= FASTPATH_MAX
        && write_in_place (conn, &r))
      continue;

    /* Everything else goes to a worker, in a request of its own. */
    req = malloc (sizeof *req);
    if (req == NULL) {
      outmsg_free (r.msg);
      return -1;
    }
    *req = r;
    /* A large structured read reports holes (a worker looks for
     * them), unless the host file has none.
     */
    if (req->type == NBD_CMD_READ && req->count <= FASTPATH_MAX
        && request_host_io_threads
        && (!conn->structured || (req->flags & NBD_CMD_FLAG_DF)
            || req->count < SPARSE_READ_MIN
            || (conn->exp->dev && device_is_dense (conn->exp->dev)))
        && read_one_hop (conn, req))
      continue;
    if (req->type == NBD_CMD_READ) {
      req->acct = req->count;
      if (req->msg == NULL && req->count > FASTPATH_MAX
          && (req->buf = malloc (req->count)) == NULL) {
        queue_reply (conn, reply_error (req, conn->structured, ENOMEM,
                                        "out of memory"));
        request_free (req);
        continue;
      }
    }
    else if (req->type == NBD_CMD_WRITE) {
      size_t n = conn->in_end - conn->in_start;

      req->acct = req->count;
      req->buf = malloc (req->count);
      if (req->buf == NULL) {
        queue_reply (conn, reply_error (req, conn->structured, ENOMEM,
                                        "out of memory"));
        conn->discard = req->count;
        request_free (req);
        continue;
      }
      if (n > req->count)
        n = req->count;
      memcpy (req->buf, conn->inbuf + conn->in_start, n);
      conn->in_start += n;
      if (n < req->count) {
        /* The rest is read straight into the buffer (read_cb). */
        conn->rx_req = req;
        conn->rx_got = n;
        return 0;
      }
    }
    submit (conn, req);
  }
  return 0;
}

/* Decode what the loop has buffered; the replies answered here leave
 * together at the end.
 */
int
request_input (struct connection *conn)
{
  int r = decode_requests (conn);

  uring_kick (conn->loop);
  conn_flush (conn);
  return r;
}

/* connection.c drives the phase through this table, never naming
 * request.c; the handshake installs it when it ends (GO or
 * EXPORT_NAME).  conn_free: a WRITE whose payload was arriving, and
 * the metadata contexts the handshake selected.
 */
static void
transmission_free (struct connection *conn)
{
  if (conn->rx_req)
    request_free (conn->rx_req);
  conn->rx_req = NULL;
  meta_clear (conn);
}

const struct phase_ops transmission_phase = {
  .name = "transmission",
  .input = request_input,
  .payload_done = request_payload_done,
  .free = transmission_free,
};
