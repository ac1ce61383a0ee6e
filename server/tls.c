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
 * Credentials (loaded by tls_init before privileges are dropped):
 * X.509 from --tls-certificates DIR in nbdkit's and qemu's layout
 * (ca-cert.pem, server-cert.pem, server-key.pem, optional
 * ca-crl.pem), with --tls-verify-peer requiring a client certificate
 * signed by the CA and not revoked; and PSK from --tls-psk FILE, lines
 * "username:hexkey" as psktool writes them, over TLS 1.3 (external PSK
 * through the find-session callback) and TLS 1.2 (PSK cipher suites).
 *
 * Key material: the PSK file is read into a buffer of our own, which
 * is wiped as soon as it is parsed (no stdio buffers).  The decoded
 * keys must stay for the life of the server, since every handshake
 * needs them and user= may have made the file unreadable by then; they
 * live in OpenSSL's secure heap (mlocked, kept out of core dumps) when
 * it can be set up, as do the private key's numbers, and are wiped at
 * exit.  OpenSSL wipes the copies it makes during a handshake.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#define TLS_RECORD          16384       /* largest TLS plaintext record */
#define TLS_RECORD_MAX      (TLS_RECORD + 512) /* with header, MAC, padding */
#define TLS_WBUF_SIZE       (64 * 1024) /* records sent in one go */
#define TLS_WBUF_FIRST      (32 * 1024) /* grows only for bulk replies */
#define TLS_READ_BUFFER     (64 * 1024) /* read-ahead: records per read */
#define PSK_FILE_MAX        (1024 * 1024)
#define PSK_KEY_MAX         64          /* bytes: OpenSSL's TLS 1.3 limit */
#define SECURE_HEAP_SIZE    (64 * 1024)

/* TLS 1.3 cipher suites, SHA-256 ones first: an external PSK is bound
 * to SHA-256 (GnuTLS's default, hence libnbd's and qemu's), and OpenSSL
 * ignores a PSK whose hash differs from the suite it chose.
 */
static const char tls13_suites[] =
  "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
  "TLS_AES_256_GCM_SHA384";
/* TLS 1.2: forward-secret AEAD suites for certificates, then the PSK
 * suites GnuTLS clients offer ("+ECDHE-PSK:+DHE-PSK:+PSK").
 */
static const char tls12_ciphers[] =
  "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:"
  "kECDHEPSK+CHACHA20:kDHEPSK+AESGCM:kDHEPSK+CHACHA20:kECDHEPSK+AES:"
  "kPSK+AESGCM:kPSK+CHACHA20:"
  "!aNULL:!eNULL:!SHA1:!DSS:!CAMELLIA:!ARIA";
static const unsigned char tls13_aes128gcm_sha256[] = { 0x13, 0x01 };

struct psk {
  char *user;
  unsigned char *key;           /* secure heap */
  size_t keylen;
};

static SSL_CTX *ctx;
static char *cert_dir;          /* --tls-certificates, made absolute */
static char *psk_file;          /* --tls-psk, made absolute */
static struct psk *psks;
static size_t nr_psks;

/* One client's TLS state (loop thread only). */
struct tls_conn {
  SSL *ssl;
  char *wbuf;                   /* records not yet sent: the write BIO */
  size_t wstart, wend, wcap;
  size_t wplain;                /* plaintext bytes in there, unreported */
  ev_io xw;                     /* wbuf waits for the socket (no queue) */
  bool started;                 /* the client's first TLS byte came */
  bool established;             /* handshake done */
  bool failed;                  /* fatal error: no SSL_shutdown */
  bool deferred;                /* recv returned data, then hit ... */
  int deferred_errno;           /* ... this error (0: EOF) */
  const char *psk_user;         /* the PSK identity used, if any */
  char unknown_user[64];        /* a PSK identity we do not know */
};

/* ---- errors ---- */

