/* SPDX-License-Identifier: BSD-3-Clause */
/* A hand-made NBD client for the TLS and --allow tests of nbd-loopback.
 *
 *   client-tls-raw [-s SRCADDR] [-c CERTDIR] TARGET MODE
 *
 * TARGET is a Unix socket path (it contains a '/') or HOST:PORT
 * ([HOST]:PORT for IPv6); -s binds the client's end to SRCADDR first,
 * which no real client can do; -c presents CERTDIR's client-cert.pem
 * and client-key.pem in TLS, whatever CAs the server asks for (GnuTLS
 * clients keep quiet about a certificate the server's CA list does
 * not name).  It speaks the handshake by hand, and
 * TLS with OpenSSL after STARTTLS, so that it can check the exact
 * replies of each TLS mode and break the rules real clients keep.
 * Each MODE checks what the server must do and exits 0 if it did, 1
 * (with a message) if not.  Every wait is bounded by a receive timeout.
 *
 *   greeting        the server greets us (--allow accepts this address)
 *   refused         the server closes without greeting (--allow refuses)
 *   require         --tls=require: every option but STARTTLS and ABORT
 *                   gets NBD_REP_ERR_TLS_REQD (LIST, INFO, GO,
 *                   STRUCTURED_REPLY, an unknown option, an over-long
 *                   option), STARTTLS gets an ACK; NBD_OPT_EXPORT_NAME
 *                   closes the connection
 *   notls           --tls=off: STARTTLS gets NBD_REP_ERR_UNSUP, and
 *                   nothing gets NBD_REP_ERR_TLS_REQD
 *   reset           structured replies and a meta context negotiated in
 *                   the clear are forgotten after STARTTLS; a second
 *                   STARTTLS gets NBD_REP_ERR_INVALID; nothing gets
 *                   NBD_REP_ERR_TLS_REQD once TLS is up; then a READ
 *                   over TLS gets a simple reply
 *   tls             STARTTLS, the TLS handshake, then INFO gets an ACK
 *   pipeline        over TLS, 40 WRITEs of 4 MiB sent without reading a
 *                   reply (more than the server holds: it stops reading
 *                   with TLS records half-consumed), every reply, then
 *                   each block read back and compared; the data is
 *                   also left in the export for the test to check
 *   starttls-early  bytes sent right behind STARTTLS, before its ACK,
 *                   close the connection (no ACK, no TLS)
 */
#include <config.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
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

static const char *mode;
static const char *source;
static const char *certdir;
static int fd = -1;
static SSL *ssl;                /* after STARTTLS */

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "client-tls-raw %s: ", mode);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\n");
  ERR_print_errors_fp (stderr);
  exit (EXIT_FAILURE);
}

static void
connect_to (const char *target)
{
  struct timeval tv = { .tv_sec = 10 };

  if (strchr (target, '/')) {
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
      die ("socket: %m");
    snprintf (addr.sun_path, sizeof addr.sun_path, "%s", target);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1)
      die ("connect %s: %m", target);
  }
  else {
    char host[256];
    const char *colon = strrchr (target, ':');
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST }, *ai, *src;
    size_t n;

    if (colon == NULL)
      die ("%s: expected HOST:PORT", target);
    n = colon - target;
    if (target[0] == '[' && n >= 2 && target[n - 1] == ']')
      snprintf (host, sizeof host, "%.*s", (int) (n - 2), target + 1);
    else
      snprintf (host, sizeof host, "%.*s", (int) n, target);
    if (getaddrinfo (host, colon + 1, &hints, &ai) != 0)
      die ("%s: bad address", target);
    fd = socket (ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
      die ("socket: %m");
    if (source) {
      if (getaddrinfo (source, NULL, &hints, &src) != 0)
        die ("-s %s: bad address", source);
      if (bind (fd, src->ai_addr, src->ai_addrlen) == -1)
        die ("bind %s: %m", source);
      freeaddrinfo (src);
    }
    if (connect (fd, ai->ai_addr, ai->ai_addrlen) == -1)
      die ("connect %s: %m", target);
    freeaddrinfo (ai);
  }
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void
write_all (const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r;

    if (ssl) {
      size_t n;
      r = SSL_write_ex (ssl, p, len, &n) ? (ssize_t) n : -1;
    }
    else
      r = send (fd, p, len, MSG_NOSIGNAL);
    if (r <= 0)
      die ("write: %m");
    p += r;
    len -= r;
  }
}

