/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: host reads of cache misses through io_uring.
 *
 * A READ the cache does not hold is a few host reads straight into
 * cache blocks (cache_read_start, cache_io_reads).  Each loop has a
 * ring of its own: the loop queues those reads while it decodes a
 * round of input, submits them with one io_uring_enter at the end of
 * the round, and completes the reads that are done at once (data in
 * the page cache) in the same breath, their replies leaving with the
 * hits of the round.  Reads that wait for a disk complete later: the
 * ring signals an eventfd that the loop watches.  No thread is
 * involved and nothing is locked but the cache's shards: a miss costs
 * a hit plus the host read.
 *
 * Where io_uring is missing (not built in, refused by the kernel or a
 * seccomp policy, ring full) the request goes to an I/O thread
 * instead (request.c).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#ifdef HAVE_LIBURING

#include <sys/eventfd.h>
#include <liburing.h>

#define RING_ENTRIES 256
#define TOUCHED_MAX 64

struct uring {
  struct io_uring ring;
  int efd;                      /* signalled on completions */
  ev_io watcher;                /* on efd */
  unsigned inflight;            /* reads submitted or queued */
  unsigned queued;              /* prepared, not yet submitted */
  /* Connections with replies queued by this round of completions. */
  struct connection *touched[TOUCHED_MAX];
  unsigned ntouched;
};

static void
flush_touched (struct uring *u)
{
  for (unsigned i = 0; i < u->ntouched; i++)
    conn_flush (u->touched[i]);
  u->ntouched = 0;
}

static void
touch (struct uring *u, struct connection *conn)
{
  for (unsigned i = 0; i < u->ntouched; i++)
    if (u->touched[i] == conn)
      return;
  if (u->ntouched == TOUCHED_MAX)
    flush_touched (u);
  u->touched[u->ntouched++] = conn;
}

/* Queue op's SQE; link: the next SQE waits for this one. */
static bool
prep_op (struct uring *u, struct uring_op *op, bool link)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe (&u->ring);
  struct export *exp = op->req->conn->exp;
  int fd = exp->uring_fd;

  if (sqe == NULL)
    return false;
  switch (op->kind) {
  case URING_READ:
    fd = device_direct_fd (exp->dev, op->iov, op->niov, op->offset);
    io_uring_prep_readv (sqe, fd, op->iov, op->niov, op->offset);
    break;
  case URING_WRITE:
    fd = device_direct_fd (exp->dev, op->iov, op->niov, op->offset);
    io_uring_prep_writev (sqe, fd, op->iov, op->niov, op->offset);
    break;
  case URING_SYNC:
    io_uring_prep_fsync (sqe, fd, IORING_FSYNC_DATASYNC);
    break;
  case URING_NOP:
    io_uring_prep_nop (sqe);
    break;
  }
  if (link)
    sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data (sqe, op);
  u->queued++;
  return true;
}

static size_t
op_bytes (const struct uring_op *op)
{
  size_t n = 0;

  for (unsigned i = 0; i < op->niov; i++)
    n += op->iov[i].iov_len;
  return n;
}

/* A read came back with res bytes (or -errno).  Returns true if it is
 * finished, false if the rest was queued again.
 */
static bool
read_back (struct uring *u, struct uring_op *op, int res)
{
  struct request *req = op->req;
  size_t left = op_bytes (op), r;

  if (res == -EINTR || res == -EAGAIN)
    res = 0;                    /* nothing read: again */
  else if (res < 0 || (res == 0 && left > 0)) {
    /* res 0: the host file is shorter than it was. */
    if (req->host_err == 0)
      req->host_err = res < 0 ? -res : EIO;
    return true;
  }
  if ((size_t) res >= left)
    return true;
  /* A short read: carry on from where it stopped. */
  r = res;
  op->offset += r;
  while (r >= op->iov->iov_len) {
    r -= op->iov->iov_len;
    op->iov++;
    op->niov--;
  }
  op->iov->iov_base = (char *) op->iov->iov_base + r;
  op->iov->iov_len -= r;
  if (prep_op (u, op, false))
    return false;
  /* The ring is full of fresh requests: submit them, then retry. */
  io_uring_submit (&u->ring);
  u->queued = 0;
  if (prep_op (u, op, false))
    return false;
  if (req->host_err == 0)
    req->host_err = EAGAIN;
  return true;
}

