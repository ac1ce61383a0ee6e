/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the framing of requests, and their validity.
 *
 * What a request looks like on the wire depends on the handshake:
 * 28-byte compact headers with a 32-bit length, or, after
 * NBD_OPT_EXTENDED_HEADERS, 32-byte extended ones with a 64-bit length
 * that is a payload length (NBD_CMD_FLAG_PAYLOAD_LEN, and always for a
 * WRITE) or an effect length (everything else: TRIM, WRITE_ZEROES,
 * CACHE and BLOCK_STATUS may then cover more than 4 GiB).  A header of
 * the form not negotiated closes the connection, since nothing after
 * it can be trusted; a payload nobody asked for is read and thrown
 * away, so the stream stays in step.  request.c decodes with
 * parse_header and take_payload, then asks validate_request, the one
 * place that logs "invalid request: ..." and picks the errno for a
 * request the server can answer.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

const char *
command_name (uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ: return "NBD_CMD_READ";
  case NBD_CMD_WRITE: return "NBD_CMD_WRITE";
  case NBD_CMD_DISC: return "NBD_CMD_DISC";
  case NBD_CMD_FLUSH: return "NBD_CMD_FLUSH";
  case NBD_CMD_TRIM: return "NBD_CMD_TRIM";
  case NBD_CMD_CACHE: return "NBD_CMD_CACHE";
  case NBD_CMD_WRITE_ZEROES: return "NBD_CMD_WRITE_ZEROES";
  case NBD_CMD_BLOCK_STATUS: return "NBD_CMD_BLOCK_STATUS";
  default: return "unknown command";
  }
}

/* Parse the request header at the start of the input into r, without
 * consuming it: a 28-byte compact header, or with extended headers a
 * 32-byte one.  Returns its size, 0 if more input is needed, or -1 if
 * the connection must be dropped (logged): nothing after a header of
 * the wrong form can be trusted.
 */
int
parse_header (struct connection *conn, struct request *r)
{
  size_t avail = conn->in_end - conn->in_start;
  const char *p = conn->inbuf + conn->in_start;
  uint32_t magic;

  r->contexts = 0;
  if (avail < sizeof magic)
    return 0;
  memcpy (&magic, p, sizeof magic);
  magic = be32toh (magic);
  if (conn->extended && magic == NBD_EXTENDED_REQUEST_MAGIC) {
    struct nbd_request_ext h;

    if (avail < sizeof h)
      return 0;
    memcpy (&h, p, sizeof h);
    r->flags = be16toh (h.flags);
    r->type = be16toh (h.type);
    r->cookie = be64toh (h.cookie);
    r->offset = be64toh (h.offset);
    r->count = be64toh (h.length);
    return sizeof h;
  }
  if (!conn->extended && magic == NBD_REQUEST_MAGIC) {
    struct nbd_request h;

    if (avail < sizeof h)
      return 0;
    memcpy (&h, p, sizeof h);
    r->flags = be16toh (h.flags);
    r->type = be16toh (h.type);
    r->cookie = be64toh (h.cookie);
    r->offset = be64toh (h.offset);
    r->count = be32toh (h.count);
    return sizeof h;
  }
  if (magic == NBD_EXTENDED_REQUEST_MAGIC)
    log_warning ("conn %" PRIu64 " (%s): invalid request: a 32-byte "
                 "extended header, but extended headers were not negotiated "
                 "(NBD_OPT_EXTENDED_HEADERS): closing the connection",
                 conn->id, conn->peer);
  else if (magic == NBD_REQUEST_MAGIC)
    log_warning ("conn %" PRIu64 " (%s): invalid request: a compact header, "
                 "but extended headers were negotiated: closing the "
                 "connection", conn->id, conn->peer);
  else
    log_warning ("conn %" PRIu64 " (%s): invalid request: bad magic 0x%08"
                 PRIx32 ": closing the connection", conn->id, conn->peer,
                 magic);
  return -1;
}

