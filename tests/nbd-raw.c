/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-raw: the hand-spoken NBD client side shared by the raw test
 * clients (see nbd-raw.h).  Blocking sockets; every wait is bounded by
 * the timeouts the caller sets with raw_timeouts().
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd-raw.h"

const char *raw_program = "nbd-raw";
const char *raw_mode = "";
const char *raw_die_prefix = "";
void (*raw_die_hook) (void);

void
raw_die (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "%s %s: %s", raw_program, raw_mode, raw_die_prefix);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\n");
  if (raw_die_hook)
    raw_die_hook ();
  exit (EXIT_FAILURE);
}

/* ---- connecting ---- */

static int
connect_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd == -1)
    raw_die ("socket: %m");
  snprintf (addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1)
    raw_die ("connect %s: %m", path);
  return fd;
}

static int
connect_tcp (const char *target, const char *source)
{
  char host[256];
  const char *colon = strrchr (target, ':');
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_NUMERICHOST }, *ai, *src;
  size_t n;
  int fd;

  if (colon == NULL)
    raw_die ("%s: expected HOST:PORT", target);
  n = colon - target;
  if (target[0] == '[' && n >= 2 && target[n - 1] == ']')
    snprintf (host, sizeof host, "%.*s", (int) (n - 2), target + 1);
  else
    snprintf (host, sizeof host, "%.*s", (int) n, target);
  if (getaddrinfo (host, colon + 1, &hints, &ai) != 0)
    raw_die ("%s: bad address", target);
  fd = socket (ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    raw_die ("socket: %m");
  if (source) {
    if (getaddrinfo (source, NULL, &hints, &src) != 0)
      raw_die ("-s %s: bad address", source);
    if (bind (fd, src->ai_addr, src->ai_addrlen) == -1)
      raw_die ("bind %s: %m", source);
    freeaddrinfo (src);
  }
  if (connect (fd, ai->ai_addr, ai->ai_addrlen) == -1)
    raw_die ("connect %s: %m", target);
  freeaddrinfo (ai);
  return fd;
}

int
raw_connect (const char *address, const char *source)
{
  if (strncmp (address, "tcp:", 4) == 0)
    return connect_tcp (address + 4, source);
  if (strchr (address, '/') || !strchr (address, ':'))
    return connect_unix (address);
  return connect_tcp (address, source);
}

/* 0 leaves that direction without a timeout. */
void
raw_timeouts (int fd, int recv_s, int send_s)
{
  struct timeval rtv = { .tv_sec = recv_s }, stv = { .tv_sec = send_s };

  if (recv_s)
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof rtv);
  if (send_s)
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv);
}

/* ---- bytes ---- */