/* The most useful line OpenSSL has about the last failure. */
static void
describe_error (SSL *ssl, char *buf, size_t len)
{
  unsigned long e = ERR_peek_last_error ();
  long verify;

  if (e == 0) {
    snprintf (buf, len, "%s", "unknown error");
    return;
  }
  if (ERR_reason_error_string (e))
    snprintf (buf, len, "%s", ERR_reason_error_string (e));
  else
    ERR_error_string_n (e, buf, len);
  if (ERR_GET_REASON (e) == SSL_R_CERTIFICATE_VERIFY_FAILED && ssl
      && (verify = SSL_get_verify_result (ssl)) != X509_V_OK) {
    size_t n = strlen (buf);
    snprintf (buf + n, len - n, " (%s)",
              X509_verify_cert_error_string (verify));
  }
}

/* Log OpenSSL's error queue at start-up. */
static void
log_ssl_error (const char *what)
{
  char buf[256];

  describe_error (NULL, buf, sizeof buf);
  log_error ("%s: %s", what, buf);
  ERR_clear_error ();
}

/* ---- the PSK file ---- */

static int
hexval (int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Parse "username:hexkey" lines; the caller wipes buf. */
static int
parse_psk_file (const char *path, char *buf, size_t size)
{
  unsigned lineno = 0;
  char *line = buf, *end = buf + size;

  while (line < end) {
    char *nl = memchr (line, '\n', end - line);
    char *eol = nl ? nl : end, *colon;
    size_t hexlen, keylen, userlen;
    struct psk *p;

    lineno++;
    if (eol > line && eol[-1] == '\r')
      eol--;
    if (eol == line)
      goto next;                /* blank line */
    colon = memchr (line, ':', eol - line);
    if (colon == NULL || colon == line) {
      log_error ("--tls-psk %s: line %u: expected username:hexkey", path,
                 lineno);
      return -1;
    }
    userlen = colon - line;
    hexlen = eol - colon - 1;
    keylen = hexlen / 2;
    if (hexlen == 0 || hexlen % 2 || keylen > PSK_KEY_MAX) {
      log_error ("--tls-psk %s: line %u: the key must be an even number "
                 "of hex digits, at most %d bytes", path, lineno,
                 PSK_KEY_MAX);
      return -1;
    }
    for (size_t i = 0; i < nr_psks; i++)
      if (strlen (psks[i].user) == userlen
          && memcmp (psks[i].user, line, userlen) == 0) {
        log_error ("--tls-psk %s: line %u: user '%.*s' appears twice", path,
                   lineno, (int) userlen, line);
        return -1;
      }
    p = realloc (psks, (nr_psks + 1) * sizeof *psks);
    if (p == NULL) {
      log_error ("--tls-psk %s: %m", path);
      return -1;
    }
    psks = p;
    p = &psks[nr_psks];
    p->user = strndup (line, userlen);
    p->key = OPENSSL_secure_malloc (keylen);
    p->keylen = keylen;
    if (p->user == NULL || p->key == NULL) {
      free (p->user);
      OPENSSL_secure_free (p->key);
      log_error ("--tls-psk %s: out of memory", path);
      return -1;
    }
    nr_psks++;
    for (size_t i = 0; i < keylen; i++) {
      int hi = hexval ((unsigned char) colon[1 + 2 * i]);
      int lo = hexval ((unsigned char) colon[2 + 2 * i]);

      if (hi < 0 || lo < 0) {
        log_error ("--tls-psk %s: line %u: the key is not hexadecimal",
                   path, lineno);
        return -1;
      }
      p->key[i] = hi << 4 | lo;
    }
  next:
    line = nl ? nl + 1 : end;
  }
  if (nr_psks == 0) {
    log_error ("--tls-psk %s: no username:hexkey line in the file", path);
    return -1;
  }
  return 0;
}

static int
load_psk_file (const char *path)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf;
  size_t got = 0;
  int r;

  if (fd == -1 || fstat (fd, &st) == -1) {
    log_error ("--tls-psk %s: %m", path);
    return -1;
  }
  if (!S_ISREG (st.st_mode) || st.st_size > PSK_FILE_MAX) {
    log_error ("--tls-psk %s: not a regular file of at most %d bytes", path,
               PSK_FILE_MAX);
    return -1;
  }
  if (st.st_mode & 0077)
    log_warning ("--tls-psk %s: the keys are readable by other users "
                 "(chmod 600)", path);
  buf = OPENSSL_secure_malloc (st.st_size + 1);
  if (buf == NULL) {
    log_error ("--tls-psk %s: out of memory", path);
    return -1;
  }
  while (got < (size_t) st.st_size) {
    ssize_t n = read (fd, buf + got, st.st_size - got);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = EIO;
      log_error ("--tls-psk %s: read: %m", path);
      OPENSSL_secure_clear_free (buf, st.st_size + 1);
      return -1;
    }
    got += n;
  }
  r = parse_psk_file (path, buf, got);
  OPENSSL_secure_clear_free (buf, st.st_size + 1);
  return r;
}