/* With extended headers, the payload of a request other than a WRITE
 * (NBD_CMD_FLAG_PAYLOAD_LEN, at most MAX_REQUEST_SIZE bytes).  The one
 * payload understood is BLOCK_STATUS's filter: the effect length and
 * the context ids to report, each one selected on the connection
 * (duplicates and unknown ids are errors).  Returns 0 with the header
 * and payload consumed and r turned into a plain request; 1 if more
 * input is needed (nothing consumed); or the errno for the client,
 * having logged why (in what), consumed the header and set the payload
 * to be discarded.
 */
#define STATUS_PAYLOAD_MAX 4096   /* longer: discarded, refused */

int
take_payload (struct connection *conn, struct request *r, size_t hlen,
              char *what, size_t whatlen)
{
  uint64_t len = r->count;
  const char *p = conn->inbuf + conn->in_start + hlen;

  if (r->type != NBD_CMD_BLOCK_STATUS)
    snprintf (what, whatlen, "a %" PRIu64 "-byte payload on %s, which "
              "takes none", len, command_name (r->type));
  else if (!(conn->tflags & NBD_FLAG_BLOCK_STATUS_PAYLOAD))
    snprintf (what, whatlen, "a NBD_CMD_BLOCK_STATUS payload, but "
              "NBD_FLAG_BLOCK_STATUS_PAYLOAD was not offered");
  else if (len < sizeof (struct nbd_block_status_payload) + 4
           || (len - sizeof (struct nbd_block_status_payload)) % 4 != 0
           || len > STATUS_PAYLOAD_MAX)
    snprintf (what, whatlen, "a NBD_CMD_BLOCK_STATUS payload of %" PRIu64
              " bytes (8, then 4 per context id)", len);
  else {
    struct nbd_block_status_payload bp;
    size_t nids = (len - sizeof bp) / 4;
    uint32_t id;

    if (conn->in_end - conn->in_start < hlen + len)
      return 1;
    uint32_t mask = 0;

    memcpy (&bp, p, sizeof bp);
    what[0] = '\0';
    for (size_t i = 0; i < nids; i++) {
      memcpy (&id, p + sizeof bp + 4 * i, sizeof id);
      id = be32toh (id);
      if (!context_selected (conn, id)) {
        snprintf (what, whatlen, "NBD_CMD_BLOCK_STATUS payload names context "
                  "id %" PRIu32 ", which is not selected", id);
        break;
      }
      if (mask & (UINT32_C (1) << id)) {
        snprintf (what, whatlen, "NBD_CMD_BLOCK_STATUS payload names context "
                  "id %" PRIu32 " twice", id);
        break;
      }
      mask |= UINT32_C (1) << id;
    }
    if (what[0] == '\0') {
      conn->in_start += hlen + len;
      r->count = be64toh (bp.length);
      r->contexts = mask;
      r->flags &= ~NBD_CMD_FLAG_PAYLOAD_LEN;
      return 0;
    }
  }
  log_warning ("conn %" PRIu64 ": invalid request: %s", conn->id, what);
  conn->in_start += hlen;
  conn->discard = len;
  return EINVAL;
}

/* Is context id selected on this connection? */
bool
context_selected (const struct connection *conn, uint32_t id)
{
  if (id == BASE_ALLOCATION_ID)
    return conn->meta_allocation;
  return id >= DIRTY_BITMAP_ID
    && id - DIRTY_BITMAP_ID < conn->nr_meta_bitmaps;
}

/* Forget the selection (a new SET_META_CONTEXT, STARTTLS, the end of
 * the connection).
 */
void
meta_clear (struct connection *conn)
{
  conn->meta_allocation = false;
  for (unsigned i = 0; i < conn->nr_meta_bitmaps; i++)
    free (conn->meta_bitmaps[i]);
  conn->nr_meta_bitmaps = 0;
  free (conn->meta_export);
  conn->meta_export = NULL;
}

/* The one validity check.  Returns 0, or the errno the client gets,
 * having logged why; why is also in what (for the error chunk's
 * message).
 */
