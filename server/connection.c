/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: one client connection.
 *
 * A connection belongs to one loop thread, which owns its socket
 * watchers, its input and its protocol state.  Bytes move through the
 * connection's transport_ops (transport.c, tls.c) and the input goes
 * to its phase_ops: the handshake's (handshake.c), then
 * transmission's (request.c); this file calls neither directly.
 * Workers touch only the output queue and the counters under
 * conn->lock (output.c, request-done.c): a finished request's reply is
 * appended and, the queue being empty, written at once from the worker
 * (the transport allows it for plain sockets), so a reply normally
 * costs no trip back through the loop.  Whatever a
 * worker cannot finish (a full socket, a paused reader to resume, a
 * dead socket, the last request of a closing connection) it leaves to
 * the loop via loop_attention, which calls conn_check.
 *
 * Life cycle: HANDSHAKE -> TRANSMISSION -> FINISHING (no more input:
 * DISC, client EOF, shutdown; the replies still go out) or DEAD (the
 * socket failed or the client misbehaved; replies are dropped).  Only
 * conn_check frees a connection, and only once no request is at a
 * worker, so workers never see a freed connection.
 *
 * Memory is bounded per connection: reading stops while more than
 * CONN_MAX_INFLIGHT requests are at workers or CONN_MAX_BUFFERED bytes
 * (payloads, read data, queued replies) are held, and resumes below.
 * A client that stops reading replies is dropped after --stall-timeout.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

static uint64_t next_id;                /* atomic */
static unsigned open_connections;       /* atomic */

uint64_t
nr_connections_total (void)
{
  return __atomic_load_n (&next_id, __ATOMIC_RELAXED);
}

unsigned
nr_connections_now (void)
{
  return __atomic_load_n (&open_connections, __ATOMIC_RELAXED);
}

/* A TCP client: no Nagle delay, and the --stall-timeout bound also for
 * a peer whose host stops answering (it crashed or lost its network:
 * no FIN or RST ever comes).  Keepalive probes start after that much
 * silence, and TCP_USER_TIMEOUT gives up on unanswered probes and on
 * unacknowledged replies after it; the read then fails with ETIMEDOUT.
 * A live peer answers the probes, however long it stays idle.  An
 * option the socket refuses is logged; the client is served anyway.
 */
static void
tcp_option (struct connection *conn, int level, int name, const char *what,
            const void *val, socklen_t len)
{
  if (setsockopt (conn->fd, level, name, val, len) == -1)
    log_warning ("conn %" PRIu64 " (%s): setsockopt %s: %m", conn->id,
                 conn->peer, what);
}

static void
tcp_options (struct connection *conn)
{
  int one = 1;
  int secs = opt.stall_timeout < 1 ? 1 : (int) opt.stall_timeout;
  int intvl = secs / 4 > 0 ? secs / 4 : 1;
  int count = 4;
  unsigned user_ms = (unsigned) (opt.stall_timeout * 1000);

  tcp_option (conn, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY",
              &one, sizeof one);
  tcp_option (conn, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE",
              &one, sizeof one);
  tcp_option (conn, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE",
              &secs, sizeof secs);
  tcp_option (conn, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL",
              &intvl, sizeof intvl);
  tcp_option (conn, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT",
              &count, sizeof count);
  tcp_option (conn, IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT",
              &user_ms, sizeof user_ms);
}

static void
describe_peer (struct connection *conn)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";

  if (getpeername (conn->fd, (struct sockaddr *) &ss, &len) == -1) {
    snprintf (conn->peer, sizeof conn->peer, "unknown peer");
    return;
  }
  switch (ss.ss_family) {
  case AF_INET: {
    struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
    inet_ntop (AF_INET, &sin->sin_addr, host, sizeof host);
    snprintf (conn->peer, sizeof conn->peer, "%s:%d", host,
              ntohs (sin->sin_port));
    tcp_options (conn);
    break;
  }
  case AF_INET6: {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
    inet_ntop (AF_INET6, &sin6->sin6_addr, host, sizeof host);
    snprintf (conn->peer, sizeof conn->peer, "[%s]:%d", host,
              ntohs (sin6->sin6_port));
    tcp_options (conn);
    break;
  }
  case AF_UNIX: {
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt (conn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
      snprintf (conn->peer, sizeof conn->peer, "unix socket, pid %ld uid %ld",
                (long) cred.pid, (long) cred.uid);
    else
      snprintf (conn->peer, sizeof conn->peer, "unix socket");
    break;
  }
  default:
    snprintf (conn->peer, sizeof conn->peer, "family %d", ss.ss_family);
  }
}