static const struct psk *
psk_lookup (const unsigned char *user, size_t len)
{
  for (size_t i = 0; i < nr_psks; i++)
    if (strlen (psks[i].user) == len && memcmp (psks[i].user, user, len) == 0)
      return &psks[i];
  return NULL;
}

static void
remember_unknown_user (SSL *ssl, const unsigned char *user, size_t len)
{
  struct connection *conn = SSL_get_app_data (ssl);
  struct tls_conn *t = conn->tls;
  size_t n = len < sizeof t->unknown_user - 1 ? len
    : sizeof t->unknown_user - 1;

  for (size_t i = 0; i < n; i++)
    t->unknown_user[i] = user[i] >= 0x20 && user[i] < 0x7f ? user[i] : '?';
  t->unknown_user[n] = '\0';
}

/* TLS 1.3: the client offers an external PSK under this identity. */
static int
psk_find_session (SSL *ssl, const unsigned char *identity, size_t len,
                  SSL_SESSION **sess)
{
  struct connection *conn = SSL_get_app_data (ssl);
  const struct psk *p = psk_lookup (identity, len);
  const SSL_CIPHER *cipher;
  SSL_SESSION *s;

  *sess = NULL;
  if (p == NULL) {
    remember_unknown_user (ssl, identity, len);
    return 1;                   /* no PSK: certificates, if any */
  }
  cipher = SSL_CIPHER_find (ssl, tls13_aes128gcm_sha256);
  s = SSL_SESSION_new ();
  if (cipher == NULL || s == NULL
      || !SSL_SESSION_set1_master_key (s, p->key, p->keylen)
      || !SSL_SESSION_set_cipher (s, cipher)
      || !SSL_SESSION_set_protocol_version (s, TLS1_3_VERSION)) {
    SSL_SESSION_free (s);
    return 0;
  }
  conn->tls->psk_user = p->user;
  *sess = s;
  return 1;
}

/* TLS 1.2: a PSK cipher suite was chosen; identity is a C string. */
static unsigned int
psk_server_callback (SSL *ssl, const char *identity, unsigned char *key,
                     unsigned int max_len)
{
  struct connection *conn = SSL_get_app_data (ssl);
  const struct psk *p = psk_lookup ((const unsigned char *) identity,
                                    strlen (identity));

  if (p == NULL) {
    remember_unknown_user (ssl, (const unsigned char *) identity,
                           strlen (identity));
    return 0;
  }
  if (p->keylen > max_len)
    return 0;
  memcpy (key, p->key, p->keylen);
  conn->tls->psk_user = p->user;
  return p->keylen;
}

/* ---- X.509 ---- */

static char *
cert_path (const char *dir, const char *file)
{
  char *path;

  if (asprintf (&path, "%s/%s", dir, file) == -1) {
    log_error ("asprintf: %m");
    return NULL;
  }
  return path;
}

static int
load_crl (const char *path)
{
  X509_STORE *store = SSL_CTX_get_cert_store (ctx);
  X509_LOOKUP *lookup = X509_STORE_add_lookup (store, X509_LOOKUP_file ());

  if (lookup == NULL || X509_load_crl_file (lookup, path,
                                            X509_FILETYPE_PEM) <= 0) {
    log_ssl_error (path);
    return -1;
  }
  X509_STORE_set_flags (store, X509_V_FLAG_CRL_CHECK);
  return 0;
}

