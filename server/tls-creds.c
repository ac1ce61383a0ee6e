/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: TLS credentials and the one SSL_CTX.
 *
 * tls.c moves bytes; this file decides who may talk.  It loads the
 * credentials (tls_creds_init, before privileges are dropped) into the
 * SSL_CTX every connection's session is made from (tls_session_new):
 * X.509 from --tls-certificates DIR in nbdkit's and qemu's layout
 * (ca-cert.pem, server-cert.pem, server-key.pem, optional
 * ca-crl.pem), with --tls-verify-peer requiring a client certificate
 * signed by the CA and not revoked; and PSK from --tls-psk FILE, lines
 * "username:hexkey" as psktool writes them, over TLS 1.3 (external PSK
 * through the find-session callback) and TLS 1.2 (PSK cipher suites).
 * The PSK callbacks note what they learn about the client in the
 * session's struct tls_peer, which tls.c logs.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "vector.h"

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
DEFINE_VECTOR (psk_vector, struct psk);

static SSL_CTX *ctx;
static char *cert_dir;          /* --tls-certificates, made absolute */
static char *psk_file;          /* --tls-psk, made absolute */
static struct psk_vector psks;

/* ---- errors ---- */

/* The most useful line OpenSSL has about the last failure. */
void
tls_describe_error (SSL *ssl, char *buf, size_t len)
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
void
tls_log_ssl_error (const char *what)
{
  char buf[256];

  tls_describe_error (NULL, buf, sizeof buf);
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
    struct psk psk, *p;

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
    for (size_t i = 0; i < psks.len; i++)
      if (strlen (psks.ptr[i].user) == userlen
          && memcmp (psks.ptr[i].user, line, userlen) == 0) {
        log_error ("--tls-psk %s: line %u: user '%.*s' appears twice", path,
                   lineno, (int) userlen, line);
        return -1;
      }
    psk = (struct psk) {
      .user = strndup (line, userlen),
      .key = OPENSSL_secure_malloc (keylen),
      .keylen = keylen,
    };
    if (psk.user == NULL || psk.key == NULL
        || psk_vector_append (&psks, psk) == -1) {
      free (psk.user);
      OPENSSL_secure_free (psk.key);
      log_error ("--tls-psk %s: out of memory", path);
      return -1;
    }
    p = &psks.ptr[psks.len - 1];
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
  if (psks.len == 0) {
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
  for (size_t i = 0; i < psks.len; i++)
    if (strlen (psks.ptr[i].user) == len
        && memcmp (psks.ptr[i].user, user, len) == 0)
      return &psks.ptr[i];
  return NULL;
}

static void
remember_unknown_user (SSL *ssl, const unsigned char *user, size_t len)
{
  struct tls_peer *t = SSL_get_app_data (ssl);
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
  struct tls_peer *peer = SSL_get_app_data (ssl);
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
  peer->psk_user = p->user;
  *sess = s;
  return 1;
}

/* TLS 1.2: a PSK cipher suite was chosen; identity is a C string. */
static unsigned int
psk_server_callback (SSL *ssl, const char *identity, unsigned char *key,
                     unsigned int max_len)
{
  struct tls_peer *peer = SSL_get_app_data (ssl);
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
  peer->psk_user = p->user;
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
    tls_log_ssl_error (path);
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
    tls_log_ssl_error (cert);
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
      tls_log_ssl_error (key);
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
      tls_log_ssl_error (ca);
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
tls_creds_init (void)
{
  /* Best effort: without it, OPENSSL_secure_malloc is malloc. */
  if (CRYPTO_secure_malloc_init (SECURE_HEAP_SIZE, 32) == 0)
    log_debug ("TLS: no secure heap (mlock failed?): keys live in "
               "ordinary memory");

  ctx = SSL_CTX_new (TLS_server_method ());
  if (ctx == NULL) {
    tls_log_ssl_error ("SSL_CTX_new");
    return -1;
  }
  if (!SSL_CTX_set_min_proto_version (ctx, TLS1_2_VERSION)
      || !SSL_CTX_set_max_proto_version (ctx, TLS1_3_VERSION)
      || !SSL_CTX_set_ciphersuites (ctx, tls13_suites)
      || !SSL_CTX_set_cipher_list (ctx, tls12_ciphers)) {
    tls_log_ssl_error ("TLS settings");
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
  tls_creds_cleanup ();
  return -1;
}

void
tls_creds_cleanup (void)
{
  for (size_t i = 0; i < psks.len; i++) {
    free (psks.ptr[i].user);
    OPENSSL_secure_clear_free (psks.ptr[i].key, psks.ptr[i].keylen);
  }
  psk_vector_reset (&psks);
  SSL_CTX_free (ctx);
  ctx = NULL;
  free (cert_dir);
  free (psk_file);
  cert_dir = psk_file = NULL;
  if (CRYPTO_secure_malloc_initialized ())
    CRYPTO_secure_malloc_done ();
}

SSL *
tls_session_new (struct tls_peer *peer)
{
  SSL *ssl = SSL_new (ctx);

  if (ssl)
    SSL_set_app_data (ssl, peer);
  return ssl;
}
