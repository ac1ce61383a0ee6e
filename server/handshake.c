/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the fixed-newstyle handshake.
 *
 * A named state machine (enum hs_state in internal.h) driven by
 * whatever input the loop has buffered, since the socket is
 * non-blocking and a client may send its options a byte at a time:
 *
 *   greeting sent -> HS_CLIENT_FLAGS -> HS_OPTION -> HS_OPTION_DATA
 *        -> (answer) -> HS_OPTION ... -> HS_DONE
 *                    \-> HS_OPTION_SKIP (option longer than we take)
 *
 * Options: EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO,
 * STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT
 * (base:allocation, and qemu:dirty-bitmap:NAME for each bitmap of an
 * export with changed-block tracking), EXTENDED_HEADERS; anything else
 * is read in full and answered NBD_REP_ERR_UNSUP, so the stream stays
 * in step.
 *
 * Extended headers (32-byte requests and replies with 64-bit lengths)
 * include everything structured replies give, and take precedence:
 * STRUCTURED_REPLY after them gets NBD_REP_ERR_EXT_HEADER_REQD, a
 * second EXTENDED_HEADERS NBD_REP_ERR_INVALID, and EXPORT_NAME (which
 * the protocol forbids then) closes the connection.  STRUCTURED_REPLY
 * before them is fine.  Only with them, and a metadata context
 * selected for the export, is NBD_FLAG_BLOCK_STATUS_PAYLOAD offered.
 *
 * TLS modes (the spec's NOTLS, and FORCEDTLS for --tls=require): with
 * --tls=off STARTTLS gets NBD_REP_ERR_UNSUP; with --tls=require every
 * option but STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD until TLS is
 * up (EXPORT_NAME, which cannot answer an error, closes the
 * connection), and never afterwards.  After STARTTLS's ACK the
 * transport becomes TLS (tls.c) and everything negotiated in the clear
 * is forgotten, so a man in the middle cannot inject it
 * (CVE-2021-3716); a second STARTTLS gets NBD_REP_ERR_INVALID.
 * The handshake must end within --timeout seconds (connection.c).
 * Clients beyond --max-connections get NBD_REP_ERR_POLICY to every
 * option, so they learn why.
 */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

#define BASE_ALLOCATION "base:allocation"
#define DIRTY_BITMAP_PREFIX "qemu:dirty-bitmap:"

static const char *
option_name (uint32_t option)
{
  switch (option) {
  case NBD_OPT_EXPORT_NAME: return "NBD_OPT_EXPORT_NAME";
  case NBD_OPT_ABORT: return "NBD_OPT_ABORT";
  case NBD_OPT_LIST: return "NBD_OPT_LIST";
  case NBD_OPT_STARTTLS: return "NBD_OPT_STARTTLS";
  case NBD_OPT_INFO: return "NBD_OPT_INFO";
  case NBD_OPT_GO: return "NBD_OPT_GO";
  case NBD_OPT_STRUCTURED_REPLY: return "NBD_OPT_STRUCTURED_REPLY";
  case NBD_OPT_LIST_META_CONTEXT: return "NBD_OPT_LIST_META_CONTEXT";
  case NBD_OPT_SET_META_CONTEXT: return "NBD_OPT_SET_META_CONTEXT";
  case NBD_OPT_EXTENDED_HEADERS: return "NBD_OPT_EXTENDED_HEADERS";
  default: return "unknown option";
  }
}

/* ---- replies ---- */

/* One option reply; data (len bytes, may be split in two) follows. */
static void
send_reply2 (struct connection *conn, uint32_t reply, const void *d1,
             size_t l1, const void *d2, size_t l2)
{
  struct outmsg *msg = outmsg_new (1, sizeof (struct nbd_option_reply)
                                   + l1 + l2);
  struct nbd_option_reply *r;

  if (msg == NULL) {
    log_error ("conn %" PRIu64 ": out of memory", conn->id);
    conn_kill (conn, "out of memory");
    return;
  }
  r = outmsg_put (msg, sizeof *r);
  r->magic = htobe64 (NBD_REP_MAGIC);
  r->option = htobe32 (conn->opt_hdr.option);
  r->reply = htobe32 (reply);
  r->length = htobe32 (l1 + l2);
  if (l1)
    memcpy (outmsg_put (msg, l1), d1, l1);
  if (l2)
    memcpy (outmsg_put (msg, l2), d2, l2);
  conn_queue (conn, msg);
}

static void
send_reply (struct connection *conn, uint32_t reply, const void *data,
            size_t len)
{
  send_reply2 (conn, reply, data, len, NULL, 0);
}

/* An error reply with a message for the user, also logged (debug). */
static void __attribute__ ((format (printf, 3, 4)))
send_error (struct connection *conn, uint32_t reply, const char *fs, ...)
{
  char text[256];
  va_list args;
  int n;

  va_start (args, fs);
  n = vsnprintf (text, sizeof text, fs, args);
  va_end (args);
  if (n < 0)
    n = 0;
  if ((size_t) n >= sizeof text)
    n = sizeof text - 1;
  conn_debug (conn, "%s: %s", option_name (conn->opt_hdr.option), text);
  send_reply (conn, reply, text, n);
}

/* ---- parsing helpers over the option data ---- */

struct cursor {
  const char *p;
  size_t left;
};

static bool
get_u32 (struct cursor *c, uint32_t *v)
{
  if (c->left < 4)
    return false;
  memcpy (v, c->p, 4);
  *v = be32toh (*v);
  c->p += 4;
  c->left -= 4;
  return true;
}

static bool
get_u16 (struct cursor *c, uint16_t *v)
{
  if (c->left < 2)
    return false;
  memcpy (v, c->p, 2);
  *v = be16toh (*v);
  c->p += 2;
  c->left -= 2;
  return true;
}

/* A length-prefixed string, pointing into the option data. */
static bool
get_string (struct cursor *c, const char **s, uint32_t *len)
{
  if (!get_u32 (c, len) || *len > c->left)
    return false;
  *s = c->p;
  c->p += *len;
  c->left -= *len;
  return true;
}

/* ---- options ---- */

/* Is any metadata context selected for exp? */
static bool
meta_selected (const struct connection *conn, const struct export *exp)
{
  return (conn->meta_allocation || conn->nr_meta_bitmaps > 0)
    && strcmp (conn->meta_export ? conn->meta_export : "", exp->name) == 0;
}

/* The transmission flags this connection gets for exp. */
static uint16_t
conn_tflags (const struct connection *conn, const struct export *exp)
{
  uint16_t flags = export_transmission_flags (exp, conn->structured);

  if (conn->extended && meta_selected (conn, exp))
    flags |= NBD_FLAG_BLOCK_STATUS_PAYLOAD;
  return flags;
}

static void
enter_transmission (struct connection *conn, struct export *exp)
{
  conn->exp = exp;
  conn->tflags = conn_tflags (conn, exp);
  /* Meta contexts chosen for another export do not carry over. */
  if (!meta_selected (conn, exp))
    meta_clear (conn);
  conn->hs = HS_DONE;
  conn_enter_transmission (conn, &transmission_phase);
  conn_debug (conn, "serving %s (%s, flags 0x%x)", exp->name,
              conn->extended ? "extended headers"
              : conn->structured ? "structured replies" : "simple replies",
              conn->tflags);
}

static int
opt_export_name (struct connection *conn, const char *data, size_t len)
{
  struct export *exp = conn->refused ? NULL : export_find (data, len);
  struct outmsg *msg;
  struct nbd_export_name_reply *r;
  size_t rlen = conn->no_zeroes ? offsetof (struct nbd_export_name_reply,
                                            zeroes) : sizeof *r;

  if (conn->extended) {
    log_warning ("conn %" PRIu64 " (%s): NBD_OPT_EXPORT_NAME after "
                 "NBD_OPT_EXTENDED_HEADERS (the protocol allows only "
                 "NBD_OPT_GO then): closing", conn->id, conn->peer);
    return -1;
  }
  if (exp == NULL) {
    /* This option cannot answer an error: the protocol says hang up. */
    log_warning ("conn %" PRIu64 " (%s): NBD_OPT_EXPORT_NAME: %s '%.*s': "
                 "closing", conn->id, conn->peer,
                 conn->refused ? "too many connections, refusing"
                 : "unknown export", (int) (len > 64 ? 64 : len), data);
    return -1;
  }
  msg = outmsg_new (1, rlen);
  if (msg == NULL)
    return -1;
  r = outmsg_put (msg, rlen);
  memset (r, 0, rlen);
  r->size = htobe64 (exp->size);
  r->flags = htobe16 (conn_tflags (conn, exp));
  conn_queue (conn, msg);
  enter_transmission (conn, exp);
  return 0;
}

static void
opt_list (struct connection *conn, size_t len)
{
  if (len != 0) {
    send_error (conn, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
    return;
  }
  for (size_t i = 0; i < nr_exports; i++) {
    uint32_t nlen = strlen (exports[i].name);
    char buf[4 + NBD_MAX_STRING];
    uint32_t be = htobe32 (nlen);

    if (nlen > NBD_MAX_STRING)
      continue;                 /* cannot happen: prefix= is short */
    memcpy (buf, &be, 4);
    memcpy (buf + 4, exports[i].name, nlen);
    send_reply2 (conn, NBD_REP_SERVER, buf, 4 + nlen,
                 exports[i].description, strlen (exports[i].description));
  }
  send_reply (conn, NBD_REP_ACK, NULL, 0);
}

static void
send_info_string (struct connection *conn, uint16_t info, const char *s)
{
  uint16_t be = htobe16 (info);

  send_reply2 (conn, NBD_REP_INFO, &be, 2, s, strlen (s));
}

/* NBD_OPT_INFO and NBD_OPT_GO.  Returns -1 to drop the connection. */
static int
opt_info_go (struct connection *conn, const char *data, size_t len, bool go)
{
  struct cursor c = { data, len };
  const char *name;
  uint32_t namelen;
  uint16_t nreq, req;
  bool want_name = false, want_desc = false;
  struct export *exp;
  struct nbd_info_export ie;
  struct nbd_info_block_size bs;

  if (!get_string (&c, &name, &namelen) || !get_u16 (&c, &nreq)
      || c.left != (size_t) nreq * 2) {
    send_error (conn, NBD_REP_ERR_INVALID, "malformed option data "
                "(length %zu)", len);
    return 0;
  }
  for (uint16_t i = 0; i < nreq; i++) {
    if (!get_u16 (&c, &req))
      break;                    /* cannot happen: checked above */
    if (req == NBD_INFO_NAME)
      want_name = true;
    else if (req == NBD_INFO_DESCRIPTION)
      want_desc = true;
    /* NBD_INFO_EXPORT and BLOCK_SIZE are always sent; others ignored. */
  }
  if (conn->refused) {
    send_error (conn, NBD_REP_ERR_POLICY, "too many connections "
                "(--max-connections %u): try again later",
                opt.max_connections);
    return 0;
  }
  if (namelen > NBD_MAX_STRING) {
    send_error (conn, NBD_REP_ERR_INVALID, "export name longer than %d "
                "bytes", NBD_MAX_STRING);
    return 0;
  }
  exp = export_find (name, namelen);
  if (exp == NULL) {
    send_error (conn, NBD_REP_ERR_UNKNOWN, "unknown export '%.*s'",
                (int) (namelen > 64 ? 64 : namelen), name);
    return 0;
  }

  ie.info = htobe16 (NBD_INFO_EXPORT);
  ie.size = htobe64 (exp->size);
  ie.flags = htobe16 (conn_tflags (conn, exp));
  send_reply (conn, NBD_REP_INFO, &ie, sizeof ie);
  if (want_name)
    send_info_string (conn, NBD_INFO_NAME, exp->name);
  if (want_desc)
    send_info_string (conn, NBD_INFO_DESCRIPTION, exp->description);
  /* Minimum: blksz (smaller requests are still served, by
   * read-modify-write in the cache).  Preferred: the host's I/O size,
   * at least a cache block.  Maximum: what the protocol guarantees
   * clients.
   */
  bs.info = htobe16 (NBD_INFO_BLOCK_SIZE);
  bs.minimum = htobe32 (exp->blksz);
  bs.preferred = htobe32 (cache_export_preferred (exp->ce));
  bs.maximum = htobe32 (MAX_PAYLOAD_ADVERTISED);
  send_reply (conn, NBD_REP_INFO, &bs, sizeof bs);
  send_reply (conn, NBD_REP_ACK, NULL, 0);
  if (go)
    enter_transmission (conn, exp);
  return 0;
}

static void
opt_structured_reply (struct connection *conn, size_t len)
{
  if (len != 0) {
    send_error (conn, NBD_REP_ERR_INVALID,
                "NBD_OPT_STRUCTURED_REPLY takes no data");
    return;
  }
  if (conn->extended) {
    send_error (conn, NBD_REP_ERR_EXT_HEADER_REQD, "extended headers are "
                "already negotiated, and include structured replies");
    return;
  }
  conn->structured = true;
  send_reply (conn, NBD_REP_ACK, NULL, 0);
}

static void
opt_extended_headers (struct connection *conn, size_t len)
{
  if (len != 0) {
    send_error (conn, NBD_REP_ERR_INVALID,
                "NBD_OPT_EXTENDED_HEADERS takes no data");
    return;
  }
  if (conn->extended) {
    send_error (conn, NBD_REP_ERR_INVALID, "extended headers are already "
                "negotiated");
    return;
  }
  conn->extended = true;
  conn->structured = true;
  send_reply (conn, NBD_REP_ACK, NULL, 0);
}

static void
send_meta_context (struct connection *conn, uint32_t id, const char *prefix,
                   const char *name)
{
  struct nbd_meta_context_reply r = { .context_id = htobe32 (id) };
  char full[sizeof DIRTY_BITMAP_PREFIX + 64];

  snprintf (full, sizeof full, "%s%s", prefix, name);
  send_reply2 (conn, NBD_REP_META_CONTEXT, &r, sizeof r, full, strlen (full));
}

static bool
query_is (const char *q, uint32_t qlen, const char *s)
{
  return qlen == strlen (s) && memcmp (q, s, qlen) == 0;
}

/* LIST: every bitmap of the export, as qemu:dirty-bitmap:NAME. */
static int
list_bitmap (void *opaque, const char *name, uint64_t dirty_bytes)
{
  send_meta_context (opaque, 0, DIRTY_BITMAP_PREFIX, name);
  return 0;
}

/* SET: select bitmap name (once), answering with its id. */
static void
select_bitmap (struct connection *conn, const char *name)
{
  unsigned i;

  for (i = 0; i < conn->nr_meta_bitmaps; i++)
    if (strcmp (conn->meta_bitmaps[i], name) == 0)
      return;
  if (i == MAX_META_BITMAPS) {
    conn_debug (conn, "more than %d dirty bitmaps asked for: %s ignored",
                MAX_META_BITMAPS, name);
    return;
  }
  conn->meta_bitmaps[i] = strdup (name);
  if (conn->meta_bitmaps[i] == NULL)
    return;
  conn->nr_meta_bitmaps++;
  send_meta_context (conn, DIRTY_BITMAP_ID + i, DIRTY_BITMAP_PREFIX, name);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. */
static void
opt_meta_context (struct connection *conn, const char *data, size_t len,
                  bool set)
{
  struct cursor c = { data, len };
  const char *name, *q = NULL;
  uint32_t namelen, nq, qlen = 0;
  bool allocation = false, all_bitmaps = false;
  struct export *exp;
  size_t plen = strlen (DIRTY_BITMAP_PREFIX);

  if (!conn->structured) {
    send_error (conn, NBD_REP_ERR_INVALID, "negotiate structured replies "
                "(NBD_OPT_STRUCTURED_REPLY) or extended headers "
                "(NBD_OPT_EXTENDED_HEADERS) first");
    return;
  }
  /* Check the whole syntax before acting on any query. */
  if (!get_string (&c, &name, &namelen) || !get_u32 (&c, &nq)) {
    send_error (conn, NBD_REP_ERR_INVALID, "malformed option data");
    return;
  }
  {
    struct cursor v = c;

    for (uint32_t i = 0; i < nq; i++)
      if (!get_string (&v, &q, &qlen)) {
        send_error (conn, NBD_REP_ERR_INVALID, "malformed query list");
        return;
      }
    if (v.left != 0) {
      send_error (conn, NBD_REP_ERR_INVALID, "trailing bytes after the "
                  "queries");
      return;
    }
  }
  /* Even a failed SET replaces the selection. */
  if (set)
    meta_clear (conn);
  exp = namelen <= NBD_MAX_STRING ? export_find (name, namelen) : NULL;
  if (exp == NULL) {
    send_error (conn, NBD_REP_ERR_UNKNOWN, "unknown export '%.*s'",
                (int) (namelen > 64 ? 64 : namelen), name);
    return;
  }
  if (set) {
    conn->meta_export = strdup (exp->name);
    if (conn->meta_export == NULL) {
      send_error (conn, NBD_REP_ERR_INVALID, "out of memory");
      return;
    }
  }

  if (nq == 0 && !set)
    allocation = all_bitmaps = true;    /* list everything we have */
  for (uint32_t i = 0; i < nq; i++) {
    if (!get_string (&c, &q, &qlen))
      break;                    /* cannot happen: checked above */
    if (query_is (q, qlen, BASE_ALLOCATION)
        || (!set && query_is (q, qlen, "base:")))
      allocation = true;
    else if (!set && (query_is (q, qlen, "qemu:")
                      || query_is (q, qlen, DIRTY_BITMAP_PREFIX)))
      all_bitmaps = true;
    else if (qlen > plen && qlen - plen <= 64
             && memcmp (q, DIRTY_BITMAP_PREFIX, plen) == 0) {
      char bname[65];

      memcpy (bname, q + plen, qlen - plen);
      bname[qlen - plen] = '\0';
      if (strlen (bname) == qlen - plen
          && cache_bitmap_exists (exp->ce, bname)) {
        if (set)
          select_bitmap (conn, bname);
        else
          send_meta_context (conn, 0, DIRTY_BITMAP_PREFIX, bname);
      }
    }
    /* Anything else (other namespaces, unknown leaves, bitmaps that
     * do not exist) matches nothing, which is not an error.
     */
  }
  if (allocation) {
    send_meta_context (conn, set ? BASE_ALLOCATION_ID : 0, BASE_ALLOCATION,
                       "");
    if (set)
      conn->meta_allocation = true;
  }
  if (all_bitmaps && cache_export_track_granularity (exp->ce))
    cache_bitmap_list (exp->ce, list_bitmap, conn);
  send_reply (conn, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_STARTTLS.  Returns -1 to drop the connection. */
static int
opt_starttls (struct connection *conn, size_t len)
{
  if (opt.tls == TLS_OFF) {
    send_error (conn, NBD_REP_ERR_UNSUP, "TLS is not enabled on this "
                "server (--tls=off)");
    return 0;
  }
  if (len != 0) {
    send_error (conn, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
    return 0;
  }
  if (conn->tls) {
    send_error (conn, NBD_REP_ERR_INVALID, "TLS is already active");
    return 0;
  }
  /* The client must wait for the ACK before its TLS handshake: bytes
   * already here were sent in the clear after STARTTLS.
   */
  if (conn->in_end > conn->in_start) {
    log_warning ("conn %" PRIu64 " (%s): data after NBD_OPT_STARTTLS "
                 "before the TLS handshake: closing", conn->id, conn->peer);
    return -1;
  }
  send_reply (conn, NBD_REP_ACK, NULL, 0);
  if (tls_start (conn) == -1)
    return -1;
  /* Nothing negotiated in the clear survives. */
  conn->structured = false;
  conn->extended = false;
  meta_clear (conn);
  return 0;
}

/* --tls=require before TLS: may this option be served? */
static bool
tls_required (const struct connection *conn, uint32_t option)
{
  return opt.tls == TLS_REQUIRE && conn->tls == NULL
    && option != NBD_OPT_STARTTLS && option != NBD_OPT_ABORT;
}

/* Act on a complete option.  Returns -1 to drop the connection. */
static int
process_option (struct connection *conn)
{
  uint32_t option = conn->opt_hdr.option;
  const char *data = conn->opt_data;
  size_t len = conn->opt_hdr.length;

  conn_debug (conn, "%s (%" PRIu32 "), %zu bytes of data",
              option_name (option), option, len);
  if (server_is_shutting_down () && option != NBD_OPT_ABORT) {
    if (option == NBD_OPT_EXPORT_NAME)
      return -1;
    send_error (conn, NBD_REP_ERR_SHUTDOWN, "the server is shutting down");
    return 0;
  }
  if (tls_required (conn, option)) {
    if (option == NBD_OPT_EXPORT_NAME) {
      log_warning ("conn %" PRIu64 " (%s): NBD_OPT_EXPORT_NAME without TLS "
                   "(--tls=require): closing", conn->id, conn->peer);
      return -1;
    }
    send_error (conn, NBD_REP_ERR_TLS_REQD, "this server requires TLS: "
                "send NBD_OPT_STARTTLS first");
    return 0;
  }
  if (conn->refused && option != NBD_OPT_ABORT
      && option != NBD_OPT_EXPORT_NAME && option != NBD_OPT_INFO
      && option != NBD_OPT_GO) {
    send_error (conn, NBD_REP_ERR_POLICY, "too many connections "
                "(--max-connections %u): try again later",
                opt.max_connections);
    return 0;
  }

  switch (option) {
  case NBD_OPT_EXPORT_NAME:
    return opt_export_name (conn, data, len);
  case NBD_OPT_ABORT:
    send_reply (conn, NBD_REP_ACK, NULL, 0);
    conn->hs = HS_DONE;
    conn_finish (conn, "client sent NBD_OPT_ABORT");
    return 0;
  case NBD_OPT_LIST:
    opt_list (conn, len);
    return 0;
  case NBD_OPT_STARTTLS:
    return opt_starttls (conn, len);
  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    return opt_info_go (conn, data, len, option == NBD_OPT_GO);
  case NBD_OPT_STRUCTURED_REPLY:
    opt_structured_reply (conn, len);
    return 0;
  case NBD_OPT_EXTENDED_HEADERS:
    opt_extended_headers (conn, len);
    return 0;
  case NBD_OPT_LIST_META_CONTEXT:
  case NBD_OPT_SET_META_CONTEXT:
    opt_meta_context (conn, data, len, option == NBD_OPT_SET_META_CONTEXT);
    return 0;
  default:
    send_error (conn, NBD_REP_ERR_UNSUP, "option %" PRIu32 " is not "
                "supported", option);
    return 0;
  }
}

/* ---- the state machine ---- */

/* Queue the greeting. */
static void
handshake_start (struct connection *conn)
{
  struct outmsg *msg = outmsg_new (1, sizeof (struct nbd_greeting));
  struct nbd_greeting *g;

  if (msg == NULL) {
    conn_kill (conn, "out of memory");
    return;
  }
  g = outmsg_put (msg, sizeof *g);
  g->magic = htobe64 (NBD_MAGIC);
  g->ihaveopt = htobe64 (NBD_IHAVEOPT);
  g->flags = htobe16 (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  conn_queue (conn, msg);
  conn_flush (conn);
  conn->hs = HS_CLIENT_FLAGS;
}

static size_t
avail (const struct connection *conn)
{
  return conn->in_end - conn->in_start;
}

static int
negotiate (struct connection *conn)
{
  for (;;) {
    if (conn->phase != PHASE_HANDSHAKE)
      return 0;
    switch (conn->hs) {
    case HS_CLIENT_FLAGS: {
      uint32_t flags;

      if (avail (conn) < 4)
        return 0;
      memcpy (&flags, conn->inbuf + conn->in_start, 4);
      conn->in_start += 4;
      flags = be32toh (flags);
      if (flags & ~(uint32_t) (NBD_FLAG_C_FIXED_NEWSTYLE
                               | NBD_FLAG_C_NO_ZEROES)) {
        log_warning ("conn %" PRIu64 " (%s): unknown client flags 0x%"
                     PRIx32 ": closing", conn->id, conn->peer, flags);
        return -1;
      }
      conn->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
      conn->hs = HS_OPTION;
      break;
    }

    case HS_OPTION: {
      struct nbd_option h;

      if (avail (conn) < sizeof h)
        return 0;
      memcpy (&h, conn->inbuf + conn->in_start, sizeof h);
      conn->in_start += sizeof h;
      if (be64toh (h.magic) != NBD_IHAVEOPT) {
        log_warning ("conn %" PRIu64 " (%s): bad option magic 0x%" PRIx64
                     ": closing", conn->id, conn->peer, be64toh (h.magic));
        return -1;
      }
      conn->opt_hdr.option = be32toh (h.option);
      conn->opt_hdr.length = be32toh (h.length);
      free (conn->opt_data);
      conn->opt_data = NULL;
      conn->opt_got = 0;
      if (conn->opt_hdr.length > MAX_OPTION_LENGTH) {
        conn->opt_skip = conn->opt_hdr.length;
        conn->hs = HS_OPTION_SKIP;
        break;
      }
      /* One spare byte, so a name can be handled as a C string. */
      conn->opt_data = malloc (conn->opt_hdr.length + 1);
      if (conn->opt_data == NULL)
        return -1;
      conn->hs = HS_OPTION_DATA;
      break;
    }

    case HS_OPTION_DATA: {
      size_t n = conn->opt_hdr.length - conn->opt_got;

      if (n > avail (conn))
        n = avail (conn);
      memcpy (conn->opt_data + conn->opt_got, conn->inbuf + conn->in_start,
              n);
      conn->in_start += n;
      conn->opt_got += n;
      if (conn->opt_got < conn->opt_hdr.length)
        return 0;
      conn->opt_data[conn->opt_got] = '\0';
      conn->hs = HS_OPTION;
      if (process_option (conn) == -1)
        return -1;
      break;
    }

    case HS_OPTION_SKIP: {
      size_t n = avail (conn);

      if (n > conn->opt_skip)
        n = conn->opt_skip;
      conn->in_start += n;
      conn->opt_skip -= n;
      if (conn->opt_skip > 0)
        return 0;
      conn->hs = HS_OPTION;
      if (conn->opt_hdr.option == NBD_OPT_EXPORT_NAME) {
        log_warning ("conn %" PRIu64 " (%s): export name of %" PRIu32
                     " bytes: closing", conn->id, conn->peer,
                     conn->opt_hdr.length);
        return -1;
      }
      if (tls_required (conn, conn->opt_hdr.option)) {
        send_error (conn, NBD_REP_ERR_TLS_REQD, "this server requires "
                    "TLS: send NBD_OPT_STARTTLS first");
        break;
      }
      send_error (conn, NBD_REP_ERR_TOO_BIG, "option data of %" PRIu32
                  " bytes is longer than the %d this server takes",
                  conn->opt_hdr.length, MAX_OPTION_LENGTH);
      break;
    }

    case HS_DONE:
      return 0;
    }
  }
}

/* Run the state machine over the buffered input; the option replies
 * it queued leave together.  Returns -1 to drop the connection.
 */
static int
handshake_input (struct connection *conn)
{
  int r = negotiate (conn);

  conn_flush (conn);
  return r;
}

/* connection.c's view of the handshake; request.c has the next. */
const struct phase_ops handshake_phase = {
  .name = "handshake",
  .start = handshake_start,
  .input = handshake_input,
  .free = meta_clear,
};