static int
load_certificates (const char *dir, bool verify_peer)
{
  CLEANUP_FREE char *ca = cert_path (dir, "ca-cert.pem");
  CLEANUP_FREE char *cert = cert_path (dir, "server-cert.pem");
  CLEANUP_FREE char *key = cert_path (dir, "server-key.pem");
  CLEANUP_FREE char *crl = cert_path (dir, "ca-crl.pem");
  const char *unreadable;

  if (!ca || !cert || !key || !crl)
    return -1;
  /* OpenSSL's "system lib" says less than errno. */
  unreadable = access (cert, R_OK) == -1 ? cert
    : access (key, R_OK) == -1 ? key : NULL;
  if (unreadable) {
    log_error ("--tls-certificates: %s: %m", unreadable);
    return -1;
  }
  if (SSL_CTX_use_certificate_chain_file (ctx, cert) != 1) {
    log_ssl_error (cert);
    return -1;
  }
  if (SSL_CTX_use_PrivateKey_file (ctx, key, SSL_FILETYPE_PEM) != 1
      || SSL_CTX_check_private_key (ctx) != 1) {
    unsigned long e = ERR_peek_last_error ();

    if (ERR_GET_REASON (e) == X509_R_KEY_VALUES_MISMATCH) {
      log_error ("--tls-certificates: %s does not match %s", key, cert);
      ERR_clear_error ();
    }
    else
      log_ssl_error (key);
    return -1;
  }
  if (!verify_peer)
    return 0;

  if (access (ca, R_OK) == -1) {
    log_error ("--tls-verify-peer: %s: %m", ca);
    return -1;
  }
  {
    STACK_OF (X509_NAME) *names = SSL_load_client_CA_file (ca);

    if (names == NULL || SSL_CTX_load_verify_locations (ctx, ca, NULL) != 1) {
      sk_X509_NAME_pop_free (names, X509_NAME_free);
      log_ssl_error (ca);
      return -1;
    }
    SSL_CTX_set_client_CA_list (ctx, names);
  }
  if (access (crl, F_OK) == 0 && load_crl (crl) == -1)
    return -1;
  SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                      NULL);
  return 0;
}

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

  if (t->wend + len > t->wcap) {
    if (t->wstart > 0) {
      memmove (t->wbuf, t->wbuf + t->wstart, t->wend - t->wstart);
      t->wend -= t->wstart;
      t->wstart = 0;
    }
    if (t->wend + len > t->wcap) {
      size_t cap = t->wcap ? t->wcap : TLS_WBUF_FIRST;
      char *p;

      while (cap < t->wend + len)
        cap *= 2;
      p = realloc (t->wbuf, cap);
      if (p == NULL)
        return 0;
      t->wbuf = p;
      t->wcap = cap;
    }
  }
  memcpy (t->wbuf + t->wend, data, len);
  t->wend += len;
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
    log_ssl_error ("BIO_meth_new");
    return -1;
  }
  return 0;
}

/* ---- set-up ---- */

/* Before detaching: the daemon changes directory to /, and a
 * credential that is not there is best reported at once.
 */
int
tls_resolve_paths (void)
{
  if (opt.tls == TLS_OFF)
    return 0;
  if (opt.tls_certificates
      && (cert_dir = realpath (opt.tls_certificates, NULL)) == NULL) {
    log_error ("--tls-certificates %s: %m", opt.tls_certificates);
    return -1;
  }
  if (opt.tls_psk && (psk_file = realpath (opt.tls_psk, NULL)) == NULL) {
    log_error ("--tls-psk %s: %m", opt.tls_psk);
    return -1;
  }
  return 0;
}