/* Read exactly len bytes; false at EOF before the first byte. */
static bool
read_all (void *buf, size_t len)
{
  char *p = buf;
  size_t got = 0;

  while (got < len) {
    ssize_t r;

    if (ssl) {
      size_t n;
      r = SSL_read_ex (ssl, p + got, len - got, &n) ? (ssize_t) n : 0;
    }
    else
      r = recv (fd, p + got, len - got, 0);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      die ("timed out waiting for the server");
    if (r == -1 && errno == ECONNRESET && got == 0)
      return false;
    if (r == -1)
      die ("read: %m");
    if (r == 0) {
      if (got == 0)
        return false;
      die ("EOF after %zu of %zu bytes", got, len);
    }
    got += r;
  }
  return true;
}

static void
greeting (void)
{
  struct nbd_greeting g;
  uint32_t flags = htobe32 (NBD_FLAG_C_FIXED_NEWSTYLE);

  if (!read_all (&g, sizeof g))
    die ("the server closed without a greeting");
  if (be64toh (g.magic) != NBD_MAGIC || be64toh (g.ihaveopt) != NBD_IHAVEOPT)
    die ("bad greeting");
  write_all (&flags, sizeof flags);
}

static void
send_option (uint32_t option, const void *data, uint32_t len)
{
  struct nbd_option o = {
    .magic = htobe64 (NBD_IHAVEOPT),
    .option = htobe32 (option),
    .length = htobe32 (len),
  };

  write_all (&o, sizeof o);
  if (len)
    write_all (data, len);
}

/* Read option replies until a final one; return its type. */
static uint32_t
option_result (uint32_t option)
{
  for (;;) {
    struct nbd_option_reply r;
    uint32_t len, type;
    char buf[4096];

    if (!read_all (&r, sizeof r))
      die ("the server closed instead of answering option %u", option);
    len = be32toh (r.length);
    type = be32toh (r.reply);
    if (be64toh (r.magic) != NBD_REP_MAGIC || be32toh (r.option) != option)
      die ("bad reply to option %u", option);
    if (len > sizeof buf)
      die ("reply of %u bytes", len);
    if (len && !read_all (buf, len))
      die ("EOF in a reply");
    if (type == NBD_REP_ACK || (type & NBD_REP_ERR (0)))
      return type;
  }
}

static void
expect (uint32_t option, const void *data, uint32_t len, uint32_t want,
        const char *what)
{
  uint32_t got;

  send_option (option, data, len);
  got = option_result (option);
  if (got != want)
    die ("%s: reply 0x%x, expected 0x%x", what, got, want);
}

/* "" export, no info requests: for INFO and GO. */
static const char info_data[6] = { 0 };

static void
expect_eof (const char *what)
{
  char c;

  if (read_all (&c, 1))
    die ("%s: the server sent data instead of closing", what);
}

