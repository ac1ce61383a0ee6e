/* SPDX-License-Identifier: BSD-3-Clause */
/* A raw NBD client for the extended-header tests of nbd-loopback.
 *
 *   client-extended SOCKET MODE
 *
 * Speaks extended headers (NBD_OPT_EXTENDED_HEADERS: 32-byte requests
 * and replies, 64-bit lengths) by hand, so it can check every byte the
 * server sends and break every rule of the new framing.  The export is
 * the default one, which the test makes 16 GiB, sparse and writable.
 * MODEs:
 *
 *   negotiation   the option rules: data refused, a second request
 *                 refused, STRUCTURED_REPLY after it refused with
 *                 EXT_HEADER_REQD, STRUCTURED_REPLY before it fine,
 *                 BLOCK_STATUS_PAYLOAD offered only with a metadata
 *                 context, EXPORT_NAME after it closes, clients that
 *                 do not ask get compact replies as before
 *   requests      64-bit effect lengths (16 GiB WRITE_ZEROES, TRIM,
 *                 CACHE, BLOCK_STATUS in one request), the extended
 *                 reply form (offset echoed, NONE for success,
 *                 BLOCK_STATUS_EXT), and the block-status filter
 *   bad-input     each malformed request gets a clear NBD error and
 *                 the stream stays in step
 *   big-payload   a payload above the maximum: an error, then the
 *                 server closes the connection
 *   compact-on-extended, extended-on-compact
 *                 a header of the form not negotiated closes the
 *                 connection
 *
 * Exits 0 if the server did what it must, 1 (with a message) if not.
 * Every wait is bounded by a receive timeout.
 */
#include <config.h>

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbd-raw.h"

#define GiB (UINT64_C (1) << 30)
#define EXPORT_SIZE (16 * GiB)  /* what the test serves */

static const char *sockpath;
static struct raw_conn conn = { .fd = -1 };

static void
connect_to_server (void)
{
  if (conn.fd >= 0)
    close (conn.fd);
  conn.fd = raw_connect (sockpath, NULL);
  raw_timeouts (conn.fd, 30, 30);
}

static void
greeting (void)
{
  raw_greeting (&conn, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
}

static void
option_expect (uint32_t option, const void *data, uint32_t len,
               uint32_t want, const char *what)
{
  raw_option_expect (&conn, option, data, len, want, what);
}

static void
set_meta_context (void)
{
  static const char *const q[] = { "base:allocation" };
  char data[64];
  size_t n = raw_meta_context_data (data, sizeof data, q, 1);

  option_expect (NBD_OPT_SET_META_CONTEXT, data, n, NBD_REP_ACK,
                 "SET_META_CONTEXT base:allocation");
}

/* A session with extended headers (and base:allocation if meta). */
static uint16_t
extended_session (bool meta)
{
  connect_to_server ();
  greeting ();
  option_expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
                 "NBD_OPT_EXTENDED_HEADERS");
  if (meta)
    set_meta_context ();
  return raw_go (&conn);
}

/* ---- transmission ---- */

static void
send_ext (uint16_t type, uint16_t flags, uint64_t cookie, uint64_t offset,
          uint64_t length, const void *payload, size_t plen)
{
  raw_request_ext (&conn, type, flags, cookie, offset, length, payload, plen);
}

struct chunk {
  uint16_t flags, type;
  uint64_t cookie, offset, length;
  char payload[(1 << 16) + 1];  /* room for a terminating NUL */
};

/* One extended reply chunk, checked against the request it answers. */
static void
read_chunk (struct chunk *c, uint64_t cookie, uint64_t offset)
{
  struct nbd_extended_reply h;

  raw_expect_recv (&conn, &h, sizeof h, "a reply chunk");
  if (be32toh (h.magic) != NBD_EXTENDED_REPLY_MAGIC)
    raw_die ("reply magic 0x%08x, expected the extended reply magic",
         be32toh (h.magic));
  c->flags = be16toh (h.flags);
  c->type = be16toh (h.type);
  c->cookie = be64toh (h.cookie);
  c->offset = be64toh (h.offset);
  c->length = be64toh (h.length);
  if (c->cookie != cookie)
    raw_die ("reply to cookie %llu, expected %llu",
         (unsigned long long) c->cookie, (unsigned long long) cookie);
  if (c->offset != offset)
    raw_die ("reply header offset %llu, expected the request's %llu",
         (unsigned long long) c->offset, (unsigned long long) offset);
  if (c->length >= sizeof c->payload)
    raw_die ("chunk payload of %llu bytes", (unsigned long long) c->length);
  raw_expect_recv (&conn, c->payload, c->length, "a chunk payload");
}

