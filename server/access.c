/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: --allow, which TCP clients may connect.
 *
 * Each --allow ADDR[/PREFIX] (IPv4 or IPv6, repeatable) adds a
 * network; once there is one, a TCP client from outside all of them is
 * closed as soon as it is accepted, before a byte of the handshake,
 * and logged.  Unix-socket clients are not subject to it: file
 * permissions guard those.  IPv4 clients arriving on a dual-stack
 * socket (::ffff:a.b.c.d, possible with socket activation) are matched
 * as the IPv4 addresses they are.  The list is built while parsing the
 * command line and read-only afterwards.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "log.h"
#include "vector.h"

struct allow {
  int family;                   /* AF_INET or AF_INET6 */
  unsigned char addr[16];       /* network byte order, host bits cleared */
  unsigned prefix;              /* bits that must match */
};

DEFINE_VECTOR (allow_vector, struct allow);

static struct allow_vector allows;

static bool
prefix_match (const unsigned char *a, const unsigned char *b,
              unsigned prefix)
{
  unsigned bytes = prefix / 8, bits = prefix % 8;

  if (memcmp (a, b, bytes) != 0)
    return false;
  if (bits == 0)
    return true;
  return ((a[bytes] ^ b[bytes]) & (0xff << (8 - bits))) == 0;
}

static void
clear_host_bits (unsigned char *a, size_t len, unsigned prefix)
{
  for (size_t i = 0; i < len; i++) {
    unsigned keep = prefix >= 8 * (i + 1) ? 8
      : prefix > 8 * i ? prefix - 8 * i : 0;
    a[i] &= keep ? 0xff << (8 - keep) : 0;
  }
}

int
access_allow (const char *spec)
{
  char addr[INET6_ADDRSTRLEN + 1];
  const char *slash = strchr (spec, '/');
  size_t alen = slash ? (size_t) (slash - spec) : strlen (spec);
  struct allow a = { 0 };
  unsigned max;

  if (alen == 0 || alen >= sizeof addr)
    goto bad;
  memcpy (addr, spec, alen);
  addr[alen] = '\0';
  if (inet_pton (AF_INET, addr, a.addr) == 1) {
    a.family = AF_INET;
    max = 32;
  }
  else if (inet_pton (AF_INET6, addr, a.addr) == 1) {
    a.family = AF_INET6;
    max = 128;
  }
  else
    goto bad;
  a.prefix = max;
  if (slash) {
    char *end;
    unsigned long n;

    errno = 0;
    n = strtoul (slash + 1, &end, 10);
    if (errno || end == slash + 1 || *end || n > max)
      goto bad;
    a.prefix = n;
  }
  clear_host_bits (a.addr, max / 8, a.prefix);

  if (allow_vector_append (&allows, a) == -1) {
    log_error ("--allow: %m");
    return -1;
  }
  return 0;

 bad:
  log_error ("--allow %s: expected an IPv4 or IPv6 address, optionally "
             "followed by /PREFIX (0-32 or 0-128)", spec);
  return -1;
}

bool
access_restricted (void)
{
  return allows.len > 0;
}

bool
access_allowed (const struct sockaddr *sa)
{
  const unsigned char *a;
  int family = sa->sa_family;

  if (allows.len == 0 || family == AF_UNIX)
    return true;
  if (family == AF_INET)
    a = (const unsigned char *) &((const struct sockaddr_in *) sa)->sin_addr;
  else if (family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;
    const struct in6_addr *in6 = &sin6->sin6_addr;

    a = in6->s6_addr;
    if (IN6_IS_ADDR_V4MAPPED (in6)) {
      family = AF_INET;
      a += 12;
    }
  }
  else
    return false;

  for (size_t i = 0; i < allows.len; i++)
    if (allows.ptr[i].family == family
        && prefix_match (allows.ptr[i].addr, a, allows.ptr[i].prefix))
      return true;
  return false;
}

void
access_describe (const struct sockaddr *sa, char *buf, size_t len)
{
  char host[INET6_ADDRSTRLEN] = "?";

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *) sa;
    inet_ntop (AF_INET, &sin->sin_addr, host, sizeof host);
    snprintf (buf, len, "%s:%d", host, ntohs (sin->sin_port));
  }
  else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;
    inet_ntop (AF_INET6, &sin6->sin6_addr, host, sizeof host);
    snprintf (buf, len, "[%s]:%d", host, ntohs (sin6->sin6_port));
  }
  else
    snprintf (buf, len, "family %d", sa->sa_family);
}

void
access_free (void)
{
  allow_vector_reset (&allows);
}