static void
mode_require (const char *target)
{
  static char big[70000];

  greeting ();
  expect (NBD_OPT_LIST, NULL, 0, NBD_REP_ERR_TLS_REQD, "LIST");
  expect (NBD_OPT_INFO, info_data, sizeof info_data, NBD_REP_ERR_TLS_REQD,
          "INFO");
  expect (NBD_OPT_STRUCTURED_REPLY, NULL, 0, NBD_REP_ERR_TLS_REQD,
          "STRUCTURED_REPLY");
  expect (99, "x", 1, NBD_REP_ERR_TLS_REQD, "unknown option");
  expect (NBD_OPT_INFO, big, sizeof big, NBD_REP_ERR_TLS_REQD,
          "over-long option");
  expect (NBD_OPT_GO, info_data, sizeof info_data, NBD_REP_ERR_TLS_REQD,
          "GO");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  close (fd);

  connect_to (target);
  greeting ();
  send_option (NBD_OPT_EXPORT_NAME, NULL, 0);
  expect_eof ("EXPORT_NAME without TLS");
}

static void
mode_notls (void)
{
  greeting ();
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ERR_UNSUP, "STARTTLS");
  expect (NBD_OPT_INFO, info_data, sizeof info_data, NBD_REP_ACK, "INFO");
  expect (99, NULL, 0, NBD_REP_ERR_UNSUP, "unknown option");
  expect (NBD_OPT_ABORT, NULL, 0, NBD_REP_ACK, "ABORT");
}

static void
start_tls (void)
{
  SSL_CTX *ctx = SSL_CTX_new (TLS_client_method ());

  if (ctx == NULL || (ssl = SSL_new (ctx)) == NULL)
    die ("SSL_new");
  /* The handshake is what is tested here, not the certificate. */
  SSL_set_verify (ssl, SSL_VERIFY_NONE, NULL);
  if (certdir) {
    char cert[4096], key[4096];

    snprintf (cert, sizeof cert, "%s/client-cert.pem", certdir);
    snprintf (key, sizeof key, "%s/client-key.pem", certdir);
    if (SSL_use_certificate_file (ssl, cert, SSL_FILETYPE_PEM) != 1
        || SSL_use_PrivateKey_file (ssl, key, SSL_FILETYPE_PEM) != 1)
      die ("loading %s", cert);
  }
  SSL_set_fd (ssl, fd);
  if (SSL_connect (ssl) != 1)
    die ("TLS handshake failed");
  /* TLS 1.3: the server judges our certificate after our Finished;
   * a refusal arrives with the first read.
   */
  SSL_CTX_free (ctx);
}

static void
mode_reset (void)
{
  char meta[4 + 0 + 4 + 4 + 15];
  uint32_t be;
  struct nbd_simple_reply sr;
  struct nbd_request rq = {
    .magic = htobe32 (NBD_REQUEST_MAGIC),
    .type = htobe16 (NBD_CMD_READ),
    .cookie = htobe64 (7),
    .offset = 0,
    .count = htobe32 (512),
  };
  char data[512];

  greeting ();
  /* In the clear: structured replies and base:allocation. */
  expect (NBD_OPT_STRUCTURED_REPLY, NULL, 0, NBD_REP_ACK, "STRUCTURED_REPLY");
  be = htobe32 (0);             /* export "" */
  memcpy (meta, &be, 4);
  be = htobe32 (1);             /* one query */
  memcpy (meta + 4, &be, 4);
  be = htobe32 (15);
  memcpy (meta + 8, &be, 4);
  memcpy (meta + 12, "base:allocation", 15);
  expect (NBD_OPT_SET_META_CONTEXT, meta, sizeof meta, NBD_REP_ACK,
          "SET_META_CONTEXT");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();

  /* Forgotten: meta contexts need structured replies again. */
  expect (NBD_OPT_LIST_META_CONTEXT, meta, sizeof meta, NBD_REP_ERR_INVALID,
          "LIST_META_CONTEXT after STARTTLS");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ERR_INVALID, "second STARTTLS");
  expect (NBD_OPT_INFO, info_data, sizeof info_data, NBD_REP_ACK,
          "INFO over TLS");
  expect (NBD_OPT_GO, info_data, sizeof info_data, NBD_REP_ACK, "GO over TLS");
  /* Structured replies were forgotten: a READ gets a simple reply. */
  write_all (&rq, sizeof rq);
  if (!read_all (&sr, sizeof sr))
    die ("EOF instead of a reply to READ");
  if (be32toh (sr.magic) != NBD_SIMPLE_REPLY_MAGIC)
    die ("READ: reply magic 0x%x, expected a simple reply",
         be32toh (sr.magic));
  if (be32toh (sr.error) != 0 || be64toh (sr.cookie) != 7)
    die ("READ: error %u", be32toh (sr.error));
  if (!read_all (data, sizeof data))
    die ("EOF in READ data");
  rq.type = htobe16 (NBD_CMD_DISC);
  write_all (&rq, sizeof rq);
  SSL_shutdown (ssl);
}