int
validate_request (struct connection *conn, const struct request *req,
                  char *what, size_t whatlen)
{
  const struct export *exp = conn->exp;
  /* PAYLOAD_LEN: decode_requests has taken the payload of anything but
   * a WRITE, which has one with or without the flag.
   */
  const uint16_t known = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE
    | NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO
    | (conn->extended ? NBD_CMD_FLAG_PAYLOAD_LEN : 0);
  bool is_write = req->type == NBD_CMD_WRITE || req->type == NBD_CMD_TRIM
    || req->type == NBD_CMD_WRITE_ZEROES;
  int err = EINVAL;

  switch (req->type) {
  case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_FLUSH:
  case NBD_CMD_TRIM: case NBD_CMD_CACHE: case NBD_CMD_WRITE_ZEROES:
  case NBD_CMD_BLOCK_STATUS:
    break;
  default:
    snprintf (what, whatlen, "unknown command %" PRIu16, req->type);
    goto invalid;
  }

  if (req->flags & ~known) {
    snprintf (what, whatlen, "unknown flags 0x%" PRIx16,
              (uint16_t) (req->flags & ~known));
    goto invalid;
  }
  /* Before the FUA check: a FUA write to a read-only export (which
   * offers no FUA) is refused for being a write.
   */
  if (is_write && exp->readonly) {
    snprintf (what, whatlen, "%s on read-only export %s",
              command_name (req->type), exp->name);
    err = EPERM;
    goto invalid;
  }
  if ((req->flags & NBD_CMD_FLAG_FUA) && !(conn->tflags & NBD_FLAG_SEND_FUA)) {
    snprintf (what, whatlen, "FUA flag, but this export offers no "
              "FUA (commit=none)");
    goto invalid;
  }
  if ((req->flags & (NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO))
      && req->type != NBD_CMD_WRITE_ZEROES) {
    snprintf (what, whatlen, "NO_HOLE or FAST_ZERO flag on %s",
              command_name (req->type));
    goto invalid;
  }
  if (req->flags & NBD_CMD_FLAG_DF) {
    if (req->type != NBD_CMD_READ || !conn->structured) {
      snprintf (what, whatlen, "DF flag on %s%s",
                command_name (req->type),
                conn->structured ? "" : " without structured replies");
      goto invalid;
    }
  }
  if ((req->flags & NBD_CMD_FLAG_REQ_ONE)
      && req->type != NBD_CMD_BLOCK_STATUS) {
    snprintf (what, whatlen, "REQ_ONE flag on %s",
              command_name (req->type));
    goto invalid;
  }

  if (req->type == NBD_CMD_FLUSH && (req->offset || req->count)) {
    snprintf (what, whatlen, "NBD_CMD_FLUSH with offset %" PRIu64
              " and count %" PRIu64 " (must be 0)", req->offset, req->count);
    goto invalid;
  }
  if ((req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE)
      && req->count > MAX_REQUEST_SIZE) {
    snprintf (what, whatlen, "%s of %" PRIu64 " bytes (at most %d)",
              command_name (req->type), req->count, MAX_REQUEST_SIZE);
    goto invalid;
  }
  if ((req->flags & NBD_CMD_FLAG_DF) && req->count > MAX_PAYLOAD_ADVERTISED) {
    snprintf (what, whatlen, "DF read of %" PRIu64 " bytes does not fit "
              "one chunk", req->count);
    err = EOVERFLOW;
    goto invalid;
  }
  if (req->type != NBD_CMD_FLUSH
      && (req->offset > exp->size || req->count > exp->size - req->offset)) {
    snprintf (what, whatlen, "%s offset %" PRIu64 " count %" PRIu64
              " is beyond the end of %s (size %" PRIu64 ")",
              command_name (req->type), req->offset, req->count, exp->name,
              exp->size);
    err = req->type == NBD_CMD_WRITE || req->type == NBD_CMD_WRITE_ZEROES
      ? ENOSPC : EINVAL;
    goto invalid;
  }
  if (req->type == NBD_CMD_BLOCK_STATUS) {
    if (!conn->structured
        || (!conn->meta_allocation && conn->nr_meta_bitmaps == 0)) {
      snprintf (what, whatlen, "NBD_CMD_BLOCK_STATUS without a "
                "negotiated metadata context");
      goto invalid;
    }
    if (req->count == 0) {
      snprintf (what, whatlen, "NBD_CMD_BLOCK_STATUS of 0 bytes");
      goto invalid;
    }
  }
  return 0;

 invalid:
  log_warning ("conn %" PRIu64 ": invalid request: %s", conn->id, what);
  return err;
}
