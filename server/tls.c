/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: TLS (OpenSSL 3) behind the transport ops table.
 *
 * Every OpenSSL type lives in this file.  The protocol code sees TLS
 * only as another transport_ops (recv, send, pending, shutdown, free),
 * installed by tls_start when a client's NBD_OPT_STARTTLS is
 * acknowledged; handshake.c then forgets everything negotiated in the
 * clear.
 *
 * The plaintext ACK to STARTTLS may still be queued when the transport
 * changes: until the client's first TLS byte arrives, send writes in
 * the clear.  A client must read the whole ACK before it starts the
 * TLS handshake, so TLS data arriving while plaintext is still queued
 * is a protocol violation (or an injection) and closes the connection.
 *
 * The TLS handshake is driven from the connection's read watcher: the
 * server only ever answers the client, so each step starts with input.
 * Non-blocking rules:
 * - OpenSSL reads the socket itself (a socket BIO with read-ahead);
 *   recv reads until the buffer is full or OpenSSL wants more input
 *   (WANT_READ: EAGAIN).  Decrypted bytes or whole records left inside
 *   OpenSSL (SSL_has_pending) make no socket readable, so recv re-arms
 *   the read watcher itself (ev_feed_event), and pending() tells
 *   connection.c to do the same when it resumes reading;
 * - OpenSSL writes into a buffer of ours (the write BIO), never the
 *   socket, so it never wants to write: the buffer goes to the socket
 *   in batches of records, from send() for replies, and after each
 *   read for handshake flights and alerts, with a watcher of its own
 *   (xw) for what the socket did not take then;
 * - send reports a byte as sent only once its record has left, so the
 *   connection's queue, its write watcher and its stall timer keep
 *   working as for plain sockets; small iovecs (reply headers, short
 *   replies) are gathered into one record;
 * - renegotiation is refused (SSL_OP_NO_RENEGOTIATION) and no
 *   post-handshake authentication is asked for, so a write never needs
 *   to read: if OpenSSL ever says so, the connection is dropped.
 * Sends happen on the loop thread only (send_from_any_thread false):
 * an SSL object is not shared between threads.
 *
 * The credentials, and the SSL_CTX each session is made from, are
 * tls-creds.c's.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"
#include "vector.h"

#define TLS_RECORD          16384       /* largest TLS plaintext record */
#define TLS_RECORD_MAX      (TLS_RECORD + 512) /* with header, MAC, padding */
#define TLS_WBUF_SIZE       (64 * 1024) /* records sent in one go */
#define TLS_WBUF_FIRST      (32 * 1024) /* grows only for bulk replies */

DEFINE_VECTOR (byte_vector, char);

/* One client's TLS state (loop thread only). */
struct tls_conn {
  SSL *ssl;
  struct byte_vector wbuf;      /* records not yet sent: the write BIO */
  size_t wstart;                /* wbuf.ptr[wstart, wbuf.len) unsent */
  size_t wplain;                /* plaintext bytes in there, unreported */
  ev_io xw;                     /* wbuf waits for the socket (no queue) */
  bool started;                 /* the client's first TLS byte came */
  bool established;             /* handshake done */
  bool failed;                  /* fatal error: no SSL_shutdown */
  bool deferred;                /* recv returned data, then hit ... */
  int deferred_errno;           /* ... this error (0: EOF) */
  struct tls_peer peer;         /* what the credentials said (PSK user) */
};

/* ---- the write buffer ---- */

/* The write BIO: OpenSSL's records collect in conn->tls->wbuf, which
 * flush_wbuf hands to the socket four records at a time: a 1 MiB
 * reply costs 16 sends (and wake-ups of the client) instead of 64.
 * That saves more than the copy costs (measured: about 8% less CPU
 * than one send per record), and keeps the client busy sooner than
 * larger batches would.  It never refuses: send() keeps it to about
 * TLS_WBUF_SIZE.
 */
static int
wbio_write (BIO *bio, const char *data, size_t len, size_t *written)
{
  struct tls_conn *t = BIO_get_data (bio);

  if (len > t->wbuf.cap - t->wbuf.len && t->wstart > 0) {
    memmove (t->wbuf.ptr, t->wbuf.ptr + t->wstart, t->wbuf.len - t->wstart);
    t->wbuf.len -= t->wstart;
    t->wstart = 0;
  }
  if (t->wbuf.cap == 0
      && byte_vector_reserve (&t->wbuf, TLS_WBUF_FIRST) == -1)
    return 0;
  if (byte_vector_reserve (&t->wbuf, len) == -1)
    return 0;
  memcpy (t->wbuf.ptr + t->wbuf.len, data, len);
  t->wbuf.len += len;
  *written = len;
  return 1;
}

