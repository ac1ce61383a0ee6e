/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the plain socket transport.
 *
 * Connections move bytes only through a transport_ops table, so that
 * TLS (tls.c, which wants to read when the protocol wants to write,
 * and keeps decrypted bytes of its own) slots in at STARTTLS without
 * touching the handshake or request code.  Sockets are non-blocking;
 * sends never raise SIGPIPE.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <sys/socket.h>

#include "internal.h"
#include "log.h"

static ssize_t
plain_recv (struct connection *conn, void *buf, size_t len)
{
  ssize_t r;

  do
    r = recv (conn->fd, buf, len, 0);
  while (r == -1 && errno == EINTR);
  return r;
}

static ssize_t
plain_send (struct connection *conn, const struct iovec *iov, int iovcnt)
{
  struct msghdr msg = {
    .msg_iov = (struct iovec *) iov,
    .msg_iovlen = iovcnt,
  };
  ssize_t r;

  do
    r = sendmsg (conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (r == -1 && errno == EINTR);
  return r;
}

static bool
plain_pending (struct connection *conn)
{
  return false;
}

static void
plain_shutdown (struct connection *conn)
{
  shutdown (conn->fd, SHUT_RDWR);
}

const struct transport_ops plain_transport = {
  .name = "plain",
  .recv = plain_recv,
  .send = plain_send,
  .pending = plain_pending,
  .shutdown = plain_shutdown,
  .send_from_any_thread = true,
};

/* What a socket reports once connection.c's TCP options gave up on
 * the peer: the timeout, or the soft error met meanwhile (the peer's
 * address no longer resolves on the link, say).
 */
bool
peer_vanished (int err)
{
  return err == ETIMEDOUT || err == EHOSTUNREACH || err == EHOSTDOWN
    || err == ENETUNREACH;
}

void
log_peer_vanished (struct connection *conn)
{
  log_warning ("conn %" PRIu64 " (%s): the client's host stopped answering "
               "for %g s (%m; crashed or lost its network?): closing",
               conn->id, conn->peer, opt.stall_timeout);
}
