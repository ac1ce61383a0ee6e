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

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "nbd-raw.h"

static const char *source;
static const char *certdir;
static struct raw_conn conn = { .fd = -1 };

static void
print_openssl_errors (void)
{
  ERR_print_errors_fp (stderr);
}

static void
connect_to (const char *target)
{
  conn.fd = raw_connect (target, source);
  raw_timeouts (conn.fd, 10, 0);
}

/* After STARTTLS: the connection's bytes go through OpenSSL.  A failed
 * read is the end of the stream to the caller (the alert, if any, is
 * in OpenSSL's error queue for raw_die).
 */
static ssize_t
tls_send (struct raw_conn *c, const void *buf, size_t len)
{
  size_t n;

  if (SSL_write_ex (c->tls, buf, len, &n))
    return n;
  if (errno == EINTR)
    errno = EIO;
  return -1;
}

static ssize_t
tls_recv (struct raw_conn *c, void *buf, size_t len)
{
  size_t n;

  return SSL_read_ex (c->tls, buf, len, &n) ? (ssize_t) n : 0;
}

static const struct raw_ops tls_ops = { .send = tls_send, .recv = tls_recv };

static void
greeting (void)
{
  raw_greeting (&conn, NBD_FLAG_C_FIXED_NEWSTYLE);
}

static void
expect (uint32_t option, const void *data, uint32_t len, uint32_t want,
        const char *what)
{
  raw_option_expect (&conn, option, data, len, want, what);
}

/* "" export, no info requests: for INFO and GO. */
static const char info_data[6] = { 0 };

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
  close (conn.fd);

  connect_to (target);
  greeting ();
  raw_send_option (&conn, NBD_OPT_EXPORT_NAME, NULL, 0);
  raw_expect_eof (&conn, "EXPORT_NAME without TLS");
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
  SSL *ssl;

  if (ctx == NULL || (ssl = SSL_new (ctx)) == NULL)
    raw_die ("SSL_new");
  /* The handshake is what is tested here, not the certificate. */
  SSL_set_verify (ssl, SSL_VERIFY_NONE, NULL);
  if (certdir) {
    char cert[4096], key[4096];

    snprintf (cert, sizeof cert, "%s/client-cert.pem", certdir);
    snprintf (key, sizeof key, "%s/client-key.pem", certdir);
    if (SSL_use_certificate_file (ssl, cert, SSL_FILETYPE_PEM) != 1
        || SSL_use_PrivateKey_file (ssl, key, SSL_FILETYPE_PEM) != 1)
      raw_die ("loading %s", cert);
  }
  SSL_set_fd (ssl, conn.fd);
  if (SSL_connect (ssl) != 1)
    raw_die ("TLS handshake failed");
  /* TLS 1.3: the server judges our certificate after our Finished;
   * a refusal arrives with the first read.
   */
  SSL_CTX_free (ctx);
  conn.tls = ssl;
  conn.ops = &tls_ops;
}

/* Back to the clear, for a new connection. */
static void
stop_tls (void)
{
  SSL_shutdown (conn.tls);
  SSL_free (conn.tls);
  conn.tls = NULL;
  conn.ops = NULL;
}

/* A READ of 512 bytes at 0 must get a successful simple reply; then
 * NBD_CMD_DISC.
 */
static void
read_simple (uint64_t cookie, const char *what)
{
  struct nbd_simple_reply sr;
  char data[512];

  raw_request (&conn, NBD_CMD_READ, 0, cookie, 0, sizeof data);
  if (!raw_recv_all (&conn, &sr, sizeof sr))
    raw_die ("EOF instead of a reply to %s", what);
  if (be32toh (sr.magic) != NBD_SIMPLE_REPLY_MAGIC)
    raw_die ("%s: reply magic 0x%x, expected a simple reply", what,
             be32toh (sr.magic));
  if (be32toh (sr.error) != 0 || be64toh (sr.cookie) != cookie)
    raw_die ("%s: error %u", what, be32toh (sr.error));
  raw_expect_recv (&conn, data, sizeof data, "READ data");
  raw_request (&conn, NBD_CMD_DISC, 0, cookie, 0, sizeof data);
}