static long
wbio_ctrl (BIO *bio, int cmd, long num, void *ptr)
{
  return cmd == BIO_CTRL_FLUSH;  /* flush_wbuf does the real thing */
}

static BIO_METHOD *wbio_method;

static int
wbio_init (void)
{
  wbio_method = BIO_meth_new (BIO_get_new_index () | BIO_TYPE_SOURCE_SINK,
                              "nbd-loopback write buffer");
  if (wbio_method == NULL
      || !BIO_meth_set_write_ex (wbio_method, wbio_write)
      || !BIO_meth_set_ctrl (wbio_method, wbio_ctrl)) {
    tls_log_ssl_error ("BIO_meth_new");
    return -1;
  }
  return 0;
}
/* ---- set-up ---- */

int
tls_init (void)
{
  if (opt.tls == TLS_OFF)
    return 0;
  if (tls_creds_init () == -1)
    return -1;
  if (wbio_method == NULL && wbio_init () == -1) {
    tls_creds_cleanup ();
    return -1;
  }
  return 0;
}

void
tls_cleanup (void)
{
  BIO_meth_free (wbio_method);
  wbio_method = NULL;
  tls_creds_cleanup ();
}

/* ---- one connection ---- */

/* Send buffered records.  Returns 0 when all went, 1 when the socket
 * is full, -1 with errno on error.
 */
static int
flush_wbuf (struct connection *conn)
{
  struct tls_conn *t = conn->tls;
  ssize_t r;

  while (t->wstart < t->wbuf.len) {
    r = send (conn->fd, t->wbuf.ptr + t->wstart, t->wbuf.len - t->wstart,
              MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 1;
      t->failed = true;
      return -1;
    }
    t->wstart += r;
  }
  t->wstart = t->wbuf.len = 0;
  return 0;
}

/* Records made while reading (handshake flights, alerts) go out now,
 * or when the socket takes them.
 */
static void
flush_after_read (struct connection *conn)
{
  struct tls_conn *t = conn->tls;

  if (t->wbuf.len > t->wstart && flush_wbuf (conn) == 1)
    ev_io_start (conn->loop->ev, &t->xw);
}

static void
xw_cb (struct ev_loop *ev, ev_io *w, int revents)
{
  struct connection *conn = w->data;

  if (flush_wbuf (conn) != 1)
    ev_io_stop (ev, w);
}

static void
log_established (struct connection *conn)
{
  struct tls_conn *t = conn->tls;
  X509 *peer;
  char subject[256] = "";

  if (log_verbose == 0)
    return;
  peer = SSL_get1_peer_certificate (t->ssl);
  if (peer) {
    X509_NAME_oneline (X509_get_subject_name (peer), subject,
                       sizeof subject);
    X509_free (peer);
  }
  conn_debug (conn, "TLS established: %s, %s%s%s%s%s",
              SSL_get_version (t->ssl), SSL_get_cipher_name (t->ssl),
              t->peer.psk_user ? ", PSK user " : "",
              t->peer.psk_user ? t->peer.psk_user : "",
              *subject ? ", client " : "", subject);
}

/* Turn a failed SSL call into the transport's convention: -1 with
 * errno (EAGAIN: try again when the socket is ready), or 0 for the
 * end of the stream.  Fatal TLS errors are logged here, once.
 */
