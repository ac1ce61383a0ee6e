/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: building replies, and the errno map.
 *
 * A reply is one outmsg: an iovec list over small headers kept in the
 * message's own arena and, for reads, the data buffer, which the
 * message frees once sent.  Simple replies serve clients that did not
 * negotiate structured replies (and successful non-reads of those that
 * did); structured ones carry reads as OFFSET_DATA and OFFSET_HOLE
 * chunks, block status, and errors with a message.  With extended
 * headers every reply is a chunk behind a 32-byte header that echoes
 * the request's offset: a "simple" success becomes a NONE chunk, block
 * status BLOCK_STATUS_EXT with 64-bit extent lengths.  The connection
 * (req->conn->extended) says which form a reply takes; the functions
 * below size their messages accordingly.  Byte order is converted here
 * and nowhere else on the way out.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

/* One allocation: the struct, max_iov iovecs, room for max_pins pins,
 * then hdr_cap bytes of headers.
 */
static struct outmsg *
outmsg_alloc (size_t max_iov, size_t max_pins, size_t hdr_cap)
{
  struct outmsg *msg;

  msg = malloc (sizeof *msg + max_iov * sizeof (struct iovec)
                + max_pins * sizeof (struct cache_pin *) + hdr_cap);
  if (msg == NULL)
    return NULL;
  memset (msg, 0, sizeof *msg);
  msg->max_iov = max_iov;
  msg->hdr_cap = hdr_cap;
  msg->iov = (struct iovec *) (msg + 1);
  msg->pins = max_pins ? (struct cache_pin **) (msg->iov + max_iov) : NULL;
  msg->hdr = (char *) (msg->iov + max_iov) + max_pins * sizeof *msg->pins;
  return msg;
}

struct outmsg *
outmsg_new (size_t max_iov, size_t hdr_cap)
{
  return outmsg_alloc (max_iov, 0, hdr_cap);
}

void
outmsg_free (struct outmsg *msg)
{
  if (msg) {
    if (msg->npins)
      cache_unpin (msg->pins, msg->npins);
    free (msg->data);
    free (msg);
  }
}

void *
outmsg_put (struct outmsg *msg, size_t len)
{
  void *p = msg->hdr + msg->hdr_used;

  if (msg->hdr_used + len > msg->hdr_cap)
    abort ();                   /* the caller sized the message wrongly */
  msg->hdr_used += len;
  /* Consecutive header pieces share one iovec. */
  if (msg->niov > 0) {
    struct iovec *prev = &msg->iov[msg->niov - 1];
    char *base = prev->iov_base;

    if (base >= msg->hdr && base < msg->hdr + msg->hdr_cap
        && base + prev->iov_len == (char *) p) {
      prev->iov_len += len;
      return p;
    }
  }
  if (msg->niov >= msg->max_iov)
    abort ();
  msg->iov[msg->niov++] = (struct iovec) { .iov_base = p, .iov_len = len };
  return p;
}

void
outmsg_put_data (struct outmsg *msg, const void *buf, size_t len)
{
  if (msg->niov >= msg->max_iov)
    abort ();
  if (len > 0)
    msg->iov[msg->niov++] = (struct iovec) {
      .iov_base = (void *) buf, .iov_len = len
    };
}

size_t
outmsg_bytes (const struct outmsg *msg)
{
  size_t n = 0;

  for (size_t i = msg->cur; i < msg->niov; i++)
    n += msg->iov[i].iov_len;
  return n;
}

/* The one errno to NBD error map.  ENOTSUP means something only for
 * FAST_ZERO and EOVERFLOW only for DF; elsewhere they, and anything
 * not listed, become EINVAL as the protocol asks.
 */