/* Extended headers negotiated in the clear are forgotten too: over
 * TLS a compact READ gets a simple reply (with extended headers still
 * on, the compact header would close the connection), and asking for
 * them again is not a duplicate.
 */
static void
mode_reset_extended (const char *target)
{
  struct nbd_simple_reply sr;
  struct nbd_request rq = {
    .magic = htobe32 (NBD_REQUEST_MAGIC),
    .type = htobe16 (NBD_CMD_READ),
    .cookie = htobe64 (8),
    .offset = 0,
    .count = htobe32 (512),
  };
  char data[512];

  greeting ();
  expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
          "EXTENDED_HEADERS in the clear");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();
  expect (NBD_OPT_GO, info_data, sizeof info_data, NBD_REP_ACK, "GO over TLS");
  write_all (&rq, sizeof rq);
  if (!read_all (&sr, sizeof sr))
    die ("EOF instead of a reply to a compact READ: extended headers "
         "survived STARTTLS");
  if (be32toh (sr.magic) != NBD_SIMPLE_REPLY_MAGIC
      || be32toh (sr.error) != 0 || be64toh (sr.cookie) != 8)
    die ("READ: reply magic 0x%x error %u, expected a simple reply",
         be32toh (sr.magic), be32toh (sr.error));
  if (!read_all (data, sizeof data))
    die ("EOF in READ data");
  rq.type = htobe16 (NBD_CMD_DISC);
  write_all (&rq, sizeof rq);
  SSL_shutdown (ssl);
  SSL_free (ssl);
  ssl = NULL;                   /* the clear again, for the greeting */
  close (fd);

  /* Asked for again over TLS: acknowledged afresh. */
  connect_to (target);
  greeting ();
  expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
          "EXTENDED_HEADERS in the clear");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();
  expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
          "EXTENDED_HEADERS again over TLS");
  expect (NBD_OPT_ABORT, NULL, 0, NBD_REP_ACK, "ABORT");
  SSL_shutdown (ssl);
}

static void
mode_tls (void)
{
  greeting ();
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();
  expect (NBD_OPT_INFO, info_data, sizeof info_data, NBD_REP_ACK,
          "INFO over TLS");
  expect (NBD_OPT_ABORT, NULL, 0, NBD_REP_ACK, "ABORT");
  SSL_shutdown (ssl);
}

#define PIPE_WRITES 40
#define PIPE_SIZE (4 * 1024 * 1024)

/* Block i of the pipeline: a pattern cmp can check in the host file. */
static void
pipe_block (char *buf, unsigned i)
{
  for (size_t j = 0; j < PIPE_SIZE; j += 8) {
    uint64_t v = htobe64 ((uint64_t) i * PIPE_SIZE + j);
    memcpy (buf + j, &v, 8);
  }
}