static ssize_t
tls_error (struct connection *conn, int ret, const char *what, bool reading)
{
  struct tls_conn *t = conn->tls;
  int saved = errno;
  int err = SSL_get_error (t->ssl, ret);
  char buf[256];

  switch (err) {
  case SSL_ERROR_WANT_READ:
    if (!reading)
      break;                    /* cannot happen: no renegotiation */
    errno = EAGAIN;
    return -1;
  case SSL_ERROR_ZERO_RETURN:
    /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF). */
    ERR_clear_error ();
    if (reading)
      return 0;
    errno = EPIPE;
    return -1;
  case SSL_ERROR_SYSCALL:
    t->failed = true;
    ERR_clear_error ();
    errno = saved ? saved : ECONNRESET;
    conn_debug (conn, "%s: %m", what);
    return -1;
  default:
    break;
  }
  /* SSL_ERROR_SSL; and WANT_WRITE, which the write BIO never asks for,
   * or WANT_READ while writing, which needs a renegotiation.
   */
  t->failed = true;
  if (err == SSL_ERROR_SSL)
    tls_describe_error (t->ssl, buf, sizeof buf);
  else
    snprintf (buf, sizeof buf, "OpenSSL wants to %s while %s",
              err == SSL_ERROR_WANT_READ ? "read" : "write",
              reading ? "reading" : "writing");
  if (!t->peer.psk_user && t->peer.unknown_user[0])
    log_warning ("conn %" PRIu64 " (%s): %s failed: unknown PSK user '%s' "
                 "(%s): closing", conn->id, conn->peer, what,
                 t->peer.unknown_user, buf);
  else
    log_warning ("conn %" PRIu64 " (%s): %s failed: %s: closing",
                 conn->id, conn->peer, what, buf);
  ERR_clear_error ();
  errno = EPROTO;
  return -1;
}

static ssize_t
tls_recv (struct connection *conn, void *buf, size_t len)
{
  struct tls_conn *t = conn->tls;
  size_t total = 0, n;
  ssize_t r;

  if (t->deferred) {
    if (t->deferred_errno == 0)
      return 0;
    errno = t->deferred_errno;
    return -1;
  }
  if (!t->started) {
    bool queued;

    lock_or_abort (&conn->lock);
    queued = conn->out_head != NULL;
    unlock_or_abort (&conn->lock);
    if (queued) {
      log_warning ("conn %" PRIu64 " (%s): TLS data before the client read "
                   "the reply to NBD_OPT_STARTTLS: closing", conn->id,
                   conn->peer);
      t->failed = true;
      errno = EPROTO;
      return -1;
    }
    t->started = true;
  }
  if (!t->established) {
    int ret;

    ERR_clear_error ();
    ret = SSL_do_handshake (t->ssl);
    flush_after_read (conn);
    if (ret != 1)
      return tls_error (conn, ret, "TLS handshake", true);
    t->established = true;
    log_established (conn);
  }

  while (total < len) {
    ERR_clear_error ();
    if (SSL_read_ex (t->ssl, (char *) buf + total, len - total, &n)) {
      total += n;
      continue;
    }
    r = tls_error (conn, 0, "TLS read", true);
    flush_after_read (conn);
    if (total == 0)
      return r;
    if (r == 0 || errno != EAGAIN) {
      /* Hand over the data now, the error next time. */
      t->deferred = true;
      t->deferred_errno = r == 0 ? 0 : errno;
    }
    break;
  }
  /* Input already inside OpenSSL makes no socket readable. */
  if (t->deferred || (total == len && SSL_has_pending (t->ssl)))
    ev_feed_event (conn->loop->ev, &conn->rw, EV_READ);
  return total;
}

/* Skip n bytes of the iovecs from (*i, *off). */
static void
iov_advance (const struct iovec *iov, int *i, size_t *off, size_t n)
{
  while (n > 0) {
    size_t k = iov[*i].iov_len - *off;

    if (n >= k) {
      n -= k;
      (*i)++;
      *off = 0;
    }
    else {
      *off += n;
      n = 0;
    }
  }
}

/* Encrypt from (*i, *off) into the write buffer while it has room for
 * another record.  Returns the plaintext bytes taken, or -1 (logged)
 * on a TLS error with nothing taken.
 */
static ssize_t
encrypt_some (struct connection *conn, const struct iovec *iov, int iovcnt,
              int *i, size_t *off)
{
  static __thread unsigned char stage[TLS_RECORD];
  struct tls_conn *t = conn->tls;
  size_t taken = 0, len, n;
  const void *p;

  while (*i < iovcnt
         && t->wbuf.len - t->wstart + TLS_RECORD_MAX <= TLS_WBUF_SIZE) {
    if (iov[*i].iov_len - *off < TLS_RECORD && *i + 1 < iovcnt) {
      /* Small pieces (headers, short replies) share a record. */
      int j = *i;
      size_t o = *off;

      len = 0;
      while (j < iovcnt && len < TLS_RECORD) {
        size_t k = iov[j].iov_len - o;

        if (k > TLS_RECORD - len)
          k = TLS_RECORD - len;
        memcpy (stage + len, (const char *) iov[j].iov_base + o, k);
        len += k;
        o += k;
        if (o == iov[j].iov_len) {
          j++;
          o = 0;
        }
      }
      p = stage;
    }
    else {
      p = (const char *) iov[*i].iov_base + *off;
      len = iov[*i].iov_len - *off;
      if (len > TLS_RECORD)
        len = TLS_RECORD;
    }
    if (len == 0) {
      (*i)++;
      *off = 0;
      continue;
    }
    ERR_clear_error ();
    if (!SSL_write_ex (t->ssl, p, len, &n)) {
      if (taken > 0)
        break;                  /* the error comes back next time */
      return tls_error (conn, 0, "TLS write", false);
    }
    taken += n;
    iov_advance (iov, i, off, n);
  }
  return taken;
}

