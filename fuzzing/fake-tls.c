/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz-tls only: a fake TLS transport in place of server/tls.c and
 * server/tls-creds.c (build.sh links this instead of them).
 *
 * It implements what the rest of the server calls (tls_resolve_paths,
 * tls_init, tls_cleanup, tls_start) and installs, at STARTTLS, a
 * transport_ops that behaves like tls.c at its edges but encrypts
 * nothing, so the fuzzer can speak the protocol after STARTTLS:
 *
 * - until the client's first byte after the ACK, send writes in the
 *   clear (the ACK); a byte arriving while plaintext is still queued
 *   closes the connection, as in tls.c;
 * - the "handshake" is the client sending FAKE_TLS_CLIENT_HELLO, read
 *   a byte at a time as far as it goes (a mismatch fails it with
 *   EPROTO, as OpenSSL fails on a ClientHello that is not one); the
 *   server answers FAKE_TLS_SERVER_HELLO, in the clear, straight to
 *   the socket, as tls.c sends handshake flights;
 * - then recv and send pass bytes through: "inside TLS".
 *
 * It also asserts the invariants a real TLS layer relies on the
 * protocol code for (the CVE-2021-3716 class), with abort(), so the
 * fuzzer reports them as crashes:
 * - tls_start: no plaintext the client sent after STARTTLS is still
 *   buffered for the option parser, the handshake is between options,
 *   and TLS is not started twice;
 * - when the handshake completes, before any byte from inside TLS is
 *   handed over: the input buffer is still empty (nothing was parsed
 *   meanwhile), and nothing negotiated in the clear survives
 *   (structured replies, extended headers, metadata contexts);
 * - no protocol data is sent between the client's first handshake
 *   byte and the end of the handshake (a real TLS session could not:
 *   it would be the server answering plaintext injected there).
 * fake_tls_bytes_in_tls counts the bytes received inside TLS, for the
 * target.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "fake-tls.h"
#include "internal.h"
#include "log.h"

struct tls_conn {
  bool started;                 /* the client's first handshake byte came */
  bool established;             /* FAKE_TLS_CLIENT_HELLO read in full */
  size_t hello_got;             /* bytes of it matched so far */
};

uint64_t fake_tls_bytes_in_tls;

static void __attribute__ ((noreturn))
violated (struct connection *conn, const char *what)
{
  fprintf (stderr, "fuzz-tls: invariant violated (conn %" PRIu64 "): %s\n",
           conn->id, what);
  abort ();
}

int
tls_resolve_paths (void)
{
  return 0;
}

int
tls_init (void)
{
  return 0;
}

void
tls_cleanup (void)
{
}

/* Clear-state checks at the moment bytes start to come from inside TLS. */
static void
check_clean (struct connection *conn)
{
  if (conn->in_end != conn->in_start)
    violated (conn, "input was buffered for the option parser during the "
              "TLS handshake");
  if (conn->phase != PHASE_HANDSHAKE || conn->hs != HS_OPTION)
    violated (conn, "the handshake state moved during the TLS handshake");
  if (conn->structured || conn->extended)
    violated (conn, "structured replies or extended headers negotiated in "
              "the clear survived STARTTLS");
  if (conn->meta_allocation || conn->nr_meta_bitmaps > 0
      || conn->meta_export != NULL)
    violated (conn, "a metadata context selected in the clear survived "
              "STARTTLS");
}

static ssize_t
fake_recv (struct connection *conn, void *buf, size_t len)
{
  struct tls_conn *t = conn->tls;
  ssize_t r;

  if (!t->established) {
    if (!t->started) {
      bool queued;

      lock_or_abort (&conn->lock);
      queued = conn->out_head != NULL;
      unlock_or_abort (&conn->lock);
      if (queued) {
        log_warning ("conn %" PRIu64 " (%s): TLS data before the client "
                     "read the reply to NBD_OPT_STARTTLS: closing",
                     conn->id, conn->peer);
        errno = EPROTO;
        return -1;
      }
    }
    while (t->hello_got < FAKE_TLS_HELLO_LEN) {
      char c;

      do
        r = recv (conn->fd, &c, 1, 0);
      while (r == -1 && errno == EINTR);
      if (r <= 0)
        return r;
      t->started = true;
      if (c != FAKE_TLS_CLIENT_HELLO[t->hello_got]) {
        log_warning ("conn %" PRIu64 " (%s): TLS handshake failed: not a "
                     "ClientHello: closing", conn->id, conn->peer);
        errno = EPROTO;
        return -1;
      }
      t->hello_got++;
    }
    check_clean (conn);
    t->established = true;
    /* The server's flight, in the clear like tls.c's, before any reply. */
    if (send (conn->fd, FAKE_TLS_SERVER_HELLO, FAKE_TLS_HELLO_LEN,
              MSG_NOSIGNAL | MSG_DONTWAIT) != FAKE_TLS_HELLO_LEN) {
      errno = EPROTO;
      return -1;
    }
  }
  do
    r = recv (conn->fd, buf, len, 0);
  while (r == -1 && errno == EINTR);
  if (r > 0)
    fake_tls_bytes_in_tls += r;
  return r;
}

static ssize_t
fake_send (struct connection *conn, const struct iovec *iov, int iovcnt)
{
  struct tls_conn *t = conn->tls;

  if (t->started && !t->established) {
    size_t n = 0;

    for (int i = 0; i < iovcnt; i++)
      n += iov[i].iov_len;
    if (n > 0)
      violated (conn, "the server sent protocol data during the TLS "
                "handshake");
  }
  return plain_transport.send (conn, iov, iovcnt);
}

static bool
fake_pending (struct connection *conn)
{
  return false;
}

static void
fake_shutdown (struct connection *conn)
{
  shutdown (conn->fd, SHUT_RDWR);
}

static void
fake_free (struct connection *conn)
{
  free (conn->tls);
  conn->tls = NULL;
}

static const struct transport_ops fake_transport = {
  .name = "fake-tls",
  .recv = fake_recv,
  .send = fake_send,
  .pending = fake_pending,
  .shutdown = fake_shutdown,
  .free = fake_free,
  .send_from_any_thread = false,
};

int
tls_start (struct connection *conn)
{
  struct tls_conn *t;

  if (conn->tls != NULL || conn->ops != &plain_transport)
    violated (conn, "TLS started twice");
  if (opt.tls == TLS_OFF)
    violated (conn, "TLS started with --tls=off");
  if (conn->in_end != conn->in_start)
    violated (conn, "plaintext sent after NBD_OPT_STARTTLS is buffered "
              "when TLS starts: it would be parsed as options from inside "
              "TLS (CVE-2021-3716)");
  if (conn->phase != PHASE_HANDSHAKE || conn->opt_hdr.option
      != NBD_OPT_STARTTLS)
    violated (conn, "TLS started outside NBD_OPT_STARTTLS");
  t = calloc (1, sizeof *t);
  if (t == NULL)
    return -1;
  conn->tls = t;
  conn->ops = &fake_transport;
  return 0;
}