/* A successful reply without data: one NONE chunk, DONE. */
static void
expect_ok (uint64_t cookie, uint64_t offset, const char *what)
{
  struct chunk c;

  read_chunk (&c, cookie, offset);
  if (c.type == NBD_REPLY_TYPE_ERROR)
    raw_die ("%s failed: NBD error %u: %.*s", what,
         raw_get32 (c.payload), (int) c.length - 6,
         c.payload + 6);
  if (c.type != NBD_REPLY_TYPE_NONE || c.flags != NBD_REPLY_FLAG_DONE
      || c.length != 0)
    raw_die ("%s: chunk type %u flags %u length %llu, expected a NONE chunk",
         what, c.type, c.flags, (unsigned long long) c.length);
}

/* An ERROR chunk with this error and a message containing text. */
static void
expect_error (uint64_t cookie, uint64_t offset, uint32_t want,
              const char *text, const char *what)
{
  struct chunk c;
  uint32_t err;
  uint16_t mlen;

  read_chunk (&c, cookie, offset);
  if (c.type != NBD_REPLY_TYPE_ERROR || !(c.flags & NBD_REPLY_FLAG_DONE)
      || c.length < 6)
    raw_die ("%s: chunk type %u, expected an error", what, c.type);
  err = raw_get32 (c.payload);
  mlen = raw_get16 (c.payload + 4);
  if (err != want)
    raw_die ("%s: NBD error %u, expected %u", what, err, want);
  if (6 + (uint64_t) mlen != c.length)
    raw_die ("%s: message length %u in a chunk of %llu", what, mlen,
         (unsigned long long) c.length);
  c.payload[6 + mlen] = '\0';
  if (strstr (c.payload + 6, text) == NULL)
    raw_die ("%s: message '%s' does not say '%s'", what, c.payload + 6, text);
  printf ("%s: NBD error %u: %s\n", what, err, c.payload + 6);
}

/* The stream is in step: a FLUSH is answered next, and correctly. */
static void
in_step (const char *after)
{
  char what[128];

  snprintf (what, sizeof what, "a FLUSH after %s", after);
  send_ext (NBD_CMD_FLUSH, 0, 7777, 0, 0, NULL, 0);
  expect_ok (7777, 0, what);
}

/* One BLOCK_STATUS_EXT chunk for context id, the last one if last:
 * fills ext (n of them).
 */
static size_t
expect_context_status (uint64_t cookie, uint64_t offset, uint32_t id,
                       bool last, struct nbd_block_descriptor_ext *ext,
                       size_t max, const char *what)
{
  struct chunk c;
  struct nbd_chunk_block_status_ext h;
  size_t n;

  read_chunk (&c, cookie, offset);
  if (c.type != NBD_REPLY_TYPE_BLOCK_STATUS_EXT)
    raw_die ("%s: chunk type %u, expected BLOCK_STATUS_EXT", what, c.type);
  if (!(c.flags & NBD_REPLY_FLAG_DONE) != !last)
    raw_die ("%s: context %u: the chunk is %sthe last", what, id,
         last ? "not " : "");
  memcpy (&h, c.payload, sizeof h);
  n = be32toh (h.count);
  if (be32toh (h.context_id) != id)
    raw_die ("%s: context id %u, expected %u", what, be32toh (h.context_id),
             id);
  if (n == 0 || c.length != sizeof h + n * sizeof *ext || n > max)
    raw_die ("%s: %zu descriptors in %llu bytes", what, n,
         (unsigned long long) c.length);
  memcpy (ext, c.payload + sizeof h, n * sizeof *ext);
  for (size_t i = 0; i < n; i++) {
    ext[i].length = be64toh (ext[i].length);
    ext[i].status = be64toh (ext[i].status);
    if (ext[i].length == 0 || ext[i].status >> 32)
      raw_die ("%s: bad descriptor %zu", what, i);
  }
  return n;
}

/* BLOCK_STATUS_EXT for base:allocation alone. */
static size_t
expect_status (uint64_t cookie, uint64_t offset,
               struct nbd_block_descriptor_ext *ext, size_t max,
               const char *what)
{
  return expect_context_status (cookie, offset, 1, true, ext, max, what);
}

/* ---- modes ---- */