/* Only bytes whose records have all left are reported as sent; those
 * encrypted but still in the write buffer (t->wplain) stay at the
 * head of the caller's queue and are skipped here next time.
 */
static ssize_t
tls_send (struct connection *conn, const struct iovec *iov, int iovcnt)
{
  struct tls_conn *t = conn->tls;
  size_t total = 0, off = 0;
  ssize_t r;
  int i = 0;

  /* The ACK to STARTTLS (and what came before it) leaves in the clear. */
  if (!t->started)
    return plain_transport.send (conn, iov, iovcnt);

  for (;;) {
    switch (flush_wbuf (conn)) {
    case -1:
      if (total > 0)
        return total;
      conn_debug (conn, "TLS write: %m");
      return -1;
    case 1:
      if (total > 0)
        return total;
      errno = EAGAIN;
      return -1;
    }
    /* Everything encrypted so far has left. */
    iov_advance (iov, &i, &off, t->wplain);
    total += t->wplain;
    t->wplain = 0;
    if (i >= iovcnt)
      return total;
    r = encrypt_some (conn, iov, iovcnt, &i, &off);
    if (r == -1)
      return total > 0 ? (ssize_t) total : -1;
    if (r == 0)
      return total;             /* only empty iovecs were left */
    /* encrypt_some advanced (i, off); flush_wbuf's success moves the
     * same bytes into total, so step back to keep one position.
     */
    t->wplain = r;
    i = 0;
    off = 0;
    iov_advance (iov, &i, &off, total);
  }
}

static bool
tls_pending (struct connection *conn)
{
  struct tls_conn *t = conn->tls;

  return t->started && (t->deferred || SSL_has_pending (t->ssl));
}

static void
tls_shutdown (struct connection *conn)
{
  struct tls_conn *t = conn->tls;

  /* close_notify, unless the session is broken or never began. */
  if (t->established && !t->failed && !(SSL_get_shutdown (t->ssl)
                                        & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error ();
    SSL_shutdown (t->ssl);
    ERR_clear_error ();
    flush_wbuf (conn);
  }
  shutdown (conn->fd, SHUT_RDWR);
}

static void
tls_free (struct connection *conn)
{
  struct tls_conn *t = conn->tls;

  ev_io_stop (conn->loop->ev, &t->xw);
  SSL_free (t->ssl);
  byte_vector_reset (&t->wbuf);
  free (t);
  conn->tls = NULL;
}

static const struct transport_ops tls_transport = {
  .name = "tls",
  .recv = tls_recv,
  .send = tls_send,
  .pending = tls_pending,
  .shutdown = tls_shutdown,
  .free = tls_free,
  .send_from_any_thread = false,
};

int
tls_start (struct connection *conn)
{
  struct tls_conn *t = calloc (1, sizeof *t);
  BIO *rbio = NULL, *wbio = NULL;

  if (t == NULL || (t->ssl = tls_session_new (&t->peer)) == NULL
      || (rbio = BIO_new_socket (conn->fd, BIO_NOCLOSE)) == NULL
      || (wbio = BIO_new (wbio_method)) == NULL) {
    BIO_free (rbio);
    if (t)
      SSL_free (t->ssl);
    free (t);
    log_error ("conn %" PRIu64 ": setting up TLS: out of memory", conn->id);
    ERR_clear_error ();
    return -1;
  }
  BIO_set_data (wbio, t);
  BIO_set_init (wbio, 1);
  SSL_set_bio (t->ssl, rbio, wbio);
  SSL_set_accept_state (t->ssl);
  ev_io_init (&t->xw, xw_cb, conn->fd, EV_WRITE);
  t->xw.data = conn;
  conn->tls = t;
  conn->ops = &tls_transport;
  return 0;
}
