/* SPDX-License-Identifier: BSD-3-Clause */
/* A raw NBD client for the bad-input tests of nbd-loopback.
 *
 *   client-raw SOCKET MODE
 *
 * Speaks the protocol by hand over a Unix socket so it can break the
 * rules no real client breaks: garbage magic, oversized requests,
 * unknown commands and options, over-long options, unknown client
 * flags, vanishing halfway, never finishing the handshake, never
 * reading replies.  Each MODE checks what the server must do and
 * exits 0 if it did, 1 (with a message) if not.  Every wait is
 * bounded by a receive timeout.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

static int fd = -1;
static const char *mode;

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "client-raw %s: ", mode);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\n");
  exit (EXIT_FAILURE);
}

static void
connect_to (const char *path, int timeout_s)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = timeout_s };

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    die ("socket: %m");
  snprintf (addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1)
    die ("connect %s: %m", path);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void
send_all (const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = send (fd, p, len, MSG_NOSIGNAL);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      die ("send: %m");
    }
    p += r;
    len -= r;
  }
}

/* Read exactly len bytes; returns false on EOF (the server hung up). */
static bool
recv_all (void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = recv (fd, p, len, 0);
    if (r == 0)
      return false;
    if (r == -1) {
      if (errno == EINTR)
        continue;
      if (errno == ECONNRESET)
        return false;
      die ("recv: %m");
    }
    p += r;
    len -= r;
  }
  return true;
}

static void
expect_recv (void *buf, size_t len, const char *what)
{
  if (!recv_all (buf, len))
    die ("the server closed the connection while %s was expected", what);
}

/* The server must hang up: EOF, not a timeout. */
static void
expect_eof (const char *why)
{
  char c;

  for (;;) {
    ssize_t r = recv (fd, &c, 1, 0);
    if (r == 0 || (r == -1 && errno == ECONNRESET))
      return;
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      die ("%s: the server did not close the connection: %m", why);
    /* Left-over replies are fine; keep reading. */
  }
}

static void
greeting (uint32_t client_flags)
{
  struct nbd_greeting g;
  uint32_t f = htobe32 (client_flags);

  expect_recv (&g, sizeof g, "the greeting");
  if (be64toh (g.magic) != NBD_MAGIC || be64toh (g.ihaveopt) != NBD_IHAVEOPT)
    die ("bad greeting magic");
  if (be16toh (g.flags) != (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES))
    die ("unexpected handshake flags 0x%x", be16toh (g.flags));
  send_all (&f, sizeof f);
}

static void
send_option (uint32_t option, const void *data, uint32_t len)
{
  struct nbd_option o = {
    .magic = htobe64 (NBD_IHAVEOPT),
    .option = htobe32 (option),
    .length = htobe32 (len),
  };

  send_all (&o, sizeof o);
  if (len)
    send_all (data, len);
}

/* Read option replies up to the final one; returns its type. */
static uint32_t
option_reply (uint32_t option)
{
  for (;;) {
    struct nbd_option_reply r;
    char data[8192];
    uint32_t len, type;

    expect_recv (&r, sizeof r, "an option reply");
    if (be64toh (r.magic) != NBD_REP_MAGIC)
      die ("bad option reply magic");
    if (be32toh (r.option) != option)
      die ("reply to option %u, expected %u", be32toh (r.option), option);
    len = be32toh (r.length);
    type = be32toh (r.reply);
    if (len > sizeof data)
      die ("option reply of %u bytes", len);
    expect_recv (data, len, "option reply data");
    if (type != NBD_REP_SERVER && type != NBD_REP_INFO
        && type != NBD_REP_META_CONTEXT)
      return type;
  }
}

/* Handshake into transmission of the default export with
 * NBD_OPT_EXPORT_NAME (simple replies).  Returns the export size.
 */