static void
mode_reset (void)
{
  static const char *const q[] = { "base:allocation" };
  char meta[64];
  size_t len = raw_meta_context_data (meta, sizeof meta, q, 1);

  greeting ();
  /* In the clear: structured replies and base:allocation. */
  expect (NBD_OPT_STRUCTURED_REPLY, NULL, 0, NBD_REP_ACK, "STRUCTURED_REPLY");
  expect (NBD_OPT_SET_META_CONTEXT, meta, len, NBD_REP_ACK,
          "SET_META_CONTEXT");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();

  /* Forgotten: meta contexts need structured replies again. */
  expect (NBD_OPT_LIST_META_CONTEXT, meta, len, NBD_REP_ERR_INVALID,
          "LIST_META_CONTEXT after STARTTLS");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ERR_INVALID, "second STARTTLS");
  expect (NBD_OPT_INFO, info_data, sizeof info_data, NBD_REP_ACK,
          "INFO over TLS");
  expect (NBD_OPT_GO, info_data, sizeof info_data, NBD_REP_ACK, "GO over TLS");
  /* Structured replies were forgotten: a READ gets a simple reply. */
  read_simple (7, "READ");
  SSL_shutdown (conn.tls);
}

/* Extended headers negotiated in the clear are forgotten too: over
 * TLS a compact READ gets a simple reply (with extended headers still
 * on, the compact header would close the connection), and asking for
 * them again is not a duplicate.
 */
static void
mode_reset_extended (const char *target)
{
  greeting ();
  expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
          "EXTENDED_HEADERS in the clear");
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();
  expect (NBD_OPT_GO, info_data, sizeof info_data, NBD_REP_ACK, "GO over TLS");
  read_simple (8, "a compact READ (extended headers survived STARTTLS?)");
  stop_tls ();
  close (conn.fd);

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
  SSL_shutdown (conn.tls);
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
  SSL_shutdown (conn.tls);
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
  uint64_t cookie;
  uint32_t err;

  if (buf == NULL || back == NULL)
    raw_die ("malloc: %m");
  greeting ();
  expect (NBD_OPT_STARTTLS, NULL, 0, NBD_REP_ACK, "STARTTLS");
  start_tls ();
  expect (NBD_OPT_GO, info_data, sizeof info_data, NBD_REP_ACK, "GO");
  for (unsigned i = 0; i < PIPE_WRITES; i++) {
    pipe_block (buf, i);
    raw_request (&conn, NBD_CMD_WRITE, 0, i, (uint64_t) i * PIPE_SIZE,
                 PIPE_SIZE);
    raw_send_all (&conn, buf, PIPE_SIZE);
  }
  for (unsigned i = 0; i < PIPE_WRITES; i++) {
    err = raw_read_simple_reply (&conn, &cookie);
    if (err != 0)
      raw_die ("WRITE %" PRIu64 ": error %u", cookie, err);
  }
  for (unsigned i = 0; i < PIPE_WRITES; i++) {
    raw_request (&conn, NBD_CMD_READ, 0, i, (uint64_t) i * PIPE_SIZE,
                 PIPE_SIZE);
    err = raw_read_simple_reply (&conn, &cookie);
    raw_expect_recv (&conn, back, PIPE_SIZE, "READ data");
    pipe_block (buf, i);
    if (err != 0 || memcmp (buf, back, PIPE_SIZE) != 0)
      raw_die ("READ %u: not what was written", i);
  }
  raw_request (&conn, NBD_CMD_DISC, 0, PIPE_WRITES - 1,
               (uint64_t) (PIPE_WRITES - 1) * PIPE_SIZE, PIPE_SIZE);
  SSL_shutdown (conn.tls);
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
  raw_send_all (&conn, &m, sizeof m);  /* one write: they arrive together */
  raw_expect_eof (&conn, "bytes right behind STARTTLS");
}

int
main (int argc, char *argv[])
{
  const char *mode;
  int c;

  signal (SIGPIPE, SIG_IGN);    /* the server may close first */
  raw_program = "client-tls-raw";
  raw_die_hook = print_openssl_errors;
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
  raw_mode = mode = argv[optind + 1];
  connect_to (argv[optind]);

  if (strcmp (mode, "greeting") == 0) {
    greeting ();
    expect (NBD_OPT_ABORT, NULL, 0, NBD_REP_ACK, "ABORT");
  }
  else if (strcmp (mode, "refused") == 0)
    raw_expect_eof (&conn, "a refused address");
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
    raw_die ("unknown mode");
  close (conn.fd);
  return EXIT_SUCCESS;
}