static ssize_t
conn_send (struct raw_conn *c, const void *buf, size_t len)
{
  if (c->ops)
    return c->ops->send (c, buf, len);
  return send (c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t
conn_recv (struct raw_conn *c, void *buf, size_t len)
{
  if (c->ops)
    return c->ops->recv (c, buf, len);
  return recv (c->fd, buf, len, 0);
}

void
raw_send_all (struct raw_conn *c, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = conn_send (c, p, len);

    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      raw_die ("send: %m");
    p += r;
    len -= r;
  }
}

bool
raw_recv_all (struct raw_conn *c, void *buf, size_t len)
{
  char *p = buf;
  size_t got = 0;

  while (got < len) {
    ssize_t r = conn_recv (c, p + got, len - got);

    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      raw_die ("timed out waiting for the server");
    if ((r == 0 || (r == -1 && errno == ECONNRESET)) && got == 0)
      return false;
    if (r == 0)
      raw_die ("the server closed the connection after %zu of %zu bytes",
               got, len);
    if (r == -1)
      raw_die ("recv: %m");
    got += r;
  }
  return true;
}

void
raw_expect_recv (struct raw_conn *c, void *buf, size_t len, const char *what)
{
  if (!raw_recv_all (c, buf, len))
    raw_die ("the server closed the connection while %s was expected", what);
}

void
raw_expect_eof (struct raw_conn *c, const char *why)
{
  char ch;
  ssize_t r;

  do
    r = conn_recv (c, &ch, 1);
  while (r == -1 && errno == EINTR);
  if (r > 0)
    raw_die ("%s: the server sent more instead of closing", why);
  if (r == -1 && errno != ECONNRESET)
    raw_die ("%s: the server did not close the connection: %m", why);
}

void
raw_expect_hangup (struct raw_conn *c, const char *why)
{
  char buf[4096];

  for (;;) {
    ssize_t r = conn_recv (c, buf, sizeof buf);

    if (r == 0 || (r == -1 && errno == ECONNRESET))
      return;
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      raw_die ("%s: the server did not close the connection: %m", why);
    /* Left-over replies are fine; keep reading. */
  }
}

uint16_t
raw_get16 (const void *p)
{
  uint16_t v;

  memcpy (&v, p, sizeof v);
  return be16toh (v);
}

uint32_t
raw_get32 (const void *p)
{
  uint32_t v;

  memcpy (&v, p, sizeof v);
  return be32toh (v);
}

uint64_t
raw_get64 (const void *p)
{
  uint64_t v;

  memcpy (&v, p, sizeof v);
  return be64toh (v);
}

/* ---- the handshake ---- */

uint16_t
raw_greeting (struct raw_conn *c, uint32_t client_flags)
{
  struct nbd_greeting g;
  uint32_t f = htobe32 (client_flags);

  raw_expect_recv (c, &g, sizeof g, "the greeting");
  if (be64toh (g.magic) != NBD_MAGIC || be64toh (g.ihaveopt) != NBD_IHAVEOPT)
    raw_die ("bad greeting magic");
  raw_send_all (c, &f, sizeof f);
  return be16toh (g.flags);
}

void
raw_send_option (struct raw_conn *c, uint32_t option, const void *data,
                 uint32_t len)
{
  struct nbd_option o = {
    .magic = htobe64 (NBD_IHAVEOPT),
    .option = htobe32 (option),
    .length = htobe32 (len),
  };

  raw_send_all (c, &o, sizeof o);
  if (len)
    raw_send_all (c, data, len);
}

uint32_t
raw_option_reply (struct raw_conn *c, uint32_t option, uint16_t *tflags)
{
  for (;;) {
    struct nbd_option_reply r;
    char data[8192];
    uint32_t len, type;

    raw_expect_recv (c, &r, sizeof r, "an option reply");
    if (be64toh (r.magic) != NBD_REP_MAGIC)
      raw_die ("bad option reply magic");
    if (be32toh (r.option) != option)
      raw_die ("reply to option %u, expected %u", be32toh (r.option), option);
    len = be32toh (r.length);
    type = be32toh (r.reply);
    if (len > sizeof data)
      raw_die ("option reply of %u bytes", len);
    raw_expect_recv (c, data, len, "option reply data");
    if (type == NBD_REP_INFO && len == sizeof (struct nbd_info_export)
        && raw_get16 (data) == NBD_INFO_EXPORT && tflags) {
      struct nbd_info_export ie;

      memcpy (&ie, data, sizeof ie);
      *tflags = be16toh (ie.flags);
    }
    if (type != NBD_REP_SERVER && type != NBD_REP_INFO
        && type != NBD_REP_META_CONTEXT)
      return type;
  }
}

void
raw_option_expect (struct raw_conn *c, uint32_t option, const void *data,
                   uint32_t len, uint32_t want, const char *what)
{
  uint32_t got;

  raw_send_option (c, option, data, len);
  got = raw_option_reply (c, option, NULL);
  if (got != want)
    raw_die ("%s: option reply 0x%x, expected 0x%x", what, got, want);
}

size_t
raw_meta_context_data (char *buf, size_t size, const char *const *queries,
                       size_t n)
{
  size_t len = 8;
  uint32_t v;

  for (size_t i = 0; i < n; i++)
    len += 4 + strlen (queries[i]);
  if (len > size)
    raw_die ("meta context queries of %zu bytes", len);
  v = htobe32 (0);              /* the default export's name */
  memcpy (buf, &v, 4);
  v = htobe32 (n);
  memcpy (buf + 4, &v, 4);
  len = 8;
  for (size_t i = 0; i < n; i++) {
    size_t qlen = strlen (queries[i]);

    v = htobe32 (qlen);
    memcpy (buf + len, &v, 4);
    memcpy (buf + len + 4, queries[i], qlen);
    len += 4 + qlen;
  }
  return len;
}

uint16_t
raw_go (struct raw_conn *c)
{
  static const char data[6] = { 0 };  /* empty name, no info requests */
  uint16_t tflags = 0;
  uint32_t r;

  raw_send_option (c, NBD_OPT_GO, data, sizeof data);
  r = raw_option_reply (c, NBD_OPT_GO, &tflags);
  if (r != NBD_REP_ACK)
    raw_die ("NBD_OPT_GO: reply 0x%x", r);
  if (!(tflags & NBD_FLAG_HAS_FLAGS))
    raw_die ("NBD_OPT_GO: no NBD_INFO_EXPORT");
  return tflags;
}

uint64_t
raw_export_name (struct raw_conn *c, const char *name, uint16_t *tflags)
{
  uint64_t size;
  uint16_t flags;

  raw_send_option (c, NBD_OPT_EXPORT_NAME, name, strlen (name));
  raw_expect_recv (c, &size, sizeof size, "the export size");
  raw_expect_recv (c, &flags, sizeof flags, "the transmission flags");
  if (tflags)
    *tflags = be16toh (flags);
  return be64toh (size);
}

/* ---- transmission ---- */

void
raw_make_request (struct nbd_request *r, uint16_t type, uint16_t flags,
                  uint64_t cookie, uint64_t offset, uint32_t count)
{
  r->magic = htobe32 (NBD_REQUEST_MAGIC);
  r->flags = htobe16 (flags);
  r->type = htobe16 (type);
  r->cookie = htobe64 (cookie);
  r->offset = htobe64 (offset);
  r->count = htobe32 (count);
}

void
raw_request (struct raw_conn *c, uint16_t type, uint16_t flags,
             uint64_t cookie, uint64_t offset, uint32_t count)
{
  struct nbd_request r;

  raw_make_request (&r, type, flags, cookie, offset, count);
  raw_send_all (c, &r, sizeof r);
}

uint32_t
raw_read_simple_reply (struct raw_conn *c, uint64_t *cookie)
{
  struct nbd_simple_reply r;

  raw_expect_recv (c, &r, sizeof r, "a reply");
  if (be32toh (r.magic) != NBD_SIMPLE_REPLY_MAGIC)
    raw_die ("bad reply magic 0x%x, expected a simple reply",
             be32toh (r.magic));
  *cookie = be64toh (r.cookie);
  return be32toh (r.error);
}

uint32_t
raw_simple_reply (struct raw_conn *c, uint64_t cookie)
{
  uint64_t got;
  uint32_t err = raw_read_simple_reply (c, &got);

  if (got != cookie)
    raw_die ("reply to cookie %llu, expected %llu",
             (unsigned long long) got, (unsigned long long) cookie);
  return err;
}

void
raw_request_ext (struct raw_conn *c, uint16_t type, uint16_t flags,
                 uint64_t cookie, uint64_t offset, uint64_t length,
                 const void *payload, size_t plen)
{
  struct nbd_request_ext r = {
    .magic = htobe32 (NBD_EXTENDED_REQUEST_MAGIC),
    .flags = htobe16 (flags),
    .type = htobe16 (type),
    .cookie = htobe64 (cookie),
    .offset = htobe64 (offset),
    .length = htobe64 (length),
  };

  raw_send_all (c, &r, sizeof r);
  if (plen)
    raw_send_all (c, payload, plen);
}