uint32_t
nbd_errno (int err, uint16_t cmd_flags)
{
  switch (err) {
  case 0:
    return NBD_SUCCESS;
  case EROFS:
  case EPERM:
  case EACCES:
    return NBD_EPERM;
  case EIO:
    return NBD_EIO;
  case ENOMEM:
    return NBD_ENOMEM;
  case ENOSPC:
  case EDQUOT:
  case EFBIG:
    return NBD_ENOSPC;
  case ESHUTDOWN:
    return NBD_ESHUTDOWN;
  case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
  case EOPNOTSUPP:
#endif
    return cmd_flags & NBD_CMD_FLAG_FAST_ZERO ? NBD_ENOTSUP : NBD_EINVAL;
  case EOVERFLOW:
    return cmd_flags & NBD_CMD_FLAG_DF ? NBD_EOVERFLOW : NBD_EINVAL;
  default:
    return NBD_EINVAL;
  }
}

static bool
extended (const struct request *req)
{
  return req->conn && req->conn->extended;
}

/* The size of a chunk header on req's connection. */
static size_t
chunk_size (const struct request *req)
{
  return extended (req) ? sizeof (struct nbd_extended_reply)
    : sizeof (struct nbd_structured_reply);
}

/* A chunk header at p (chunk_size bytes). */
static void
chunk_header (void *p, const struct request *req, uint16_t flags,
              uint16_t type, uint64_t length)
{
  if (extended (req)) {
    struct nbd_extended_reply r = {
      .magic = htobe32 (NBD_EXTENDED_REPLY_MAGIC),
      .flags = htobe16 (flags),
      .type = htobe16 (type),
      .cookie = htobe64 (req->cookie),
      .offset = htobe64 (req->offset),
      .length = htobe64 (length),
    };
    memcpy (p, &r, sizeof r);
  }
  else {
    struct nbd_structured_reply r = {
      .magic = htobe32 (NBD_STRUCTURED_REPLY_MAGIC),
      .flags = htobe16 (flags),
      .type = htobe16 (type),
      .cookie = htobe64 (req->cookie),
      .length = htobe32 (length),
    };
    memcpy (p, &r, sizeof r);
  }
}

static void
put_chunk (struct outmsg *msg, const struct request *req, uint16_t flags,
           uint16_t type, uint64_t length)
{
  chunk_header (outmsg_put (msg, chunk_size (req)), req, flags, type, length);
}

size_t
reply_simple_size (const struct request *req, uint32_t error)
{
  /* Extended: a NONE chunk, or an ERROR chunk without a message. */
  if (!extended (req))
    return sizeof (struct nbd_simple_reply);
  return sizeof (struct nbd_extended_reply)
    + (error == NBD_SUCCESS ? 0 : sizeof (struct nbd_chunk_error));
}

