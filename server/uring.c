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
 * Durable writes are written back from the blocks, then made durable
 * by group commit: an fdatasync started after a request's writes
 * completed covers them, so the requests whose writes complete while
 * one is in flight wait together for the next, and a queue of 32
 * durable writes costs a few fdatasyncs, not 32 (each of which the
 * kernel hands to a worker thread of its own).
 *
 * Where io_uring is missing (not built in, refused by the kernel or a
 * seccomp policy, ring full) the request goes to an I/O thread
 * instead (request.c).  The cache's part after the host I/O, and the
 * reply, are request-work.c's (request_reads_done,
 * request_writes_done).
 */
#include <config.h>

#include <errno.h>
#include <stddef.h>
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
#define SYNC_GROUPS 8           /* files with a group commit under way */

/* Group commit for one host file: requests whose writes are complete
 * and that wait for an fdatasync.  running: covered by the one in
 * flight; waiting: completed their writes after it started, so they
 * wait for the next, started as soon as that one is back.
 */
struct sync_group {
  int fd;                       /* -1: free */
  struct export *exp;           /* whose file fd is */
  bool inflight;
  struct request *running, *waiting;
  struct uring_op op;           /* the fdatasync (op.req NULL) */
};

struct uring {
  struct io_uring ring;
  int efd;                      /* signalled on completions */
  ev_io watcher;                /* on efd */
  unsigned inflight;            /* reads submitted or queued */
  unsigned queued;              /* prepared, not yet submitted */
  /* Connections with replies queued by this round of completions. */
  struct connection *touched[TOUCHED_MAX];
  unsigned ntouched;
  struct sync_group groups[SYNC_GROUPS];
};

static struct sync_group *
group_of_op (struct uring_op *op)
{
  return (struct sync_group *) ((char *) op - offsetof (struct sync_group, op));
}

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
  struct export *exp = op->req ? op->req->conn->exp : NULL;
  int fd = exp ? exp->uring_fd : group_of_op (op)->fd;

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
  case URING_GROUP_SYNC:
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

static void group_back (struct uring *u, struct sync_group *g, int res);
static void group_join (struct uring *u, struct request *req);

/* One operation came back with res (bytes, or -errno). */
static void
op_back (struct uring *u, struct uring_op *op, int res)
{
  struct request *req = op->req;

  if (op->kind == URING_GROUP_SYNC) {
    u->inflight--;
    group_back (u, group_of_op (op), res);
    return;
  }
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
  case URING_GROUP_SYNC:
    break;
  }
  u->inflight--;
  if (--req->host_ops == 0) {
    struct connection *conn = req->conn;

    if (req->writing) {
      device_outside_write_end (req->writing);
      req->writing = NULL;
    }
    if (req->group_sync && !req->write_failed) {
      group_join (u, req);      /* durable once a later fdatasync is back */
      return;
    }
    if (req->type == NBD_CMD_READ)
      request_reads_done (req);
    else
      request_writes_done (req);
    touch (u, conn);
  }
}

/* Start the group's fdatasync for the requests in running. */
static void
group_start (struct uring *u, struct sync_group *g)
{
  g->op = (struct uring_op) { .req = NULL, .kind = URING_GROUP_SYNC };
  g->inflight = true;
  __atomic_fetch_add (&g->exp->uring_syncs, 1, __ATOMIC_RELAXED);
  u->inflight++;
  if (prep_op (u, &g->op, false))
    return;
  /* The submission queue is full of fresh requests: submit them. */
  io_uring_submit (&u->ring);
  u->queued = 0;
  if (prep_op (u, &g->op, false))
    return;
  /* Cannot happen with the room uring_write keeps; but if it did, the
   * data must still be made durable before the replies.
   */
  u->inflight--;
  group_back (u, g, fdatasync (g->fd) == -1 ? -errno : 0);
}

/* req's writes are complete: it is durable after an fdatasync that
 * starts from now on.
 */