int
tls_init (void)
{
  if (opt.tls == TLS_OFF)
    return 0;

  /* Best effort: without it, OPENSSL_secure_malloc is malloc. */
  if (CRYPTO_secure_malloc_init (SECURE_HEAP_SIZE, 32) == 0)
    log_debug ("TLS: no secure heap (mlock failed?): keys live in "
               "ordinary memory");

  if (wbio_method == NULL && wbio_init () == -1)
    return -1;
  ctx = SSL_CTX_new (TLS_server_method ());
  if (ctx == NULL) {
    log_ssl_error ("SSL_CTX_new");
    return -1;
  }
  if (!SSL_CTX_set_min_proto_version (ctx, TLS1_2_VERSION)
      || !SSL_CTX_set_max_proto_version (ctx, TLS1_3_VERSION)
      || !SSL_CTX_set_ciphersuites (ctx, tls13_suites)
      || !SSL_CTX_set_cipher_list (ctx, tls12_ciphers)) {
    log_ssl_error ("TLS settings");
    goto fail;
  }
  SSL_CTX_set_options (ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION
                       | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET
                       | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode (ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  /* No resumption: every connection authenticates afresh. */
  SSL_CTX_set_session_cache_mode (ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets (ctx, 0);
  SSL_CTX_set_session_id_context (ctx, (const unsigned char *) PACKAGE_NAME,
                                  strlen (PACKAGE_NAME));
  SSL_CTX_set_dh_auto (ctx, 1);
  SSL_CTX_set_read_ahead (ctx, 1);
  SSL_CTX_set_default_read_buffer_len (ctx, TLS_READ_BUFFER);

  if (cert_dir && load_certificates (cert_dir, opt.tls_verify_peer) == -1)
    goto fail;
  if (psk_file) {
    if (load_psk_file (psk_file) == -1)
      goto fail;
    SSL_CTX_set_psk_server_callback (ctx, psk_server_callback);
    SSL_CTX_set_psk_find_session_callback (ctx, psk_find_session);
  }
  log_debug ("TLS %s: %s%s%s%s", opt.tls == TLS_REQUIRE ? "required"
             : "offered", opt.tls_certificates ? "X.509" : "",
             opt.tls_certificates && opt.tls_psk ? " and " : "",
             opt.tls_psk ? "PSK" : "",
             opt.tls_verify_peer ? ", client certificates required" : "");
  return 0;

 fail:
  tls_cleanup ();
  return -1;
}

void
tls_cleanup (void)
{
  for (size_t i = 0; i < nr_psks; i++) {
    free (psks[i].user);
    OPENSSL_secure_clear_free (psks[i].key, psks[i].keylen);
  }
  free (psks);
  psks = NULL;
  nr_psks = 0;
  SSL_CTX_free (ctx);
  ctx = NULL;
  BIO_meth_free (wbio_method);
  wbio_method = NULL;
  free (cert_dir);
  free (psk_file);
  cert_dir = psk_file = NULL;
  if (CRYPTO_secure_malloc_initialized ())
    CRYPTO_secure_malloc_done ();
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

  while (t->wstart < t->wend) {
    r = send (conn->fd, t->wbuf + t->wstart, t->wend - t->wstart,
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
  t->wstart = t->wend = 0;
  return 0;
}

/* Records made while reading (handshake flights, alerts) go out now,
 * or when the socket takes them.
 */
static void
flush_after_read (struct connection *conn)
{
  struct tls_conn *t = conn->tls;

  if (t->wend > t->wstart && flush_wbuf (conn) == 1)
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
              t->psk_user ? ", PSK user " : "",
              t->psk_user ? t->psk_user : "",
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
    describe_error (t->ssl, buf, sizeof buf);
  else
    snprintf (buf, sizeof buf, "OpenSSL wants to %s while %s",
              err == SSL_ERROR_WANT_READ ? "read" : "write",
              reading ? "reading" : "writing");
  if (!t->psk_user && t->unknown_user[0])
    log_warning ("conn %" PRIu64 " (%s): %s failed: unknown PSK user '%s' "
                 "(%s): closing", conn->id, conn->peer, what,
                 t->unknown_user, buf);
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
         && t->wend - t->wstart + TLS_RECORD_MAX <= TLS_WBUF_SIZE) {
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
  free (t->wbuf);
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

  if (t == NULL || (t->ssl = SSL_new (ctx)) == NULL
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
  SSL_set_app_data (t->ssl, conn);
  SSL_set_accept_state (t->ssl);
  ev_io_init (&t->xw, xw_cb, conn->fd, EV_WRITE);
  t->xw.data = conn;
  conn->tls = t;
  conn->ops = &tls_transport;
  return 0;
}