/* One operation came back with res (bytes, or -errno). */
static void
op_back (struct uring *u, struct uring_op *op, int res)
{
  struct request *req = op->req;

  switch (op->kind) {
  case URING_READ:
    if (!read_back (u, op, res))
      return;
    break;
  case URING_WRITE:
    /* Anything but all of it: an I/O thread writes it again. */
    if (res < 0 || (size_t) res != op_bytes (op))
      req->write_failed = true;
    break;
  case URING_SYNC:
    if (res < 0 && res != -ECANCELED && req->sync_err == 0)
      req->sync_err = -res;
    break;
  case URING_NOP:
    break;
  }
  u->inflight--;
  if (--req->host_ops == 0) {
    struct connection *conn = req->conn;

    if (req->writing) {
      device_outside_write_end (req->writing);
      req->writing = NULL;
    }
    if (req->type == NBD_CMD_READ)
      request_reads_done (req);
    else
      request_writes_done (req);
    touch (u, conn);
  }
}

/* Complete everything the ring has completed. */
static void
reap (struct uring *u)
{
  struct io_uring_cqe *cqe;

  while (io_uring_peek_cqe (&u->ring, &cqe) == 0) {
    struct uring_op *op = io_uring_cqe_get_data (cqe);
    int res = cqe->res;

    io_uring_cqe_seen (&u->ring, cqe);
    op_back (u, op, res);
  }
  flush_touched (u);
}

static void
efd_cb (struct ev_loop *ev, ev_io *w, int revents)
{
  struct loop *loop = w->data;
  uint64_t n;

  (void) ev;
  (void) revents;
  if (read (loop->uring->efd, &n, sizeof n) == -1 && errno != EAGAIN)
    log_debug ("loop %u: reading the io_uring eventfd: %m", loop->index);
  uring_kick (loop);
}

void
uring_init (struct loop *loop)
{
  struct uring *u = calloc (1, sizeof *u);
  int r;

  loop->uring = NULL;
  if (u == NULL)
    return;
  r = io_uring_queue_init (RING_ENTRIES, &u->ring, IORING_SETUP_COOP_TASKRUN);
  if (r == -EINVAL)             /* kernels before 5.19 */
    r = io_uring_queue_init (RING_ENTRIES, &u->ring, 0);
  if (r < 0) {
    if (loop->index == 0)
      log_info ("io_uring: %s: host reads go through the I/O threads",
                strerror (-r));
    free (u);
    return;
  }
  u->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (u->efd == -1 || io_uring_register_eventfd (&u->ring, u->efd) < 0) {
    if (loop->index == 0)
      log_info ("io_uring: no completion eventfd: host reads go through "
                "the I/O threads");
    if (u->efd >= 0)
      close (u->efd);
    io_uring_queue_exit (&u->ring);
    free (u);
    return;
  }
  ev_io_init (&u->watcher, efd_cb, u->efd, EV_READ);
  u->watcher.data = loop;
  ev_io_start (loop->ev, &u->watcher);
  loop->uring = u;
  if (loop->index == 0)
    log_debug ("io_uring: one ring of %d entries per loop", RING_ENTRIES);
}

void
uring_free (struct loop *loop)
{
  struct uring *u = loop->uring;

  if (u == NULL)
    return;
  /* Loops end with no connection left, so nothing is in flight. */
  ev_io_stop (loop->ev, &u->watcher);
  io_uring_queue_exit (&u->ring);
  close (u->efd);
  free (u);
  loop->uring = NULL;
}