static void
group_join (struct uring *u, struct request *req)
{
  int fd = req->conn->exp->uring_fd;
  struct sync_group *g = NULL;
  struct connection *conn;

  for (unsigned i = 0; i < SYNC_GROUPS; i++)
    if (u->groups[i].fd == fd) {
      g = &u->groups[i];
      break;
    }
  for (unsigned i = 0; g == NULL && i < SYNC_GROUPS; i++)
    if (u->groups[i].fd == -1) {
      g = &u->groups[i];
      g->fd = fd;
      g->exp = req->conn->exp;
    }
  if (g == NULL) {
    /* More files than groups: an fdatasync of its own. */
    req->group_sync = false;
    req->ops[0] = (struct uring_op) { .req = req, .kind = URING_SYNC };
    req->host_ops = 1;
    u->inflight++;
    __atomic_fetch_add (&req->conn->exp->uring_syncs, 1, __ATOMIC_RELAXED);
    if (prep_op (u, &req->ops[0], false))
      return;
    u->inflight--;
    req->host_ops = 0;
    req->sync_err = fdatasync (fd) == -1 ? errno : 0;
    conn = req->conn;
    request_writes_done (req);
    touch (u, conn);
    return;
  }
  req->sync_next = NULL;
  if (g->inflight) {
    req->sync_next = g->waiting;
    g->waiting = req;
  }
  else {
    g->running = req;
    group_start (u, g);
  }
}

/* The group's fdatasync came back: its requests are durable (or get
 * its error); those that waited get the next one.
 */
static void
group_back (struct uring *u, struct sync_group *g, int res)
{
  struct request *req = g->running, *next;

  g->running = NULL;
  g->inflight = false;
  for (; req; req = next) {
    struct connection *conn = req->conn;

    next = req->sync_next;
    req->sync_err = res < 0 && res != -ECANCELED ? -res : 0;
    request_writes_done (req);
    touch (u, conn);
  }
  if (g->waiting) {
    g->running = g->waiting;
    g->waiting = NULL;
    group_start (u, g);
  }
  else
    g->fd = -1;
}

/* Submit what is queued (0, or -1 after logging the error). */
static int
submit (struct uring *u)
{
  int r;

  if (u->queued == 0)
    return 0;
  r = io_uring_submit (&u->ring);
  if (r < 0) {
    log_error ("io_uring_submit: %s", strerror (-r));
    return -1;
  }
  u->queued = 0;
  return 0;
}

/* Complete everything the ring has completed.  Completions queue new
 * operations (the rest of a short read, a group's next fdatasync):
 * they are submitted here, not left for the next round of input, which
 * may never come while the client waits for them.
 */
static void
reap (struct uring *u)
{
  struct io_uring_cqe *cqe;

  do {
    while (io_uring_peek_cqe (&u->ring, &cqe) == 0) {
      struct uring_op *op = io_uring_cqe_get_data (cqe);
      int res = cqe->res;

      io_uring_cqe_seen (&u->ring, cqe);
      op_back (u, op, res);
    }
  } while (u->queued && submit (u) == 0);
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
  for (unsigned i = 0; i < SYNC_GROUPS; i++)
    u->groups[i].fd = -1;
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
  req->group_sync = false;
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
  /* The writes (or a NOP if there is none), then, once they are all
   * back, the group's fdatasync: room for it is kept too.
   */
  nops = n > 0 ? (unsigned) n : 1;
  if (!has_room (u, nops + sync)) {
    cache_io_writes_done (req->io, false, 0);   /* gives the blocks back */
    return false;
  }
  for (int i = 0; i < n; i++)
    req->ops[i] = (struct uring_op) {
      .req = req, .kind = URING_WRITE, .offset = hw[i].offset,
      .iov = hw[i].iov, .niov = hw[i].niov,
    };
  if (n == 0)
    req->ops[0] = (struct uring_op) { .req = req, .kind = URING_NOP };
  /* The file's mtime changes: let the device know it is us. */
  req->writing = n > 0 ? req->conn->exp->dev : NULL;
  if (req->writing)
    device_outside_write_begin (req->writing);
  issue (u, req, nops, false);
  req->group_sync = sync;
  __atomic_fetch_add (&req->conn->exp->uring_writes, 1, __ATOMIC_RELAXED);
  return true;
}

void
uring_kick (struct loop *loop)
{
  struct uring *u = loop->uring;

  if (u == NULL || u->inflight == 0)
    return;
  submit (u);
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
