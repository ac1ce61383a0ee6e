/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: NBD_OPT_STARTTLS and the options around it.
 *
 * The daemon's real handshake code runs with --tls=require or
 * --tls=on, over fake-tls.c instead of OpenSSL: after STARTTLS the
 * client "handshakes" by sending FAKE_TLS_CLIENT_HELLO and then
 * speaks in the clear as if inside TLS.  fake-tls.c asserts the
 * server side of the invariants (nothing sent in the clear after
 * STARTTLS reaches the option parser, nothing negotiated in the clear
 * survives); this file asserts the client's view of them, from the
 * server's replies (check_reply).  A violated invariant aborts, so
 * libFuzzer reports it like a crash.
 *
 * The input is structure-aware: not raw bytes but a small script that
 * builds the client's stream, so mutations stay well-formed NBD and
 * move STARTTLS, packet boundaries and the fake handshake around.
 * Byte 0: bit 0 --tls=require (else --tls=on), bit 1 client flags
 * without NBD_FLAG_C_NO_ZEROES.  Then records, by their first byte
 * modulo 8:
 *   0 OPT n len data  an option n (one byte) with len (one byte) bytes
 *                     of data
 *   1 STARTTLS        NBD_OPT_STARTTLS, no data
 *   2 PACKET          end of a packet: what came before is sent, and
 *                     the server reads and answers it, before the rest
 *   3 HELLO           the fake TLS ClientHello
 *   4 RAW len data    len bytes as they are (the model stops checking
 *                     what it cannot follow)
 *   5 INFO/GO x       bit 0 INFO (else GO), bits 1-2 the export ("",
 *                     lo0, ram0, nope), bit 3 ask for name and
 *                     description
 *   6 SIMPLE x        x % 4: STRUCTURED_REPLY, EXTENDED_HEADERS, LIST,
 *                     ABORT
 *   7 META x          bit 0 SET (else LIST), bits 1-2 the export,
 *                     bits 3-4 the query (base:allocation, base:,
 *                     qemu:dirty-bitmap:x, none)
 * A missing argument reads as 0.  make-seeds.py writes scripts for the
 * known attacks (corpus/tls).  LLVMFuzzerCustomMutator, at the end,
 * also mutates whole records.
 */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-tls.h"
#include "harness.h"
#include "internal.h"

#define MAX_STREAM (64 * 1024)
#define MAX_CHUNKS 64

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* ---- building the client's stream ---- */

struct script {
  const uint8_t *p;
  size_t left;
};

static uint8_t
arg (struct script *s)
{
  uint8_t b = 0;

  if (s->left > 0) {
    b = *s->p++;
    s->left--;
  }
  return b;
}

struct stream {
  uint8_t buf[MAX_STREAM];
  size_t len;
  struct harness_chunk chunks[MAX_CHUNKS];
  size_t nchunks;
  size_t chunk_start;
};

static void
put (struct stream *st, const void *d, size_t n)
{
  if (n == 0)
    return;
  if (n > MAX_STREAM - st->len)
    n = MAX_STREAM - st->len;
  memcpy (st->buf + st->len, d, n);
  st->len += n;
}

static void
put32 (struct stream *st, uint32_t v)
{
  v = htobe32 (v);
  put (st, &v, 4);
}

static void
put_option (struct stream *st, uint32_t option, const void *d, uint32_t n)
{
  uint64_t magic = htobe64 (NBD_IHAVEOPT);

  put (st, &magic, 8);
  put32 (st, option);
  put32 (st, n);
  put (st, d, n);
}

static void
end_chunk (struct stream *st)
{
  if (st->len > st->chunk_start && st->nchunks < MAX_CHUNKS) {
    st->chunks[st->nchunks].data = st->buf + st->chunk_start;
    st->chunks[st->nchunks].len = st->len - st->chunk_start;
    st->nchunks++;
    st->chunk_start = st->len;
  }
}