/* ---- loop thread ---- */

void
conn_finish (struct connection *conn, const char *why)
{
  if (conn->phase >= PHASE_FINISHING)
    return;
  conn_debug (conn, "finishing: %s", why);
  conn->phase = PHASE_FINISHING;
  ev_io_stop (conn->loop->ev, &conn->rw);
  if (ev_is_active (&conn->timer) && !ev_is_active (&conn->ww))
    ev_timer_stop (conn->loop->ev, &conn->timer);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conn->lock);
  conn->phase_closing = true;
}

/* Once clients that held much have gone, give the freed memory back
 * to the system: glibc keeps freed heap memory (replies and payloads
 * of a megabyte and more) for reuse otherwise.  At most once a second,
 * when little is held.
 */
static void
give_memory_back (void)
{
  static uint64_t last_ms;              /* loop threads: atomic */
  uint64_t now = (uint64_t) (ev_time () * 1000), then;

  if (conn_total_held () > MALLOC_TRIM_BELOW)
    return;
  then = __atomic_load_n (&last_ms, __ATOMIC_RELAXED);
  if (now - then < 1000 ||
      !__atomic_compare_exchange_n (&last_ms, &then, now, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    return;
  malloc_trim (0);
}

void
conn_kill (struct connection *conn, const char *why)
{
  if (conn->phase == PHASE_DEAD)
    return;
  conn_debug (conn, "closing: %s", why);
  conn->phase = PHASE_DEAD;
  ev_io_stop (conn->loop->ev, &conn->rw);
  ev_io_stop (conn->loop->ev, &conn->ww);
  ev_timer_stop (conn->loop->ev, &conn->timer);
  conn->ops->shutdown (conn);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conn->lock);
  conn->dead = true;
  conn->phase_closing = true;
  conn_drop_output_locked (conn);
}

void
conn_enter_transmission (struct connection *conn,
                         const struct phase_ops *transmission)
{
  ev_timer_stop (conn->loop->ev, &conn->timer);
  conn->phase = PHASE_TRANSMISSION;
  conn->phase_ops = transmission;
  admission_leave (conn);
}

void
conn_free (struct connection *conn)
{
  struct loop *loop = conn->loop;

  conn_debug (conn, "closed");
  admission_leave (conn);
  ev_io_stop (loop->ev, &conn->rw);
  ev_io_stop (loop->ev, &conn->ww);
  ev_timer_stop (loop->ev, &conn->timer);
  loop_forget (loop, conn);
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    loop->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  loop->nr_conns--;

  if (conn->ops->free)
    conn->ops->free (conn);
  close (conn->fd);
  if (conn->wrote && conn->exp)
    cache_flush_soon (conn->exp->ce);
  conn_drop_output_locked (conn);
  outmsg_free (conn->batch);
  outmsg_free (conn->spare_batch);
  conn->phase_ops->free (conn);
  if (conn->buffered)                   /* not expected: keep the sum right */
    conn_hold_locked (conn, -(int64_t) conn->buffered);
  free (conn->inbuf);
  free (conn->opt_data);
  pthread_mutex_destroy (&conn->lock);
  free (conn);
  __atomic_fetch_sub (&open_connections, 1, __ATOMIC_RELAXED);
  give_memory_back ();
  loop_maybe_finish (loop);
}

/* Process buffered input in the current phase. */
static int
process_input (struct connection *conn)
{
  const struct phase_ops *phase;

  do {
    if (conn->phase != PHASE_HANDSHAKE && conn->phase != PHASE_TRANSMISSION)
      return 0;
    phase = conn->phase_ops;
    if (phase->input (conn) == -1)
      return -1;
    /* The handshake may have left requests behind it in the buffer. */
  } while (conn->phase_ops != phase);
  return 0;
}

void
conn_check (struct connection *conn)
{
  bool dead, pending, resume;
  uint32_t inflight;

  for (;;) {
    lock_or_abort (&conn->lock);
    dead = conn->dead;
    inflight = conn->inflight;
    pending = conn->out_head != NULL;
    conn->want_write = false;
    resume = conn->read_paused && conn_under_limits_locked (conn);
    if (resume && conn->phase == PHASE_TRANSMISSION)
      conn->read_paused = false;
    unlock_or_abort (&conn->lock);

    if (dead && conn->phase != PHASE_DEAD)
      conn_kill (conn, "connection lost");
    if (conn->phase == PHASE_HANDSHAKE && admission_evicted (conn))
      conn_kill (conn, "closed to make room for a newer handshake");
    if (conn->phase == PHASE_DEAD) {
      if (inflight == 0)
        conn_free (conn);
      return;
    }
    if (pending) {
      /* Replies others queued: send them now, many in one go. */
      conn_flush (conn);
      lock_or_abort (&conn->lock);
      pending = conn->out_head != NULL;
      unlock_or_abort (&conn->lock);
    }
    if (conn->phase == PHASE_FINISHING && !pending && inflight == 0) {
      conn->ops->shutdown (conn);
      conn_free (conn);
      return;
    }
    if (!resume || conn->phase != PHASE_TRANSMISSION)
      return;
    /* Under the limits again: serve what is buffered, then read. */
    if (process_input (conn) == -1) {
      conn_kill (conn, "protocol error");
      continue;
    }
    lock_or_abort (&conn->lock);
    resume = !conn->read_paused;
    unlock_or_abort (&conn->lock);
    if (resume && conn->phase == PHASE_TRANSMISSION) {
      ev_io_start (conn->loop->ev, &conn->rw);
      /* Input held inside the transport makes no socket readable. */
      if (conn->ops->pending (conn))
        ev_feed_event (conn->loop->ev, &conn->rw, EV_READ);
    }
  }
}

static void
read_cb (struct ev_loop *ev, ev_io *w, int revents)
{
  struct connection *conn = w->data;
  ssize_t r;

  if (conn->rx_req) {
    struct request *req = conn->rx_req;
    r = conn->ops->recv (conn, (char *) req->buf + conn->rx_got,
                         req->count - conn->rx_got);
    if (r > 0) {
      conn->rx_got += r;
      if (conn->rx_got == req->count)
        conn->phase_ops->payload_done (conn);
    }
  }
  else {
    if (conn->in_start > 0) {
      memmove (conn->inbuf, conn->inbuf + conn->in_start,
               conn->in_end - conn->in_start);
      conn->in_end -= conn->in_start;
      conn->in_start = 0;
    }
    if (conn->in_end == CONN_INBUF_SIZE) {
      /* Cannot happen: input is consumed or reading paused. */
      conn_kill (conn, "input buffer full");
      conn_check (conn);
      return;
    }
    r = conn->ops->recv (conn, conn->inbuf + conn->in_end,
                         CONN_INBUF_SIZE - conn->in_end);
    if (r > 0)
      conn->in_end += r;
  }

  if (r == 0) {
    if (conn->phase == PHASE_HANDSHAKE)
      conn_kill (conn, "client closed the connection during the handshake");
    else if (conn->rx_req || conn->discard
             || conn->in_end > conn->in_start)
      conn_kill (conn, "client closed the connection in the middle of "
                 "a request");
    else
      conn_finish (conn, "client closed the connection");
  }
  else if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
    if (errno == ECONNRESET)
      conn_kill (conn, "connection reset by the client");
    else if (peer_vanished (errno)) {
      log_peer_vanished (conn);
      conn_kill (conn, "timeout");
    }
    else if (errno == EPROTO)
      conn_kill (conn, "TLS error");    /* tls.c said which */
    else {
      log_warning ("conn %" PRIu64 ": read: %m", conn->id);
      conn_kill (conn, "read error");
    }
  }
  else if (r > 0 && conn->phase == PHASE_HANDSHAKE) {
    admission_note_input (conn);
    if (process_input (conn) == -1)
      conn_kill (conn, "protocol error");
  }
  else if (r > 0 && process_input (conn) == -1)
    conn_kill (conn, "protocol error");
  if (r > 0)
    loop_note_input (conn->loop);
  conn_check (conn);
}