void
reply_simple_header (void *p, const struct request *req, uint32_t error)
{
  if (extended (req)) {
    if (error == NBD_SUCCESS)
      chunk_header (p, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
    else {
      struct nbd_chunk_error e = { .error = htobe32 (error) };

      chunk_header (p, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                    sizeof e);
      memcpy ((char *) p + sizeof (struct nbd_extended_reply), &e, sizeof e);
    }
  }
  else {
    struct nbd_simple_reply r = {
      .magic = htobe32 (NBD_SIMPLE_REPLY_MAGIC),
      .error = htobe32 (error),
      .cookie = htobe64 (req->cookie),
    };

    memcpy (p, &r, sizeof r);
  }
}

static void
put_simple (struct outmsg *msg, const struct request *req, uint32_t error)
{
  reply_simple_header (outmsg_put (msg, reply_simple_size (req, error)), req,
                       error);
}

size_t
reply_read_header_size (const struct request *req, bool structured)
{
  return structured ? chunk_size (req) + sizeof (struct nbd_chunk_offset_data)
    : sizeof (struct nbd_simple_reply);
}

void
reply_read_header (void *p, const struct request *req, bool structured)
{
  if (structured) {
    struct nbd_chunk_offset_data d = { .offset = htobe64 (req->offset) };

    chunk_header (p, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                  sizeof d + req->count);
    memcpy ((char *) p + chunk_size (req), &d, sizeof d);
  }
  else
    reply_simple_header (p, req, NBD_SUCCESS);
}

struct outmsg *
reply_ok (const struct request *req)
{
  struct outmsg *msg = outmsg_new (1, reply_simple_size (req, NBD_SUCCESS));

  if (msg)
    put_simple (msg, req, NBD_SUCCESS);
  return msg;
}

struct outmsg *
reply_error (const struct request *req, bool structured, int err,
             const char *text)
{
  uint32_t error = nbd_errno (err, req->flags);
  size_t len = text ? strlen (text) : 0;
  struct outmsg *msg;

  if (error == NBD_SUCCESS)     /* an error path must not look like success */
    error = NBD_EIO;
  if (req->conn && req->conn->exp)      /* counted for stats.c */
    __atomic_fetch_add (&req->conn->exp->request_errors, 1, __ATOMIC_RELAXED);
  if (!structured) {
    msg = outmsg_new (1, reply_simple_size (req, error));
    if (msg)
      put_simple (msg, req, error);
    return msg;
  }
  if (len > NBD_MAX_STRING)
    len = NBD_MAX_STRING;
  msg = outmsg_new (1, chunk_size (req) + sizeof (struct nbd_chunk_error)
                    + len);
  if (msg) {
    struct nbd_chunk_error *e;

    put_chunk (msg, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
               sizeof *e + len);
    e = outmsg_put (msg, sizeof *e);
    e->error = htobe32 (error);
    e->msg_len = htobe16 (len);
    memcpy (outmsg_put (msg, len), text, len);
  }
  return msg;
}

/* OFFSET_DATA chunks for [offset, offset+length) of the request, at
 * most MAX_PAYLOAD_ADVERTISED each (the protocol forbids chunks larger
 * than the advertised maximum payload).
 */
static void
put_data_chunks (struct outmsg *msg, const struct request *req,
                 const char *buf, uint64_t offset, uint64_t length,
                 bool last)
{
  while (length > 0) {
    uint64_t n = length > MAX_PAYLOAD_ADVERTISED
      ? MAX_PAYLOAD_ADVERTISED : length;
    struct nbd_chunk_offset_data *d;

    put_chunk (msg, req, last && n == length ? NBD_REPLY_FLAG_DONE : 0,
               NBD_REPLY_TYPE_OFFSET_DATA, sizeof *d + n);
    d = outmsg_put (msg, sizeof *d);
    d->offset = htobe64 (offset);
    outmsg_put_data (msg, buf + (offset - req->offset), n);
    offset += n;
    length -= n;
  }
}

#define CHUNKS_OF(len) (((len) + MAX_PAYLOAD_ADVERTISED - 1) \
                        / MAX_PAYLOAD_ADVERTISED)