static const char *const export_names[] = { "", "lo0", "ram0", "nope" };

/* Option data built by the INFO/GO and META records. */
struct body {
  uint8_t b[256];
  size_t n;
};

static void
body_put (struct body *b, const void *d, size_t n)
{
  memcpy (b->b + b->n, d, n);
  b->n += n;
}

static void
body_string (struct body *b, const char *s)
{
  uint32_t len = htobe32 (strlen (s));

  body_put (b, &len, 4);
  body_put (b, s, strlen (s));
}

static void
build (const uint8_t *data, size_t size, struct stream *st, bool *require)
{
  struct script s = { data, size };
  uint8_t mode = arg (&s);

  *require = mode & 1;
  put32 (st, NBD_FLAG_C_FIXED_NEWSTYLE
         | (mode & 2 ? 0 : NBD_FLAG_C_NO_ZEROES));
  while (s.left > 0 && st->len < MAX_STREAM) {
    uint8_t op = arg (&s) % 8;
    struct body b = { .n = 0 };

    switch (op) {
    case 0: {
      uint8_t option = arg (&s), n = arg (&s);

      if (n > s.left)
        n = s.left;
      put_option (st, option, s.p, n);
      s.p += n;
      s.left -= n;
      break;
    }
    case 1:
      put_option (st, NBD_OPT_STARTTLS, NULL, 0);
      break;
    case 2:
      end_chunk (st);
      break;
    case 3:
      put (st, FAKE_TLS_CLIENT_HELLO, FAKE_TLS_HELLO_LEN);
      break;
    case 4: {
      uint8_t n = arg (&s);

      if (n > s.left)
        n = s.left;
      put (st, s.p, n);
      s.p += n;
      s.left -= n;
      break;
    }
    case 5: {
      uint8_t x = arg (&s);
      uint16_t nreq = x & 8 ? 2 : 0;

      body_string (&b, export_names[(x >> 1) & 3]);
      nreq = htobe16 (nreq);
      body_put (&b, &nreq, 2);
      if (x & 8) {
        uint16_t r[2] = { htobe16 (NBD_INFO_NAME),
                          htobe16 (NBD_INFO_DESCRIPTION) };

        body_put (&b, r, sizeof r);
      }
      put_option (st, x & 1 ? NBD_OPT_INFO : NBD_OPT_GO, b.b, b.n);
      break;
    }
    case 6: {
      static const uint32_t simple[] = {
        NBD_OPT_STRUCTURED_REPLY, NBD_OPT_EXTENDED_HEADERS, NBD_OPT_LIST,
        NBD_OPT_ABORT,
      };

      put_option (st, simple[arg (&s) % 4], NULL, 0);
      break;
    }
    case 7: {
      static const char *const queries[] = {
        "base:allocation", "base:", "qemu:dirty-bitmap:x", NULL,
      };
      uint8_t x = arg (&s);
      const char *q = queries[(x >> 3) & 3];
      uint32_t nq = htobe32 (q ? 1 : 0);

      body_string (&b, export_names[(x >> 1) & 3]);
      body_put (&b, &nq, 4);
      if (q)
        body_string (&b, q);
      put_option (st, x & 1 ? NBD_OPT_SET_META_CONTEXT
                  : NBD_OPT_LIST_META_CONTEXT, b.b, b.n);
      break;
    }
    }
  }
  end_chunk (st);
}

/* ---- the client's view of the replies ---- */

enum mstate {
  M_GREETING,                   /* 18 bytes */
  M_REPLY,                      /* 20-byte option reply header */
  M_REPLY_DATA,                 /* its data */
  M_SERVER_HELLO,               /* STARTTLS acked: the handshake next */
  M_DONE,                       /* transmission, or out of step */
};

struct model {
  bool require;
  enum mstate state;
  uint8_t buf[20 + 1024];
  size_t need, got;
  uint32_t option, reply, length;
  bool tls;                     /* the server's hello came */
  bool starttls_acked;
  /* Negotiated (acknowledged) since the start or since STARTTLS. */
  bool structured, extended;
  uint64_t replies;
};

