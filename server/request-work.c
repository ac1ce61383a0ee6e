/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: a request after the loop handed it off.
 *
 * What request.c hands over runs here, on a thread that may wait for
 * the host: request_run on a worker (a flush, zero, trim, prefetch,
 * block status, a sparse or large read, any request with nio=0) calls
 * the cache's blocking functions and sends the reply itself;
 * request_host_io_done on an I/O thread (request_to_iothread) does the
 * host I/O of a miss or durable write whose cache part the loop
 * already did (cache_io_run), then its reply.  A request whose host
 * I/O went through the loop's io_uring is finished here too, on the
 * loop (request_reads_done, request_writes_done, called by uring.c).
 * Every reply goes back to the connection through request-done.c.
 *
 * A structured READ is read in runs: holes travel as OFFSET_HOLE
 * chunks and are neither read nor cached.  A BLOCK_STATUS reply has
 * one chunk per selected context (base:allocation, dirty bitmaps).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#define MAX_READ_RUNS 256         /* chunks of one sparse READ */
#define MAX_DESCRIPTORS (1 << 16) /* extents of one BLOCK_STATUS reply */

bool request_host_io_threads;
bool request_noaiod;

/* ---- on a worker ---- */

struct runs_ctx {
  struct read_run runs[MAX_READ_RUNS + 1];
  size_t n;
  uint64_t end;                 /* of the request */
  uint64_t covered;             /* runs reach this far */
  bool full;
};

static int
add_read_run (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct runs_ctx *c = opaque;
  uint64_t start = offset > c->covered ? offset : c->covered;
  uint64_t end = offset + length < c->end ? offset + length : c->end;
  struct read_run *last = c->n ? &c->runs[c->n - 1] : NULL;

  if (end <= start)
    return 0;
  if (last && last->hole == hole && last->offset + last->length == start)
    last->length += end - start;
  else if (c->n == MAX_READ_RUNS) {
    c->full = true;
    errno = 0;
    return -1;
  }
  else
    c->runs[c->n++] = (struct read_run) {
      .offset = start, .length = end - start, .hole = hole
    };
  c->covered = end;
  return 0;
}

static struct outmsg *
do_read (struct request *req)
{
  struct connection *conn = req->conn;
  struct cache_export *ce = conn->exp->ce;
  struct outmsg *msg;
  void *buf;

  if (req->msg == NULL && req->buf == NULL
      && (!conn->structured || (req->flags & NBD_CMD_FLAG_DF)
          || req->count < SPARSE_READ_MIN))
    req->msg = reply_read_inline (req, conn->structured, &req->msg_data);
  if (req->msg && (!conn->structured || (req->flags & NBD_CMD_FLAG_DF)
                   || req->count < SPARSE_READ_MIN)) {
    /* A small read: straight into its reply. */
    if (cache_read (ce, req->msg_data, req->count, req->offset) == -1)
      return reply_error (req, conn->structured, errno, strerror (errno));
    msg = req->msg;
    req->msg = NULL;
    msg->acct = req->count;
    return msg;
  }
  if (req->buf == NULL) {
    outmsg_free (req->msg);
    req->msg = NULL;
    req->buf = malloc (req->count);
    if (req->buf == NULL)
      return reply_error (req, conn->structured, ENOMEM, "out of memory");
  }
  buf = req->buf;
  if (!conn->structured || (req->flags & NBD_CMD_FLAG_DF)) {
    if (cache_read (ce, buf, req->count, req->offset) == -1)
      return reply_error (req, conn->structured, errno, strerror (errno));
    msg = reply_read_data (req, conn->structured, buf);
  }
  else {
    /* Structured: holes travel as OFFSET_HOLE and are not read (nor
     * cached).  Many small extents beyond MAX_READ_RUNS are read as
     * one run of data.
     */
    CLEANUP_FREE struct runs_ctx *c = malloc (sizeof *c);

    if (c == NULL)
      return reply_error (req, true, ENOMEM, "out of memory");
    c->n = 0;
    c->end = req->offset + req->count;
    c->covered = req->offset;
    c->full = false;
    if (cache_extents (ce, req->count, req->offset, add_read_run, c) == -1
        && !c->full) {
      log_debug ("conn %" PRIu64 ": extents for a read: %m: reading it all",
                 conn->id);
      c->n = 0;
      c->covered = req->offset;
    }
    if (c->covered < c->end)
      add_read_run (c, c->covered, c->end - c->covered, false);
    if (c->covered < c->end) {    /* the run array was full */
      c->runs[c->n++] = (struct read_run) {
        .offset = c->covered, .length = c->end - c->covered, .hole = false
      };
    }
    for (size_t i = 0; i < c->n; i++) {
      struct read_run *r = &c->runs[i];
      if (!r->hole
          && cache_read (ce, (char *) buf + (r->offset - req->offset),
                         r->length, r->offset) == -1)
        return reply_error (req, true, errno, strerror (errno));
    }
    msg = reply_read_runs (req, buf, c->runs, c->n);
  }
  if (msg) {
    req->buf = NULL;            /* the message owns it now */
    msg->acct = req->count;
  }
  return msg;
}

