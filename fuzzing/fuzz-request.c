/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the daemon's request decoder and everything a
 * request reaches (validate_request, the fast path, the workers, the
 * cache, replies).
 *
 * The first input byte picks a valid handshake, which the harness
 * sends first: bit 0 structured replies, bit 1 base:allocation
 * (needs bit 0 or 3), bit 2 the export (lo0, a file, or ram0), bit 3
 * extended headers (32-byte requests, 64-bit lengths); the rest of
 * the input is the transmission phase, request headers and payloads
 * as the client sends them.  A crash, sanitizer report, leak or hang
 * is a bug; error replies and closed connections are not.
 */
#include <config.h>

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static size_t
put_option (uint8_t *p, uint32_t option, const void *body, uint32_t len)
{
  uint64_t magic = htobe64 (NBD_IHAVEOPT);
  uint32_t o = htobe32 (option), l = htobe32 (len);

  memcpy (p, &magic, 8);
  memcpy (p + 8, &o, 4);
  memcpy (p + 12, &l, 4);
  if (len)
    memcpy (p + 16, body, len);
  return 16 + len;
}

static size_t
put_name (uint8_t *p, const char *name)
{
  uint32_t len = strlen (name), be = htobe32 (len);

  memcpy (p, &be, 4);
  memcpy (p + 4, name, len);
  return 4 + len;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint8_t hs[512], body[128];
  size_t n = 0, b;
  uint32_t flags = htobe32 (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  const char *export;
  uint16_t zero = 0;
  uint32_t one = htobe32 (1);

  if (size < 1 || size > 256 * 1024)
    return 0;
  export = data[0] & 4 ? "ram0" : "lo0";
  memcpy (hs, &flags, 4);
  n = 4;
  if (data[0] & 1)
    n += put_option (hs + n, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
  if (data[0] & 8)
    n += put_option (hs + n, NBD_OPT_EXTENDED_HEADERS, NULL, 0);
  if ((data[0] & 2) && (data[0] & 9)) {
    b = put_name (body, export);
    memcpy (body + b, &one, 4);
    b += 4;
    b += put_name (body + b, "base:allocation");
    n += put_option (hs + n, NBD_OPT_SET_META_CONTEXT, body, b);
  }
  b = put_name (body, export);
  memcpy (body + b, &zero, 2);
  b += 2;
  n += put_option (hs + n, NBD_OPT_GO, body, b);
  harness_run (hs, n, data + 1, size - 1);
  return 0;
}