static void __attribute__ ((noreturn))
violated (const struct model *m, const char *what)
{
  fprintf (stderr, "fuzz-tls: invariant violated (%s, %s TLS, reply %"
           PRIu64 " to option %" PRIu32 ", type 0x%" PRIx32 "): %s\n",
           m->require ? "--tls=require" : "--tls=on",
           m->tls ? "inside" : "before", m->replies, m->option, m->reply,
           what);
  abort ();
}

static bool trace;               /* FUZZ_TLS_TRACE: print the replies */

static void
expect (struct model *m, enum mstate state, size_t need)
{
  m->state = state;
  m->need = need;
  m->got = 0;
}

/* One whole option reply (header fields, data in m->buf + 20). */
static void
check_reply (struct model *m)
{
  const uint8_t *d = m->buf + 20;
  bool error = m->reply & NBD_REP_ERR (0);

  m->replies++;
  if (trace)
    fprintf (stderr, "fuzz-tls: %s TLS: option %" PRIu32 " reply 0x%" PRIx32
             " (%" PRIu32 " bytes)\n", m->tls ? "inside" : "before",
             m->option, m->reply, m->length);
  /* Under --tls=require nothing but STARTTLS and ABORT is served in
   * the clear.  (EXPORT_NAME closes: no reply at all.)
   */
  if (m->require && !m->tls && m->option != NBD_OPT_STARTTLS
      && m->option != NBD_OPT_ABORT && m->reply != NBD_REP_ERR_TLS_REQD)
    violated (m, "an option other than STARTTLS was answered without "
              "NBD_REP_ERR_TLS_REQD before TLS");
  switch (m->option) {
  case NBD_OPT_STARTTLS:
    if (m->reply == NBD_REP_ACK) {
      if (m->tls || m->starttls_acked)
        violated (m, "a second NBD_OPT_STARTTLS was acknowledged");
      m->starttls_acked = true;
      /* Nothing negotiated in the clear survives. */
      m->structured = m->extended = false;
      expect (m, M_SERVER_HELLO, FAKE_TLS_HELLO_LEN);
      return;
    }
    if (!error)
      violated (m, "NBD_OPT_STARTTLS got a reply other than an ACK or an "
                "error");
    break;
  case NBD_OPT_STRUCTURED_REPLY:
    if (m->reply == NBD_REP_ACK)
      m->structured = true;
    else if (m->reply == NBD_REP_ERR_EXT_HEADER_REQD && !m->extended)
      violated (m, "NBD_OPT_STRUCTURED_REPLY refused for extended headers "
                "this session never negotiated (state from before "
                "STARTTLS?)");
    break;
  case NBD_OPT_EXTENDED_HEADERS:
    if (m->reply == NBD_REP_ACK) {
      if (m->extended)
        violated (m, "extended headers acknowledged twice");
      m->extended = m->structured = true;
    }
    break;
  case NBD_OPT_LIST_META_CONTEXT:
  case NBD_OPT_SET_META_CONTEXT:
    if (!error && !m->structured)
      violated (m, "a metadata context option was served without "
                "structured replies negotiated in this session (state "
                "from before STARTTLS?)");
    break;
  case NBD_OPT_INFO:
  case NBD_OPT_GO: {
    uint16_t info = 0, flags;

    if (m->length >= 2)
      memcpy (&info, d, 2);
    if (m->reply == NBD_REP_INFO && m->length >= 12
        && be16toh (info) == NBD_INFO_EXPORT) {
      memcpy (&flags, d + 10, 2);
      flags = be16toh (flags);
      if (!!(flags & NBD_FLAG_SEND_DF) != m->structured)
        violated (m, "NBD_FLAG_SEND_DF does not match the structured "
                  "replies negotiated in this session");
      if ((flags & NBD_FLAG_BLOCK_STATUS_PAYLOAD) && !m->extended)
        violated (m, "NBD_FLAG_BLOCK_STATUS_PAYLOAD without extended "
                  "headers negotiated in this session");
    }
    if (m->option == NBD_OPT_GO && m->reply == NBD_REP_ACK) {
      expect (m, M_DONE, 0);    /* transmission */
      return;
    }
    break;
  }
  case NBD_OPT_ABORT:
    if (m->reply == NBD_REP_ACK) {
      expect (m, M_DONE, 0);
      return;
    }
    break;
  }
  expect (m, M_REPLY, 20);
}