struct status_ctx {
  struct status_extent *d;
  size_t n, cap;
  uint64_t covered, end;
  bool req_one;
  bool full;
  bool bitmap;                  /* a dirty bitmap: "hole" means clean */
};

static int
add_descriptor (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct status_ctx *c = opaque;
  uint32_t status = c->bitmap ? (hole ? 0 : NBD_STATE_DIRTY)
    : hole ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
  uint64_t start = offset > c->covered ? offset : c->covered;
  uint64_t end = offset + length < c->end ? offset + length : c->end;

  if (end <= start)
    return 0;
  /* Extents never exceed the request's count: below 2^32 bytes, as
   * 32-bit descriptors need, unless extended headers are in use.
   */
  if (c->n && c->d[c->n - 1].status == status)
    c->d[c->n - 1].length += end - start;
  else if (c->req_one && c->n == 1) {
    c->full = true;
    errno = 0;
    return -1;
  }
  else {
    if (c->n == c->cap) {
      struct status_extent *p;
      if (c->cap == MAX_DESCRIPTORS) {
        c->full = true;         /* the reply covers a prefix: allowed */
        errno = 0;
        return -1;
      }
      p = realloc (c->d, 2 * c->cap * sizeof *p);
      if (p == NULL)
        return -1;
      c->d = p;
      c->cap *= 2;
    }
    c->d[c->n++] = (struct status_extent) {
      .length = end - start, .status = status
    };
  }
  c->covered = end;
  return 0;
}

/* The extents of one context: base:allocation (name NULL) or a dirty
 * bitmap.  Returns 0, or -1 with errno.
 */
static int
context_extents (struct request *req, const char *bitmap,
                 struct status_ctx *c)
{
  struct cache_export *ce = req->conn->exp->ce;
  int r;

  *c = (struct status_ctx) {
    .cap = 64,
    .covered = req->offset,
    .end = req->offset + req->count,
    .req_one = req->flags & NBD_CMD_FLAG_REQ_ONE,
    .bitmap = bitmap != NULL,
  };
  c->d = malloc (c->cap * sizeof *c->d);
  if (c->d == NULL)
    return -1;
  r = bitmap
    ? cache_bitmap_extents (ce, bitmap, req->count, req->offset,
                            add_descriptor, c)
    : cache_extents (ce, req->count, req->offset, add_descriptor, c);
  if (r == -1 && !c->full)
    return -1;
  if (c->n == 0) {
    /* Nothing reported: "allocated" (and "dirty") is always safe. */
    c->d[0] = (struct status_extent) {
      .length = req->count, .status = bitmap ? NBD_STATE_DIRTY : 0
    };
    c->n = 1;
  }
  return 0;
}

/* One chunk per context asked for (all selected, or the payload's
 * filter), the last one flagged DONE.
 */
static struct outmsg *
do_block_status (struct request *req)
{
  struct connection *conn = req->conn;
  struct status_ctx c[1 + MAX_META_BITMAPS];
  struct status_reply parts[1 + MAX_META_BITMAPS] = { { 0 } };
  size_t n = 0;
  struct outmsg *msg = NULL;
  int err = 0;

  for (uint32_t id = BASE_ALLOCATION_ID;
       id < DIRTY_BITMAP_ID + conn->nr_meta_bitmaps; id++) {
    const char *bitmap = id >= DIRTY_BITMAP_ID
      ? conn->meta_bitmaps[id - DIRTY_BITMAP_ID] : NULL;

    if (!context_selected (conn, id)
        || (req->contexts && !(req->contexts & (UINT32_C (1) << id))))
      continue;
    if (context_extents (req, bitmap, &c[n]) == -1) {
      err = errno;
      free (c[n].d);
      break;
    }
    parts[n] = (struct status_reply) {
      .context_id = id, .d = c[n].d, .nr = c[n].n
    };
    n++;
  }
  if (err == ENOENT)
    msg = reply_error (req, true, EINVAL, "the dirty bitmap was deleted");
  else if (err)
    msg = reply_error (req, true, err, strerror (err));
  else
    msg = reply_block_status (req, parts, n);
  for (size_t i = 0; i < n; i++)
    free (c[i].d);
  return msg;
}