struct outmsg *
reply_read_data (const struct request *req, bool structured, void *buf)
{
  struct outmsg *msg;
  size_t chunks = CHUNKS_OF (req->count);

  if (!structured) {
    msg = outmsg_new (2, sizeof (struct nbd_simple_reply));
    if (msg == NULL)
      return NULL;
    put_simple (msg, req, NBD_SUCCESS);
    outmsg_put_data (msg, buf, req->count);
  }
  else if (req->count == 0) {
    msg = outmsg_new (1, chunk_size (req));
    if (msg == NULL)
      return NULL;
    put_chunk (msg, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
  }
  else {
    msg = outmsg_new (2 * chunks,
                      chunks * (chunk_size (req)
                                + sizeof (struct nbd_chunk_offset_data)));
    if (msg == NULL)
      return NULL;
    put_data_chunks (msg, req, buf, req->offset, req->count, true);
  }
  msg->data = buf;
  return msg;
}

struct outmsg *
reply_read_inline (const struct request *req, bool structured, void **data)
{
  size_t hdr = reply_read_header_size (req, structured);
  struct outmsg *msg = outmsg_new (1, hdr + req->count);

  if (msg == NULL)
    return NULL;
  reply_read_header (outmsg_put (msg, hdr), req, structured);
  *data = outmsg_put (msg, req->count);  /* joins the header's iovec */
  return msg;
}

struct outmsg *
reply_read_pinned (const struct request *req, bool structured, size_t pins)
{
  size_t hdr = reply_read_header_size (req, structured);
  struct outmsg *msg = outmsg_alloc (1 + pins, pins, hdr);

  if (msg == NULL)
    return NULL;
  reply_read_header (outmsg_put (msg, hdr), req, structured);
  return msg;
}

struct outmsg *
reply_read_runs (const struct request *req, void *buf,
                 const struct read_run *runs, size_t nr_runs)
{
  size_t max_iov = 0, hdr = 0;
  struct outmsg *msg;

  for (size_t i = 0; i < nr_runs; i++) {
    if (runs[i].hole) {
      max_iov += 1;
      hdr += chunk_size (req) + sizeof (struct nbd_chunk_offset_hole);
    }
    else {
      size_t c = CHUNKS_OF (runs[i].length);
      max_iov += 2 * c;
      hdr += c * (chunk_size (req) + sizeof (struct nbd_chunk_offset_data));
    }
  }
  msg = outmsg_new (max_iov, hdr);
  if (msg == NULL)
    return NULL;
  for (size_t i = 0; i < nr_runs; i++) {
    bool last = i == nr_runs - 1;

    if (runs[i].hole) {
      struct nbd_chunk_offset_hole *h;

      put_chunk (msg, req, last ? NBD_REPLY_FLAG_DONE : 0,
                 NBD_REPLY_TYPE_OFFSET_HOLE, sizeof *h);
      h = outmsg_put (msg, sizeof *h);
      h->offset = htobe64 (runs[i].offset);
      h->length = htobe32 (runs[i].length);
    }
    else
      put_data_chunks (msg, req, buf, runs[i].offset, runs[i].length, last);
  }
  msg->data = buf;
  return msg;
}

struct outmsg *
reply_block_status (const struct request *req,
                    const struct status_reply *parts, size_t nparts)
{
  struct outmsg *msg;
  size_t total = 0;

  for (size_t k = 0; k < nparts; k++)
    total += chunk_size (req) + (extended (req)
      ? sizeof (struct nbd_chunk_block_status_ext)
        + parts[k].nr * sizeof (struct nbd_block_descriptor_ext)
      : sizeof (struct nbd_chunk_block_status)
        + parts[k].nr * sizeof (struct nbd_block_descriptor));
  msg = outmsg_new (1, total);
  if (msg == NULL)
    return NULL;
  for (size_t k = 0; k < nparts; k++) {
    const struct status_extent *d = parts[k].d;
    size_t nr = parts[k].nr;
    uint16_t flags = k == nparts - 1 ? NBD_REPLY_FLAG_DONE : 0;

    if (extended (req)) {
      size_t len = sizeof (struct nbd_chunk_block_status_ext)
        + nr * sizeof (struct nbd_block_descriptor_ext);
      struct nbd_chunk_block_status_ext *bs;
      struct nbd_block_descriptor_ext *out;

      put_chunk (msg, req, flags, NBD_REPLY_TYPE_BLOCK_STATUS_EXT, len);
      bs = outmsg_put (msg, sizeof *bs);
      bs->context_id = htobe32 (parts[k].context_id);
      bs->count = htobe32 (nr);
      out = outmsg_put (msg, nr * sizeof *out);
      for (size_t i = 0; i < nr; i++) {
        out[i].length = htobe64 (d[i].length);
        out[i].status = htobe64 (d[i].status);
      }
    }
    else {
      size_t len = sizeof (struct nbd_chunk_block_status)
        + nr * sizeof (struct nbd_block_descriptor);
      struct nbd_chunk_block_status *bs;
      struct nbd_block_descriptor *out;

      put_chunk (msg, req, flags, NBD_REPLY_TYPE_BLOCK_STATUS, len);
      bs = outmsg_put (msg, sizeof *bs);
      bs->context_id = htobe32 (parts[k].context_id);
      out = outmsg_put (msg, nr * sizeof *out);
      /* Compact requests are below 2^32 bytes, and so are their extents
       * (request.c clips them to the request).
       */
      for (size_t i = 0; i < nr; i++) {
        out[i].length = htobe32 ((uint32_t) d[i].length);
        out[i].status = htobe32 (d[i].status);
      }
    }
  }
  return msg;
}