static void
write_cb (struct ev_loop *ev, ev_io *w, int revents)
{
  struct connection *conn = w->data;
  bool empty;
  ssize_t sent;

  lock_or_abort (&conn->lock);
  sent = conn_send_locked (conn);
  empty = conn->out_head == NULL;
  unlock_or_abort (&conn->lock);
  if (empty) {
    ev_io_stop (ev, &conn->ww);
    if (conn->phase != PHASE_HANDSHAKE)
      ev_timer_stop (ev, &conn->timer);
  }
  else if (conn->phase != PHASE_HANDSHAKE && sent > 0)
    ev_timer_again (ev, &conn->timer);  /* progress: restart the clock */
  conn_check (conn);
}

static void
timer_cb (struct ev_loop *ev, ev_timer *w, int revents)
{
  struct connection *conn = w->data;

  if (conn->phase == PHASE_HANDSHAKE)
    log_warning ("conn %" PRIu64 " (%s): handshake not finished within "
                 "%g s: closing", conn->id, conn->peer, opt.timeout);
  else
    log_warning ("conn %" PRIu64 " (%s): client read no reply for %g s: "
                 "closing", conn->id, conn->peer, opt.stall_timeout);
  conn_kill (conn, "timeout");
  conn_check (conn);
}

struct connection *
conn_new (struct loop *loop, int fd, const struct phase_ops *first)
{
  struct connection *conn = calloc (1, sizeof *conn);
  unsigned open;
  int err;

  if (conn == NULL || (conn->inbuf = malloc (CONN_INBUF_SIZE)) == NULL) {
    log_error ("accepting a connection: %m");
    free (conn);
    close (fd);
    return NULL;
  }
  err = pthread_mutex_init (&conn->lock, NULL);
  if (err) {
    errno = err;
    log_error ("accepting a connection: pthread_mutex_init: %m");
    free (conn->inbuf);
    free (conn);
    close (fd);
    return NULL;
  }
  conn->loop = loop;
  conn->fd = fd;
  conn->id = __atomic_add_fetch (&next_id, 1, __ATOMIC_RELAXED);
  conn->ops = &plain_transport;
  open = __atomic_add_fetch (&open_connections, 1, __ATOMIC_RELAXED);
  conn->refused = open > opt.max_connections;
  describe_peer (conn);

  conn->next = loop->conns;
  if (loop->conns)
    loop->conns->prev = conn;
  loop->conns = conn;
  loop->nr_conns++;

  ev_io_init (&conn->rw, read_cb, fd, EV_READ);
  ev_io_init (&conn->ww, write_cb, fd, EV_WRITE);
  ev_timer_init (&conn->timer, timer_cb, opt.timeout, 0.);
  conn->rw.data = conn->ww.data = conn->timer.data = conn;
  conn->phase = PHASE_HANDSHAKE;
  conn->phase_ops = first;
  conn_debug (conn, "accepted from %s on loop %u", conn->peer, loop->index);
  if (conn->refused)
    log_warning ("conn %" PRIu64 " (%s): more than %u connections: "
                 "refusing it", conn->id, conn->peer, opt.max_connections);
  admission_enter (conn);
  ev_timer_start (loop->ev, &conn->timer);
  ev_io_start (loop->ev, &conn->rw);
  if (first->start)
    first->start (conn);
  return conn;
}