static void
mode_pipeline (void)
{
  char *buf = malloc (PIPE_SIZE), *back = malloc (PIPE_SIZE);
  struct nbd_request rq = { .magic = htobe32 (NBD_REQUEST_MAGIC) };
  struct nbd_simple_reply sr;

  if (buf == NULL || back == NULL)
    die ("malloc: %m");
  greeting ();
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();
  expect (NBD_OPT_GO, info_data, sizeof info_data, NBD_REP_ACK, "GO");
  for (unsigned i = 0; i < PIPE_WRITES; i++) {
    rq.type = htobe16 (NBD_CMD_WRITE);
    rq.cookie = htobe64 (i);
    rq.offset = htobe64 ((uint64_t) i * PIPE_SIZE);
    rq.count = htobe32 (PIPE_SIZE);
    pipe_block (buf, i);
    write_all (&rq, sizeof rq);
    write_all (buf, PIPE_SIZE);
  }
  for (unsigned i = 0; i < PIPE_WRITES; i++) {
    if (!read_all (&sr, sizeof sr))
      die ("EOF instead of the reply to WRITE %u", i);
    if (be32toh (sr.magic) != NBD_SIMPLE_REPLY_MAGIC || sr.error != 0)
      die ("WRITE %" PRIu64 ": error %u", be64toh (sr.cookie),
           be32toh (sr.error));
  }
  for (unsigned i = 0; i < PIPE_WRITES; i++) {
    rq.type = htobe16 (NBD_CMD_READ);
    rq.cookie = htobe64 (i);
    rq.offset = htobe64 ((uint64_t) i * PIPE_SIZE);
    write_all (&rq, sizeof rq);
    if (!read_all (&sr, sizeof sr) || !read_all (back, PIPE_SIZE))
      die ("EOF instead of the reply to READ %u", i);
    pipe_block (buf, i);
    if (sr.error != 0 || memcmp (buf, back, PIPE_SIZE) != 0)
      die ("READ %u: not what was written", i);
  }
  rq.type = htobe16 (NBD_CMD_DISC);
  write_all (&rq, sizeof rq);
  SSL_shutdown (ssl);
  free (buf);
  free (back);
}

static void
mode_starttls_early (void)
{
  struct {
    struct nbd_option o;
    char garbage[5];
  } __attribute__ ((packed)) m = {
    .o = {
      .magic = htobe64 (NBD_IHAVEOPT),
      .option = htobe32 (NBD_OPT_STARTTLS),
    },
    .garbage = { 0x16, 0x03, 0x01, 0x00, 0x10 },
  };

  greeting ();
  write_all (&m, sizeof m);     /* one write: they arrive together */
  expect_eof ("bytes right behind STARTTLS");
}

int
main (int argc, char *argv[])
{
  int c;

  signal (SIGPIPE, SIG_IGN);    /* the server may close first */
  while ((c = getopt (argc, argv, "c:s:")) != -1) {
    if (c == 's')
      source = optarg;
    else if (c == 'c')
      certdir = optarg;
    else
      exit (EXIT_FAILURE);
  }
  if (argc - optind != 2) {
    fprintf (stderr, "usage: client-tls-raw [-s SRCADDR] [-c CERTDIR] "
             "TARGET MODE\n");
    exit (EXIT_FAILURE);
  }
  mode = argv[optind + 1];
  connect_to (argv[optind]);

  if (strcmp (mode, "greeting") == 0) {
    greeting ();
    expect (NBD_OPT_ABORT, NULL, 0, NBD_REP_ACK, "ABORT");
  }
  else if (strcmp (mode, "refused") == 0)
    expect_eof ("a refused address");
  else if (strcmp (mode, "require") == 0)
    mode_require (argv[optind]);
  else if (strcmp (mode, "notls") == 0)
    mode_notls ();
  else if (strcmp (mode, "reset") == 0)
    mode_reset ();
  else if (strcmp (mode, "reset-extended") == 0)
    mode_reset_extended (argv[optind]);
  else if (strcmp (mode, "tls") == 0)
    mode_tls ();
  else if (strcmp (mode, "pipeline") == 0)
    mode_pipeline ();
  else if (strcmp (mode, "starttls-early") == 0)
    mode_starttls_early ();
  else
    die ("unknown mode");
  close (fd);
  return EXIT_SUCCESS;
}