static uint64_t
handshake (void)
{
  uint64_t size;
  uint16_t flags;

  greeting (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  send_option (NBD_OPT_EXPORT_NAME, "", 0);
  expect_recv (&size, 8, "the export size");
  expect_recv (&flags, 2, "the transmission flags");
  return be64toh (size);
}

static void
send_request (uint16_t type, uint16_t flags, uint64_t cookie,
              uint64_t offset, uint32_t count)
{
  struct nbd_request r = {
    .magic = htobe32 (NBD_REQUEST_MAGIC),
    .flags = htobe16 (flags),
    .type = htobe16 (type),
    .cookie = htobe64 (cookie),
    .offset = htobe64 (offset),
    .count = htobe32 (count),
  };

  send_all (&r, sizeof r);
}

/* A simple reply to cookie; returns its error. */
static uint32_t
simple_reply (uint64_t cookie)
{
  struct nbd_simple_reply r;

  expect_recv (&r, sizeof r, "a reply");
  if (be32toh (r.magic) != NBD_SIMPLE_REPLY_MAGIC)
    die ("bad reply magic 0x%x", be32toh (r.magic));
  if (be64toh (r.cookie) != cookie)
    die ("reply to cookie %llu, expected %llu",
         (unsigned long long) be64toh (r.cookie), (unsigned long long) cookie);
  return be32toh (r.error);
}

/* The connection still works: a 512-byte read succeeds. */
static void
still_serving (void)
{
  char buf[512];

  send_request (NBD_CMD_READ, 0, 999, 0, sizeof buf);
  if (simple_reply (999) != 0)
    die ("a valid read after the bad request failed");
  expect_recv (buf, sizeof buf, "read data");
}

static void
expect_error (uint64_t cookie, uint32_t want, const char *what)
{
  uint32_t err = simple_reply (cookie);

  if (err != want)
    die ("%s: got NBD error %u, expected %u", what, err, want);
}

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main (int argc, char *argv[])
{
  if (argc != 3) {
    fprintf (stderr, "usage: client-raw SOCKET MODE\n");
    exit (2);
  }
  mode = argv[2];
  connect_to (argv[1], 30);

  if (strcmp (mode, "garbage-magic") == 0) {
    /* A request with a bad magic: the connection is dropped. */
    handshake ();
    send_all ("this is not an NBD request!!", 28);
    expect_eof ("after a request with a bad magic");
  }
  else if (strcmp (mode, "garbage-handshake") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    send_all ("GET / HTTP/1.0\r\n\r\n", 18);
    expect_eof ("after garbage instead of an option");
  }
  else if (strcmp (mode, "unknown-client-flags") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE | (1 << 7));
    expect_eof ("after unknown client flags");
  }
  else if (strcmp (mode, "unknown-option") == 0) {
    /* Drained and answered ERR_UNSUP; the next option still works. */
    char data[100] = { 0 };
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    send_option (1000, data, sizeof data);
    if (option_reply (1000) != NBD_REP_ERR_UNSUP)
      die ("unknown option not answered NBD_REP_ERR_UNSUP");
    send_option (NBD_OPT_STARTTLS, NULL, 0);
    if (option_reply (NBD_OPT_STARTTLS) != NBD_REP_ERR_UNSUP)
      die ("STARTTLS not answered NBD_REP_ERR_UNSUP");
    send_option (NBD_OPT_LIST, NULL, 0);
    if (option_reply (NBD_OPT_LIST) != NBD_REP_ACK)
      die ("NBD_OPT_LIST after an unknown option failed");
    send_option (NBD_OPT_ABORT, NULL, 0);
    if (option_reply (NBD_OPT_ABORT) != NBD_REP_ACK)
      die ("NBD_OPT_ABORT not acknowledged");
    expect_eof ("after NBD_OPT_ABORT");
  }
  else if (strcmp (mode, "long-option") == 0) {
    /* 1 MiB of option data: drained, NBD_REP_ERR_TOO_BIG, in step. */
    size_t len = 1024 * 1024;
    char *data = calloc (1, len);
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    send_option (NBD_OPT_GO, data, len);
    free (data);
    if (option_reply (NBD_OPT_GO) != NBD_REP_ERR_TOO_BIG)
      die ("over-long option not answered NBD_REP_ERR_TOO_BIG");
    send_option (NBD_OPT_LIST, NULL, 0);
    if (option_reply (NBD_OPT_LIST) != NBD_REP_ACK)
      die ("NBD_OPT_LIST after an over-long option failed");
  }
  else if (strcmp (mode, "list-with-data") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    send_option (NBD_OPT_LIST, "xx", 2);
    if (option_reply (NBD_OPT_LIST) != NBD_REP_ERR_INVALID)
      die ("NBD_OPT_LIST with data not answered NBD_REP_ERR_INVALID");
  }
  else if (strcmp (mode, "unknown-export-name") == 0) {
    /* EXPORT_NAME cannot answer an error: the server hangs up. */
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    send_option (NBD_OPT_EXPORT_NAME, "nosuch", 6);
    expect_eof ("after NBD_OPT_EXPORT_NAME of an unknown export");
  }
  else if (strcmp (mode, "unknown-command") == 0) {
    handshake ();
    send_request (99, 0, 1, 0, 512);
    expect_error (1, NBD_EINVAL, "unknown command");
    still_serving ();
  }
  else if (strcmp (mode, "oversize-read") == 0) {
    /* Beyond 64 MiB: EINVAL, nothing allocated, connection goes on. */
    handshake ();
    send_request (NBD_CMD_READ, 0, 2, 0, 64 * 1024 * 1024 + 1);
    expect_error (2, NBD_EINVAL, "read of 64 MiB + 1");
    still_serving ();
  }
  else if (strcmp (mode, "oversize-write") == 0) {
    /* The payload is read and thrown away, so the stream stays in step. */
    uint32_t count = 64 * 1024 * 1024 + 4096;
    size_t chunk = 1024 * 1024;
    char *zero = calloc (1, chunk);
    handshake ();
    send_request (NBD_CMD_WRITE, 0, 3, 0, count);
    for (uint32_t sent = 0; sent < count; sent += chunk)
      send_all (zero, count - sent < chunk ? count - sent : chunk);
    free (zero);
    expect_error (3, NBD_EINVAL, "write of 64 MiB + 4 KiB");
    still_serving ();
  }
  else if (strcmp (mode, "write-past-end") == 0) {
    char buf[4096] = { 0 };
    uint64_t size = handshake ();
    send_request (NBD_CMD_WRITE, 0, 4, size, sizeof buf);
    send_all (buf, sizeof buf);
    expect_error (4, NBD_ENOSPC, "write past the end");
    send_request (NBD_CMD_READ, 0, 5, size - 512, 1024);
    expect_error (5, NBD_EINVAL, "read past the end");
    send_request (NBD_CMD_FLUSH, 0, 6, 1, 0);
    expect_error (6, NBD_EINVAL, "flush with an offset");
    still_serving ();
  }
  else if (strcmp (mode, "vanish-handshake") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    send_all ("IHAV", 4);         /* half an option header, then gone */
  }
  else if (strcmp (mode, "vanish-request") == 0) {
    char buf[1000] = { 0 };
    handshake ();
    send_request (NBD_CMD_WRITE, 0, 7, 0, 65536);
    send_all (buf, sizeof buf);   /* 1000 of 65536 bytes, then gone */
  }
  else if (strcmp (mode, "handshake-timeout") == 0) {
    /* Say nothing after the greeting: the server must hang up by
     * itself (the test runs it with --timeout=1).
     */
    struct nbd_greeting g;
    double t0 = now ();
    expect_recv (&g, sizeof g, "the greeting");
    expect_eof ("a client that never negotiates");
    if (now () - t0 > 20)
      die ("the server took %.1f s to drop a silent client", now () - t0);
  }
  else if (strcmp (mode, "no-read") == 0) {
    /* Ask for 100 GiB of reads and read none of the replies.  The
     * server must stop reading from us (its memory is bounded), so our
     * sends block; and, with --stall-timeout, it must hang up.
     */
    const long many = 100000;
    struct timeval tv = { .tv_sec = 2 };
    struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };
    long sent = 0;
    double t0;

    handshake ();
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (; sent < many; sent++) {
      struct nbd_request r = {
        .magic = htobe32 (NBD_REQUEST_MAGIC),
        .type = htobe16 (NBD_CMD_READ),
        .cookie = htobe64 (sent),
        .offset = htobe64 (0),
        .count = htobe32 (1024 * 1024),
      };
      if (send (fd, &r, sizeof r, MSG_NOSIGNAL) != sizeof r)
        break;                  /* blocked: the server stopped reading */
    }
    printf ("sent %ld read requests before the server stopped reading\n",
            sent);
    if (sent == many)
      die ("the server kept reading requests from a client that reads "
           "no replies");
    /* Wait, still reading nothing, for the server to hang up. */
    t0 = now ();
    while (!(pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      if (now () - t0 > 30)
        die ("the server did not drop a client that reads no replies");
      if (poll (&pfd, 1, 1000) == -1 && errno != EINTR)
        die ("poll: %m");
    }
  }
  else {
    fprintf (stderr, "client-raw: unknown mode %s\n", mode);
    exit (2);
  }
  close (fd);
  return 0;
}
