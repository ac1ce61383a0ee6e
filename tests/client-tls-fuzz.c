/* SPDX-License-Identifier: BSD-3-Clause */
/* Many broken clients, one after another, from one process.
 *
 *   client-tls-fuzz SOCKET N [SEED]
 *
 * Makes N connections to the nbd-loopback Unix socket SOCKET, each
 * broken in one of these ways (in turn, with random sizes):
 *   - random bytes instead of the handshake;
 *   - STARTTLS, then a ClientHello cut short, then EOF;
 *   - STARTTLS, then random bytes where the ClientHello should be;
 *   - STARTTLS, a whole ClientHello, then EOF in the middle of the
 *     TLS handshake;
 *   - STARTTLS, then EOF before any TLS;
 *   - random option bytes after the client flags.
 * Each connection half-closes and waits (bounded) for the server to
 * close it, so the server has dealt with one before the next comes.
 * Exits 0 when all N were handled, 1 if the server stopped answering.
 * The ClientHello is a real one, made by OpenSSL over a memory BIO.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "protocol.h"

static unsigned char hello[4096];
static size_t hello_len;

static void
make_client_hello (void)
{
  SSL_CTX *ctx = SSL_CTX_new (TLS_client_method ());
  SSL *ssl = ctx ? SSL_new (ctx) : NULL;
  BIO *rbio = BIO_new (BIO_s_mem ()), *wbio = BIO_new (BIO_s_mem ());
  int n;

  if (ssl == NULL || rbio == NULL || wbio == NULL) {
    fprintf (stderr, "client-tls-fuzz: OpenSSL set-up failed\n");
    exit (EXIT_FAILURE);
  }
  SSL_set_bio (ssl, rbio, wbio);
  SSL_set_connect_state (ssl);
  SSL_do_handshake (ssl);       /* wants to read: the hello is written */
  n = BIO_read (wbio, hello, sizeof hello);
  if (n <= 0) {
    fprintf (stderr, "client-tls-fuzz: no ClientHello\n");
    exit (EXIT_FAILURE);
  }
  hello_len = n;
  SSL_free (ssl);
  SSL_CTX_free (ctx);
}

static int
connect_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = 10 };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd == -1) {
    perror ("socket");
    exit (EXIT_FAILURE);
  }
  snprintf (addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    perror ("connect");
    exit (EXIT_FAILURE);
  }
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void
send_bytes (int fd, const void *buf, size_t len)
{
  /* The server may close first: errors are fine here. */
  send (fd, buf, len, MSG_NOSIGNAL);
}

static void
random_bytes (unsigned char *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = random ();
}

/* Read whatever comes until the server closes; false on timeout. */
static bool
drain (int fd)
{
  char buf[4096];

  for (;;) {
    ssize_t r = recv (fd, buf, sizeof buf, 0);
    if (r == 0 || (r == -1 && errno == ECONNRESET))
      return true;
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return false;
  }
}

/* Read the greeting and send the client flags. */
static bool
handshake (int fd)
{
  struct nbd_greeting g;
  uint32_t flags = htobe32 (NBD_FLAG_C_FIXED_NEWSTYLE);
  size_t got = 0;

  while (got < sizeof g) {
    ssize_t r = recv (fd, (char *) &g + got, sizeof g - got, 0);
    if (r <= 0)
      return false;
    got += r;
  }
  send_bytes (fd, &flags, sizeof flags);
  return true;
}

/* STARTTLS and its ACK (20 bytes of reply header). */
static bool
starttls (int fd)
{
  struct nbd_option o = {
    .magic = htobe64 (NBD_IHAVEOPT),
    .option = htobe32 (NBD_OPT_STARTTLS),
  };
  struct nbd_option_reply r;
  size_t got = 0;

  if (!handshake (fd))
    return false;
  send_bytes (fd, &o, sizeof o);
  while (got < sizeof r) {
    ssize_t n = recv (fd, (char *) &r + got, sizeof r - got, 0);
    if (n <= 0)
      return false;
    got += n;
  }
  return be32toh (r.reply) == NBD_REP_ACK;
}

int
main (int argc, char *argv[])
{
  unsigned char buf[8192];
  unsigned long n;

  if (argc < 3) {
    fprintf (stderr, "usage: client-tls-fuzz SOCKET N [SEED]\n");
    exit (EXIT_FAILURE);
  }
  n = strtoul (argv[2], NULL, 10);
  srandom (argc > 3 ? strtoul (argv[3], NULL, 10) : 1);
  make_client_hello ();

  for (unsigned long i = 0; i < n; i++) {
    int fd = connect_unix (argv[1]);
    size_t len;

    switch (i % 6) {
    case 0:                     /* random bytes instead of a handshake */
      len = 1 + random () % sizeof buf;
      random_bytes (buf, len);
      send_bytes (fd, buf, len);
      break;
    case 1:                     /* a ClientHello cut short */
      if (starttls (fd))
        send_bytes (fd, hello, random () % hello_len);
      break;
    case 2:                     /* garbage instead of a ClientHello */
      if (starttls (fd)) {
        len = 1 + random () % sizeof buf;
        random_bytes (buf, len);
        if (random () % 2)
          buf[0] = 0x16;        /* looks like a handshake record */
        send_bytes (fd, buf, len);
      }
      break;
    case 3:                     /* EOF in the middle of the handshake */
      if (starttls (fd))
        send_bytes (fd, hello, hello_len);
      break;
    case 4:                     /* EOF before any TLS */
      starttls (fd);
      break;
    case 5:                     /* random option bytes */
      if (handshake (fd)) {
        len = 1 + random () % 64;
        random_bytes (buf, len);
        send_bytes (fd, buf, len);
      }
      break;
    }
    shutdown (fd, SHUT_WR);
    if (!drain (fd)) {
      fprintf (stderr, "client-tls-fuzz: connection %lu (kind %lu): the "
               "server did not close it within 10 s\n", i, i % 6);
      exit (EXIT_FAILURE);
    }
    close (fd);
  }
  printf ("%lu broken connections handled\n", n);
  return EXIT_SUCCESS;
}