static void
mode_negotiation (void)
{
  uint16_t tflags;

  /* Data, duplicates, STRUCTURED_REPLY after: refused, each clearly. */
  connect_to_server ();
  greeting ();
  option_expect (NBD_OPT_EXTENDED_HEADERS, "x", 1, NBD_REP_ERR_INVALID,
                 "EXTENDED_HEADERS with data");
  option_expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
                 "EXTENDED_HEADERS");
  option_expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ERR_INVALID,
                 "a second EXTENDED_HEADERS");
  option_expect (NBD_OPT_STRUCTURED_REPLY, NULL, 0,
                 NBD_REP_ERR_EXT_HEADER_REQD,
                 "STRUCTURED_REPLY after EXTENDED_HEADERS");
  tflags = raw_go (&conn);
  if (tflags & NBD_FLAG_BLOCK_STATUS_PAYLOAD)
    raw_die ("BLOCK_STATUS_PAYLOAD offered without a metadata context");
  if (!(tflags & NBD_FLAG_SEND_DF))
    raw_die ("extended headers include structured replies: DF expected");
  in_step ("NBD_OPT_GO");

  /* STRUCTURED_REPLY first, then EXTENDED_HEADERS and a context. */
  connect_to_server ();
  greeting ();
  option_expect (NBD_OPT_STRUCTURED_REPLY, NULL, 0, NBD_REP_ACK,
                 "STRUCTURED_REPLY");
  option_expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
                 "EXTENDED_HEADERS after STRUCTURED_REPLY");
  set_meta_context ();
  tflags = raw_go (&conn);
  if (!(tflags & NBD_FLAG_BLOCK_STATUS_PAYLOAD))
    raw_die ("BLOCK_STATUS_PAYLOAD not offered with extended headers and a "
         "metadata context");
  in_step ("NBD_OPT_GO");

  /* EXPORT_NAME is forbidden after EXTENDED_HEADERS: hang up. */
  connect_to_server ();
  greeting ();
  option_expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
                 "EXTENDED_HEADERS");
  raw_send_option (&conn, NBD_OPT_EXPORT_NAME, "", 0);
  raw_expect_eof (&conn, "EXPORT_NAME after EXTENDED_HEADERS");

  /* Without asking: structured replies and a context, but no
   * BLOCK_STATUS_PAYLOAD, and compact replies as before.
   */
  connect_to_server ();
  greeting ();
  option_expect (NBD_OPT_STRUCTURED_REPLY, NULL, 0, NBD_REP_ACK,
                 "STRUCTURED_REPLY");
  set_meta_context ();
  tflags = raw_go (&conn);
  if (tflags & NBD_FLAG_BLOCK_STATUS_PAYLOAD)
    raw_die ("BLOCK_STATUS_PAYLOAD offered without extended headers");
  {
    struct nbd_request r = {
      .magic = htobe32 (NBD_REQUEST_MAGIC),
      .type = htobe16 (NBD_CMD_FLUSH),
      .cookie = htobe64 (5),
    };
    struct nbd_simple_reply s;

    raw_send_all (&conn, &r, sizeof r);
    raw_expect_recv (&conn, &s, sizeof s, "a simple reply");
    if (be32toh (s.magic) != NBD_SIMPLE_REPLY_MAGIC || s.error != 0)
      raw_die ("a client without extended headers got magic 0x%08x error %u",
           be32toh (s.magic), be32toh (s.error));
  }
}