void
request_run (struct job *job)
{
  struct request *req = (struct request *) job;
  struct connection *conn = req->conn;
  struct cache_export *ce = conn->exp->ce;
  unsigned cf = req->flags & NBD_CMD_FLAG_FUA ? CACHE_FUA : 0;
  struct outmsg *reply = NULL;
  int r = 0;

  switch (req->type) {
  case NBD_CMD_READ:
    reply = do_read (req);
    break;
  case NBD_CMD_WRITE:
    r = cache_write (ce, req->buf, req->count, req->offset, cf);
    break;
  case NBD_CMD_FLUSH:
    r = cache_flush (ce);
    break;
  case NBD_CMD_TRIM:
    r = cache_trim (ce, req->count, req->offset, cf);
    break;
  case NBD_CMD_WRITE_ZEROES:
    if (!(req->flags & NBD_CMD_FLAG_NO_HOLE))
      cf |= CACHE_MAY_TRIM;
    if (req->flags & NBD_CMD_FLAG_FAST_ZERO)
      cf |= CACHE_FAST_ZERO;
    r = cache_zero (ce, req->count, req->offset, cf);
    break;
  case NBD_CMD_CACHE:
    r = cache_prefetch (ce, req->count, req->offset);
    break;
  case NBD_CMD_BLOCK_STATUS:
    reply = do_block_status (req);
    break;
  }
  if (r == -1) {
    int err = errno;
    conn_debug (conn, "%s: %s", command_name (req->type), strerror (err));
    reply = reply_error (req, conn->structured, err, strerror (err));
  }
  else if (reply == NULL && req->type != NBD_CMD_READ
           && req->type != NBD_CMD_BLOCK_STATUS)
    reply = reply_ok (req);
  /* A client whose reply cannot even be allocated would wait forever:
   * give up on the connection instead (conn_request_done).
   */
  conn_request_done (conn, req, reply);
}

/* ---- on an I/O thread ---- */

/* A miss or a durable write handed straight to an I/O thread: the
 * cache's host I/O (filling the missing blocks and the reply's data,
 * or writing the blocks back durably), then the reply.
 */
void
request_host_io_done (struct io_request *ioreq, int unused)
{
  struct request *req = ioreq->opaque;
  struct connection *conn = req->conn;
  struct outmsg *reply;
  struct cache_io *io = req->io;

  (void) unused;
  req->io = NULL;
  if (cache_io_run (io) == -1) {
    int err = errno;
    conn_debug (conn, "%s: %s", command_name (req->type), strerror (err));
    reply = reply_error (req, conn->structured, err, strerror (err));
  }
  else if (req->type == NBD_CMD_READ) {
    reply = req->msg;
    req->msg = NULL;
    reply->acct = req->count;
  }
  else
    reply = reply_ok (req);
  conn_request_back (conn, req, reply, request_noaiod);
}

/* Hand a request counted in flight to an I/O thread, which runs
 * request_host_io_done.
 */
void
request_to_iothread (struct request *req)
{
  req->ioreq = (struct io_request) {
    .op = IO_OP_CALL, .prio = IO_PRIO_CLIENT,
    .done = request_host_io_done, .opaque = req,
  };
  io_submit (&req->ioreq);
}

/* ---- on the loop, after its io_uring ---- */

void
request_reads_done (struct request *req)
{
  struct connection *conn = req->conn;
  struct outmsg *reply;
  struct cache_io *io = req->io;

  req->io = NULL;
  if (cache_io_finish (io, req->host_err) == -1) {
    int err = errno;
    conn_debug (conn, "NBD_CMD_READ: %s", strerror (err));
    reply = reply_error (req, conn->structured, err, strerror (err));
  }
  else {
    reply = req->msg;
    req->msg = NULL;
    reply->acct = req->count;
  }
  conn_request_back_loop (conn, req, reply);
}

void
request_writes_done (struct request *req)
{
  struct connection *conn = req->conn;
  struct outmsg *reply;
  int r = cache_io_writes_done (req->io, !req->write_failed, req->sync_err);

  if (r == 1) {
    /* Not all written: an I/O thread does it again properly, and
     * reports what goes wrong.
     */
    request_to_iothread (req);
    return;
  }
  req->io = NULL;
  if (r == -1) {
    int err = errno;
    conn_debug (conn, "NBD_CMD_WRITE: %s", strerror (err));
    reply = reply_error (req, conn->structured, err, strerror (err));
  }
  else
    reply = reply_ok (req);
  conn_request_back_loop (conn, req, reply);
}