static void
sink (void *opaque, const uint8_t *data, size_t len)
{
  struct model *m = opaque;

  while (len > 0 && m->state != M_DONE) {
    size_t n = m->need - m->got;

    if (n > len)
      n = len;
    if (m->got + n <= sizeof m->buf)
      memcpy (m->buf + m->got, data, n);
    else if (m->got < sizeof m->buf)
      memcpy (m->buf + m->got, data, sizeof m->buf - m->got);
    m->got += n;
    data += n;
    len -= n;
    if (m->got < m->need)
      return;
    switch (m->state) {
    case M_GREETING:
      expect (m, M_REPLY, 20);
      break;
    case M_SERVER_HELLO:
      if (memcmp (m->buf, FAKE_TLS_SERVER_HELLO, FAKE_TLS_HELLO_LEN) != 0)
        violated (m, "the server sent something else than its TLS "
                  "handshake after acknowledging NBD_OPT_STARTTLS: it "
                  "answered plaintext sent after STARTTLS");
      m->tls = true;
      if (trace)
        fprintf (stderr, "fuzz-tls: the server's TLS handshake\n");
      expect (m, M_REPLY, 20);
      break;
    case M_REPLY: {
      uint64_t magic;

      memcpy (&magic, m->buf, 8);
      if (be64toh (magic) != NBD_REP_MAGIC) {
        /* EXPORT_NAME's reply: transmission.  Never before TLS under
         * --tls=require.
         */
        if (m->require && !m->tls)
          violated (m, "the server sent something else than option "
                    "replies before TLS (--tls=require)");
        expect (m, M_DONE, 0);
        break;
      }
      memcpy (&m->option, m->buf + 8, 4);
      memcpy (&m->reply, m->buf + 12, 4);
      memcpy (&m->length, m->buf + 16, 4);
      m->option = be32toh (m->option);
      m->reply = be32toh (m->reply);
      m->length = be32toh (m->length);
      m->need = 20 + m->length;
      m->state = M_REPLY_DATA;
      if (m->got == m->need)
        check_reply (m);
      break;
    }
    case M_REPLY_DATA:
      check_reply (m);
      break;
    case M_DONE:
      break;
    }
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct stream st;
  struct model m = { .need = 18 };
  bool require;

  if (size > 16 * 1024)
    return 0;
  trace = getenv ("FUZZ_TLS_TRACE") != NULL;
  st.len = st.nchunks = st.chunk_start = 0;
  build (data, size, &st, &require);
  m.require = require;
  opt.tls = require ? TLS_REQUIRE : TLS_ON;
  harness_run_chunks (st.chunks, st.nchunks, sink, &m);
  return 0;
}

/* ---- the structure-aware mutator ---- */

/* How many bytes the record at p (left bytes) takes, as build reads it. */
static size_t
record_len (const uint8_t *p, size_t left)
{
  size_t n;

  switch (p[0] % 8) {
  case 0:                       /* op option len data */
    n = 3 + (left > 2 ? p[2] : 0);
    break;
  case 4:                       /* op len data */
    n = 2 + (left > 1 ? p[1] : 0);
    break;
  case 5: case 6: case 7:       /* op x */
    n = 2;
    break;
  default:                      /* STARTTLS, PACKET, HELLO */
    n = 1;
  }
  return n < left ? n : left;
}

/* Records worth inserting whole: the STARTTLS dance and the options
 * that carry state across it.
 */
static const struct {
  uint8_t b[8];
  size_t n;
} vocabulary[] = {
  { { 1, 2, 3 }, 3 },           /* STARTTLS, PACKET, HELLO */
  { { 1 }, 1 },                 /* STARTTLS */
  { { 2 }, 1 },                 /* PACKET */
  { { 3 }, 1 },                 /* HELLO */
  { { 6, 0 }, 2 },              /* STRUCTURED_REPLY */
  { { 6, 1 }, 2 },              /* EXTENDED_HEADERS */
  { { 6, 2 }, 2 },              /* LIST */
  { { 7, 3 }, 2 },              /* SET_META lo0 base:allocation */
  { { 7, 2 }, 2 },              /* LIST_META lo0 */
  { { 5, 2 }, 2 },              /* GO lo0 */
  { { 5, 11 }, 2 },             /* INFO lo0 with name, description */
  { { 0, 1, 3, 'l', 'o', '0' }, 6 }, /* EXPORT_NAME lo0 */
  { { 0, 5, 1, 'x' }, 4 },      /* STARTTLS with data */
};
#define NR_VOCABULARY (sizeof vocabulary / sizeof vocabulary[0])
#define MAX_RECORDS 512

size_t LLVMFuzzerMutate (uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator (uint8_t *data, size_t size, size_t max_size,
                                unsigned int seed);

/* Three times in four libFuzzer's own byte mutations (which the
 * script format survives); otherwise a whole record inserted from the
 * vocabulary, deleted, duplicated or moved, at record boundaries, or
 * the TLS mode flipped.
 */
size_t
LLVMFuzzerCustomMutator (uint8_t *data, size_t size, size_t max_size,
                         unsigned int seed)
{
  size_t starts[MAX_RECORDS + 1], nrec = 0, off, a, b, len;
  uint8_t tmp[256];

  srand (seed);
  if (size < 1 || rand () % 4 != 0)
    return LLVMFuzzerMutate (data, size, max_size);
  for (off = 1; off < size && nrec < MAX_RECORDS; ) {
    starts[nrec++] = off;
    off += record_len (data + off, size - off);
  }
  starts[nrec] = off;           /* the end (or as far as counted) */
  switch (rand () % 5) {
  case 0:
  case 1: {                     /* insert a record of the vocabulary */
    size_t v = rand () % NR_VOCABULARY;

    a = starts[rand () % (nrec + 1)];
    len = vocabulary[v].n;
    if (size + len > max_size)
      break;
    memmove (data + a + len, data + a, size - a);
    memcpy (data + a, vocabulary[v].b, len);
    return size + len;
  }
  case 2:                       /* delete a record */
    if (nrec == 0)
      break;
    a = rand () % nrec;
    len = starts[a + 1] - starts[a];
    memmove (data + starts[a], data + starts[a + 1], size - starts[a + 1]);
    return size - len;
  case 3:                       /* duplicate or move a record */
    if (nrec == 0)
      break;
    a = rand () % nrec;
    len = starts[a + 1] - starts[a];
    if (len > sizeof tmp)
      break;
    memcpy (tmp, data + starts[a], len);
    if (rand () % 2) {          /* move: take it out first */
      memmove (data + starts[a], data + starts[a + 1],
               size - starts[a + 1]);
      size -= len;
      nrec--;
      for (b = a + 1; b <= nrec; b++)
        starts[b] = starts[b + 1] - len;
    }
    else if (size + len > max_size)
      break;
    b = starts[rand () % (nrec + 1)];
    memmove (data + b + len, data + b, size - b);
    memcpy (data + b, tmp, len);
    return size + len;
  case 4:                       /* the other TLS mode */
    data[0] ^= 1;
    return size;
  }
  return LLVMFuzzerMutate (data, size, max_size);
}