static void
mode_requests (void)
{
  struct nbd_block_descriptor_ext ext[64];
  char buf[4096], back[4096 + 8];
  struct chunk c;
  size_t n;
  uint64_t total;

  extended_session (true);

  /* A WRITE (payload length) and its READ (OFFSET_DATA, offset echoed). */
  memset (buf, 'A', sizeof buf);
  send_ext (NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 1, 8 * GiB,
            sizeof buf, buf, sizeof buf);
  expect_ok (1, 8 * GiB, "a WRITE at 8 GiB");
  send_ext (NBD_CMD_READ, 0, 2, 8 * GiB, sizeof buf, NULL, 0);
  read_chunk (&c, 2, 8 * GiB);
  if (c.type != NBD_REPLY_TYPE_OFFSET_DATA || !(c.flags & NBD_REPLY_FLAG_DONE)
      || c.length != 8 + sizeof buf)
    raw_die ("READ: chunk type %u length %llu", c.type,
         (unsigned long long) c.length);
  memcpy (back, c.payload, c.length);
  if (raw_get64 (back) != 8 * GiB
      || memcmp (back + 8, buf, sizeof buf) != 0)
    raw_die ("READ: wrong offset or data");

  /* A WRITE without PAYLOAD_LEN, as qemu 10 sends them: the length is
   * still the payload's.
   */
  memset (buf, 'B', 512);
  send_ext (NBD_CMD_WRITE, 0, 11, 8 * GiB, 512, buf, 512);
  expect_ok (11, 8 * GiB, "a WRITE without PAYLOAD_LEN");
  send_ext (NBD_CMD_READ, 0, 12, 8 * GiB, 1024, NULL, 0);
  read_chunk (&c, 12, 8 * GiB);
  if (c.type != NBD_REPLY_TYPE_OFFSET_DATA || c.length != 8 + 1024
      || memcmp (c.payload + 8, buf, 512) != 0
      || memcmp (c.payload + 8 + 512, "AAAA", 4) != 0)
    raw_die ("READ after a WRITE without PAYLOAD_LEN: wrong data");
  memset (buf, 'A', sizeof buf);

  /* BLOCK_STATUS of all 16 GiB in one request: data at 8 GiB, holes
   * of 8 GiB (more than 32 bits) either side.
   */
  send_ext (NBD_CMD_BLOCK_STATUS, 0, 3, 0, EXPORT_SIZE, NULL, 0);
  n = expect_status (3, 0, ext, 64, "BLOCK_STATUS of 16 GiB");
  total = 0;
  for (size_t i = 0; i < n; i++) {
    printf ("extent %zu: %llu bytes, status %llu\n", i,
            (unsigned long long) ext[i].length,
            (unsigned long long) ext[i].status);
    total += ext[i].length;
  }
  if (total != EXPORT_SIZE || ext[0].length != 8 * GiB
      || ext[0].status != (NBD_STATE_HOLE | NBD_STATE_ZERO)
      || ext[1].status != 0)
    raw_die ("BLOCK_STATUS of 16 GiB: not a hole of 8 GiB, then data, "
         "covering 16 GiB");

  /* The same through the payload filter. */
  {
    char p[12];
    uint64_t len = htobe64 (EXPORT_SIZE - 8 * GiB);
    uint32_t id = htobe32 (1);

    memcpy (p, &len, 8);
    memcpy (p + 8, &id, 4);
    send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 4, 8 * GiB,
              sizeof p, p, sizeof p);
    n = expect_status (4, 8 * GiB, ext, 64, "BLOCK_STATUS with a filter");
    if (ext[0].status != 0 || ext[0].length != sizeof buf)
      raw_die ("BLOCK_STATUS with a filter: not the data at 8 GiB");
  }

  /* 64-bit WRITE_ZEROES, TRIM and CACHE over the whole export. */
  send_ext (NBD_CMD_WRITE_ZEROES, 0, 5, 0, EXPORT_SIZE, NULL, 0);
  expect_ok (5, 0, "WRITE_ZEROES of 16 GiB");
  send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 6, 0, EXPORT_SIZE,
            NULL, 0);
  n = expect_status (6, 0, ext, 64, "BLOCK_STATUS after WRITE_ZEROES");
  if (n != 1 || ext[0].length != EXPORT_SIZE
      || !(ext[0].status & NBD_STATE_ZERO))
    raw_die ("after WRITE_ZEROES of 16 GiB: not one zero extent of 16 GiB");
  send_ext (NBD_CMD_TRIM, 0, 7, 0, EXPORT_SIZE, NULL, 0);
  expect_ok (7, 0, "TRIM of 16 GiB");
  send_ext (NBD_CMD_CACHE, 0, 8, 0, EXPORT_SIZE, NULL, 0);
  expect_ok (8, 0, "CACHE of 16 GiB");
  send_ext (NBD_CMD_READ, 0, 9, 8 * GiB, sizeof buf, NULL, 0);
  read_chunk (&c, 9, 8 * GiB);
  if (c.type == NBD_REPLY_TYPE_OFFSET_DATA) {
    static const char zero[4096];

    if (memcmp (c.payload + 8, zero, sizeof zero) != 0)
      raw_die ("READ after WRITE_ZEROES: not zero");
  }
  else if (c.type != NBD_REPLY_TYPE_OFFSET_HOLE)
    raw_die ("READ after WRITE_ZEROES: chunk type %u", c.type);
  in_step ("the 64-bit requests");
  send_ext (NBD_CMD_DISC, 0, 10, 0, 0, NULL, 0);
  raw_expect_eof (&conn, "NBD_CMD_DISC");
}