/* Queue req's operations (ops[0, n), linked in a chain if link). */
static void
issue (struct uring *u, struct request *req, unsigned n, bool link)
{
  req->host_ops = n;
  req->host_err = 0;
  req->write_failed = false;
  req->sync_err = 0;
  for (unsigned i = 0; i < n; i++)
    prep_op (u, &req->ops[i], link && i + 1 < n);   /* room was checked */
  u->inflight += n;
}

static bool
has_room (struct uring *u, unsigned n)
{
  return u->inflight + n <= RING_ENTRIES
    && io_uring_sq_space_left (&u->ring) >= n;
}

bool
uring_read (struct loop *loop, struct request *req)
{
  struct uring *u = loop->uring;
  struct cache_host_read hr[URING_MAX_IO];
  unsigned n;

  if (u == NULL || req->conn->exp->uring_fd < 0)
    return false;
  n = cache_io_reads (req->io, hr, URING_MAX_IO);
  if (n == 0 || !has_room (u, n))
    return false;
  for (unsigned i = 0; i < n; i++)
    req->ops[i] = (struct uring_op) {
      .req = req, .kind = URING_READ, .offset = hr[i].offset,
      .iov = hr[i].iov, .niov = hr[i].niov,
    };
  issue (u, req, n, false);
  __atomic_fetch_add (&req->conn->exp->uring_reads, 1, __ATOMIC_RELAXED);
  return true;
}

bool
uring_write (struct loop *loop, struct request *req)
{
  struct uring *u = loop->uring;
  struct cache_host_read hw[URING_MAX_IO];
  bool sync;
  int n;
  unsigned nops;

  if (u == NULL || req->conn->exp->uring_fd < 0)
    return false;
  n = cache_io_writes (req->io, hw, URING_MAX_IO, &sync);
  if (n < 0)
    return false;
  nops = n + sync;
  if (nops == 0)
    nops = 1;                   /* nothing left to do: a NOP replies */
  if (!has_room (u, nops)) {
    cache_io_writes_done (req->io, false, 0);   /* gives the blocks back */
    return false;
  }
  for (int i = 0; i < n; i++)
    req->ops[i] = (struct uring_op) {
      .req = req, .kind = URING_WRITE, .offset = hw[i].offset,
      .iov = hw[i].iov, .niov = hw[i].niov,
    };
  if (sync)
    req->ops[n] = (struct uring_op) { .req = req, .kind = URING_SYNC };
  else if (n == 0)
    req->ops[0] = (struct uring_op) { .req = req, .kind = URING_NOP };
  /* The file's mtime changes: let the device know it is us. */
  req->writing = n > 0 ? req->conn->exp->dev : NULL;
  if (req->writing)
    device_outside_write_begin (req->writing);
  /* Linked: the sync starts once every write is done, and is
   * cancelled if one fails.
   */
  issue (u, req, nops, true);
  __atomic_fetch_add (&req->conn->exp->uring_writes, 1, __ATOMIC_RELAXED);
  return true;
}

void
uring_kick (struct loop *loop)
{
  struct uring *u = loop->uring;

  if (u == NULL || u->inflight == 0)
    return;
  if (u->queued) {
    int r = io_uring_submit (&u->ring);
    if (r < 0)
      log_error ("io_uring_submit: %s", strerror (-r));
    else
      u->queued = 0;
  }
  reap (u);
}

#else /* !HAVE_LIBURING */

void
uring_init (struct loop *loop)
{
  loop->uring = NULL;
}

void
uring_free (struct loop *loop)
{
  (void) loop;
}

bool
uring_read (struct loop *loop, struct request *req)
{
  (void) loop;
  (void) req;
  return false;
}

bool
uring_write (struct loop *loop, struct request *req)
{
  (void) loop;
  (void) req;
  return false;
}

void
uring_kick (struct loop *loop)
{
  (void) loop;
}

#endif /* !HAVE_LIBURING */