static void
mode_bad_input (void)
{
  char p[16];
  uint64_t len;
  uint32_t id;

  extended_session (true);

  /* A READ longer than the maximum: its length is 64-bit now. */
  send_ext (NBD_CMD_READ, 0, 1, 0, 8 * GiB, NULL, 0);
  expect_error (1, 0, NBD_EINVAL, "at most", "READ of 8 GiB");
  in_step ("a READ of 8 GiB");

  /* A WRITE to a place past the end: its payload is skipped. */
  {
    char data[4096] = { 0 };

    send_ext (NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 2, EXPORT_SIZE,
              sizeof data, data, sizeof data);
    expect_error (2, EXPORT_SIZE, NBD_ENOSPC, "beyond the end",
                  "WRITE past the end");
    in_step ("a WRITE past the end");
  }

  /* offset + length past the end, and overflowing 64 bits. */
  send_ext (NBD_CMD_WRITE_ZEROES, 0, 3, 4096, UINT64_MAX, NULL, 0);
  expect_error (3, 4096, NBD_ENOSPC, "beyond the end",
                "WRITE_ZEROES overflowing offset + length");
  send_ext (NBD_CMD_TRIM, 0, 4, UINT64_MAX - 10, 4096, NULL, 0);
  expect_error (4, UINT64_MAX - 10, NBD_EINVAL, "beyond the end",
                "TRIM at an offset near 2^64");
  send_ext (NBD_CMD_BLOCK_STATUS, 0, 5, 0, EXPORT_SIZE + 1, NULL, 0);
  expect_error (5, 0, NBD_EINVAL, "beyond the end",
                "BLOCK_STATUS past the end");
  in_step ("lengths past the end");

  /* A payload on a command that takes none: consumed, refused. */
  memset (p, 0, sizeof p);
  send_ext (NBD_CMD_TRIM, NBD_CMD_FLAG_PAYLOAD_LEN, 6, 0, sizeof p, p,
            sizeof p);
  expect_error (6, 0, NBD_EINVAL, "takes none", "TRIM with a payload");
  in_step ("a TRIM with a payload");

  /* Block-status filters: malformed, an unknown id, a duplicate. */
  send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 7, 0, 10, p, 10);
  expect_error (7, 0, NBD_EINVAL, "payload of 10 bytes",
                "BLOCK_STATUS with a 10-byte payload");
  in_step ("a malformed block-status payload");
  len = htobe64 (4096);
  id = htobe32 (2);
  memcpy (p, &len, 8);
  memcpy (p + 8, &id, 4);
  send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 8, 0, 12, p, 12);
  expect_error (8, 0, NBD_EINVAL, "not selected",
                "BLOCK_STATUS filtering on context 2");
  in_step ("a filter naming an unknown context");
  id = htobe32 (1);
  memcpy (p + 8, &id, 4);
  memcpy (p + 12, &id, 4);
  send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 9, 0, 16, p, 16);
  expect_error (9, 0, NBD_EINVAL, "context id 1 twice",
                "BLOCK_STATUS filtering on context 1 twice");
  in_step ("a filter naming a context twice");

  /* Without a metadata context, there is no filter to use. */
  extended_session (false);
  send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 10, 0, 12, p, 12);
  expect_error (10, 0, NBD_EINVAL, "was not offered",
                "BLOCK_STATUS with a payload, not offered");
  in_step ("a block-status payload not offered");
}

static void
mode_big_payload (void)
{
  extended_session (false);
  /* Only the header: the server must not wait for 8 GiB. */
  send_ext (NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 1, 0, 8 * GiB, NULL, 0);
  expect_error (1, 0, NBD_EINVAL, "with a payload of",
                "WRITE with an 8 GiB payload");
  raw_expect_eof (&conn, "a WRITE with an 8 GiB payload");
}

static void
mode_compact_on_extended (void)
{
  struct nbd_request r = {
    .magic = htobe32 (NBD_REQUEST_MAGIC),
    .type = htobe16 (NBD_CMD_FLUSH),
    .cookie = htobe64 (1),
  };

  extended_session (false);
  raw_send_all (&conn, &r, sizeof r);
  raw_send_all (&conn, "\0\0\0\0", 4);     /* as long as an extended header */
  raw_expect_eof (&conn, "a compact header after extended headers");
}

static void
mode_extended_on_compact (void)
{
  connect_to_server ();
  greeting ();
  option_expect (NBD_OPT_STRUCTURED_REPLY, NULL, 0, NBD_REP_ACK,
                 "STRUCTURED_REPLY");
  raw_go (&conn);
  send_ext (NBD_CMD_FLUSH, 0, 1, 0, 0, NULL, 0);
  raw_expect_eof (&conn, "an extended header without extended headers");
}

/* Changed-block tracking (loopback cbt, granularity 64 KiB) over
 * extended headers: base:allocation (id 1) and qemu:dirty-bitmap:live
 * (id 2) in one 64-bit BLOCK_STATUS, a chunk each, the last DONE; the
 * payload filter picks either or both.
 */
static void
mode_bitmaps (void)
{
  static const char *const q[] = { "base:allocation",
                                   "qemu:dirty-bitmap:nope",
                                   "qemu:dirty-bitmap:live" };
  char data[256], buf[4096] = { 1 }, p[16];
  struct nbd_block_descriptor_ext ext[8];
  uint32_t v;
  uint64_t len;
  size_t n;
  uint16_t tflags;

  connect_to_server ();
  greeting ();
  option_expect (NBD_OPT_EXTENDED_HEADERS, NULL, 0, NBD_REP_ACK,
                 "NBD_OPT_EXTENDED_HEADERS");
  n = raw_meta_context_data (data, sizeof data, q, 3);
  option_expect (NBD_OPT_SET_META_CONTEXT, data, n, NBD_REP_ACK,
                 "SET_META_CONTEXT with a bitmap");
  tflags = raw_go (&conn);
  if (!(tflags & NBD_FLAG_BLOCK_STATUS_PAYLOAD))
    raw_die ("no NBD_FLAG_BLOCK_STATUS_PAYLOAD");

  send_ext (NBD_CMD_WRITE, 0, 1, 8 * GiB + 100, sizeof buf, buf, sizeof buf);
  expect_ok (1, 8 * GiB + 100, "WRITE at 8 GiB + 100");

  /* The whole 16 GiB export in one request: two chunks. */
  send_ext (NBD_CMD_BLOCK_STATUS, 0, 2, 0, 16 * GiB, NULL, 0);
  expect_context_status (2, 0, 1, false, ext, 8, "base:allocation");
  n = expect_context_status (2, 0, 2, true, ext, 8, "qemu:dirty-bitmap:live");
  if (n != 3 || ext[0].length != 8 * GiB || ext[0].status != 0
      || ext[1].length != 65536 || ext[1].status != 1
      || ext[2].length != 8 * GiB - 65536 || ext[2].status != 0)
    raw_die ("qemu:dirty-bitmap:live: %zu extents, not clean 8 GiB, dirty "
         "64 KiB, clean the rest", n);

  /* The filter: the bitmap alone, then both. */
  len = htobe64 (16 * GiB);
  memcpy (p, &len, 8);
  v = htobe32 (2);
  memcpy (p + 8, &v, 4);
  send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 3, 0, 12, p, 12);
  n = expect_context_status (3, 0, 2, true, ext, 8, "filter: the bitmap");
  if (n != 3)
    raw_die ("filter: the bitmap: %zu extents", n);
  v = htobe32 (1);
  memcpy (p + 12, &v, 4);
  send_ext (NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN, 4, 0, 16, p, 16);
  expect_context_status (4, 0, 1, false, ext, 8, "filter: both, first");
  expect_context_status (4, 0, 2, true, ext, 8, "filter: both, second");
  in_step ("block status of two contexts");
}

int
main (int argc, char *argv[])
{
  static const struct {
    const char *name;
    void (*run) (void);
  } modes[] = {
    { "negotiation", mode_negotiation },
    { "requests", mode_requests },
    { "bad-input", mode_bad_input },
    { "big-payload", mode_big_payload },
    { "compact-on-extended", mode_compact_on_extended },
    { "extended-on-compact", mode_extended_on_compact },
    { "bitmaps", mode_bitmaps },
  };

  if (argc != 3) {
    fprintf (stderr, "usage: client-extended SOCKET MODE\n");
    return EXIT_FAILURE;
  }
  raw_program = "client-extended";
  sockpath = argv[1];
  raw_mode = argv[2];
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp (raw_mode, modes[i].name) == 0) {
      modes[i].run ();
      if (conn.fd >= 0)
        close (conn.fd);
      printf ("client-extended %s: ok\n", raw_mode);
      return EXIT_SUCCESS;
    }
  raw_die ("unknown mode");
}
