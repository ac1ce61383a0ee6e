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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "nbd-raw.h"

static struct raw_conn conn = { .fd = -1 };
static const char *mode;

static void
greeting (uint32_t client_flags)
{
  uint16_t flags = raw_greeting (&conn, client_flags);

  if (flags != (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES))
    raw_die ("unexpected handshake flags 0x%x", flags);
}

/* Handshake into transmission of the default export with
 * NBD_OPT_EXPORT_NAME (simple replies).  Returns the export size.
 */
static uint64_t
handshake (void)
{
  greeting (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  return raw_export_name (&conn, "", NULL);
}

/* The connection still works: a 512-byte read succeeds. */
static void
still_serving (void)
{
  char buf[512];

  raw_request (&conn, NBD_CMD_READ, 0, 999, 0, sizeof buf);
  if (raw_simple_reply (&conn, 999) != 0)
    raw_die ("a valid read after the bad request failed");
  raw_expect_recv (&conn, buf, sizeof buf, "read data");
}

static void
expect_error (uint64_t cookie, uint32_t want, const char *what)
{
  uint32_t err = raw_simple_reply (&conn, cookie);

  if (err != want)
    raw_die ("%s: got NBD error %u, expected %u", what, err, want);
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
  raw_program = "client-raw";
  raw_mode = mode = argv[2];
  conn.fd = raw_connect (argv[1], NULL);
  raw_timeouts (conn.fd, 30, 30);

  if (strcmp (mode, "garbage-magic") == 0) {
    /* A request with a bad magic: the connection is dropped. */
    handshake ();
    raw_send_all (&conn, "this is not an NBD request!!", 28);
    raw_expect_hangup (&conn, "after a request with a bad magic");
  }
  else if (strcmp (mode, "garbage-handshake") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_send_all (&conn, "GET / HTTP/1.0\r\n\r\n", 18);
    raw_expect_hangup (&conn, "after garbage instead of an option");
  }
  else if (strcmp (mode, "unknown-client-flags") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE | (1 << 7));
    raw_expect_hangup (&conn, "after unknown client flags");
  }
  else if (strcmp (mode, "unknown-option") == 0) {
    /* Drained and answered ERR_UNSUP; the next option still works. */
    char data[100] = { 0 };
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_send_option (&conn, 1000, data, sizeof data);
    if (raw_option_reply (&conn, 1000, NULL) != NBD_REP_ERR_UNSUP)
      raw_die ("unknown option not answered NBD_REP_ERR_UNSUP");
    raw_send_option (&conn, NBD_OPT_STARTTLS, NULL, 0);
    if (raw_option_reply (&conn, NBD_OPT_STARTTLS, NULL)
        != NBD_REP_ERR_UNSUP)
      raw_die ("STARTTLS not answered NBD_REP_ERR_UNSUP");
    raw_send_option (&conn, NBD_OPT_LIST, NULL, 0);
    if (raw_option_reply (&conn, NBD_OPT_LIST, NULL) != NBD_REP_ACK)
      raw_die ("NBD_OPT_LIST after an unknown option failed");
    raw_send_option (&conn, NBD_OPT_ABORT, NULL, 0);
    if (raw_option_reply (&conn, NBD_OPT_ABORT, NULL) != NBD_REP_ACK)
      raw_die ("NBD_OPT_ABORT not acknowledged");
    raw_expect_hangup (&conn, "after NBD_OPT_ABORT");
  }
  else if (strcmp (mode, "long-option") == 0) {
    /* 1 MiB of option data: drained, NBD_REP_ERR_TOO_BIG, in step. */
    size_t len = 1024 * 1024;
    char *data = calloc (1, len);
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_send_option (&conn, NBD_OPT_GO, data, len);
    free (data);
    if (raw_option_reply (&conn, NBD_OPT_GO, NULL) != NBD_REP_ERR_TOO_BIG)
      raw_die ("over-long option not answered NBD_REP_ERR_TOO_BIG");
    raw_send_option (&conn, NBD_OPT_LIST, NULL, 0);
    if (raw_option_reply (&conn, NBD_OPT_LIST, NULL) != NBD_REP_ACK)
      raw_die ("NBD_OPT_LIST after an over-long option failed");
  }
  else if (strcmp (mode, "list-with-data") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_send_option (&conn, NBD_OPT_LIST, "xx", 2);
    if (raw_option_reply (&conn, NBD_OPT_LIST, NULL) != NBD_REP_ERR_INVALID)
      raw_die ("NBD_OPT_LIST with data not answered NBD_REP_ERR_INVALID");
  }
  else if (strcmp (mode, "unknown-export-name") == 0) {
    /* EXPORT_NAME cannot answer an error: the server hangs up. */
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_send_option (&conn, NBD_OPT_EXPORT_NAME, "nosuch", 6);
    raw_expect_hangup (&conn,
                       "after NBD_OPT_EXPORT_NAME of an unknown export");
  }
  else if (strcmp (mode, "unknown-command") == 0) {
    handshake ();
    raw_request (&conn, 99, 0, 1, 0, 512);
    expect_error (1, NBD_EINVAL, "unknown command");
    still_serving ();
  }
  else if (strcmp (mode, "oversize-read") == 0) {
    /* Beyond 64 MiB: EINVAL, nothing allocated, connection goes on. */
    handshake ();
    raw_request (&conn, NBD_CMD_READ, 0, 2, 0, 64 * 1024 * 1024 + 1);
    expect_error (2, NBD_EINVAL, "read of 64 MiB + 1");
    still_serving ();
  }
  else if (strcmp (mode, "oversize-write") == 0) {
    /* The payload is read and thrown away, so the stream stays in step. */
    uint32_t count = 64 * 1024 * 1024 + 4096;
    size_t chunk = 1024 * 1024;
    char *zero = calloc (1, chunk);
    handshake ();
    raw_request (&conn, NBD_CMD_WRITE, 0, 3, 0, count);
    for (uint32_t sent = 0; sent < count; sent += chunk)
      raw_send_all (&conn, zero, count - sent < chunk ? count - sent : chunk);
    free (zero);
    expect_error (3, NBD_EINVAL, "write of 64 MiB + 4 KiB");
    still_serving ();
  }
  else if (strcmp (mode, "write-past-end") == 0) {
    char buf[4096] = { 0 };
    uint64_t size = handshake ();
    raw_request (&conn, NBD_CMD_WRITE, 0, 4, size, sizeof buf);
    raw_send_all (&conn, buf, sizeof buf);
    expect_error (4, NBD_ENOSPC, "write past the end");
    raw_request (&conn, NBD_CMD_READ, 0, 5, size - 512, 1024);
    expect_error (5, NBD_EINVAL, "read past the end");
    raw_request (&conn, NBD_CMD_FLUSH, 0, 6, 1, 0);
    expect_error (6, NBD_EINVAL, "flush with an offset");
    still_serving ();
  }
  else if (strcmp (mode, "vanish-handshake") == 0) {
    greeting (NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_send_all (&conn, "IHAV", 4);  /* half an option header, then gone */
  }
  else if (strcmp (mode, "vanish-request") == 0) {
    char buf[1000] = { 0 };
    handshake ();
    raw_request (&conn, NBD_CMD_WRITE, 0, 7, 0, 65536);
    raw_send_all (&conn, buf, sizeof buf);  /* 1000 of 65536, then gone */
  }
  else if (strcmp (mode, "handshake-timeout") == 0) {
    /* Say nothing after the greeting: the server must hang up by
     * itself (the test runs it with --timeout=1).
     */
    struct nbd_greeting g;
    double t0 = now ();
    raw_expect_recv (&conn, &g, sizeof g, "the greeting");
    raw_expect_hangup (&conn, "a client that never negotiates");
    if (now () - t0 > 20)
      raw_die ("the server took %.1f s to drop a silent client", now () - t0);
  }
  else if (strcmp (mode, "no-read") == 0) {
    /* Ask for 100 GiB of reads and read none of the replies.  The
     * server must stop reading from us (its memory is bounded), so our
     * sends block; and, with --stall-timeout, it must hang up.
     */
    const long many = 100000;
    struct timeval tv = { .tv_sec = 2 };
    struct pollfd pfd = { .fd = conn.fd, .events = POLLRDHUP };
    long sent = 0;
    double t0;

    handshake ();
    setsockopt (conn.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (; sent < many; sent++) {
      struct nbd_request r = {
        .magic = htobe32 (NBD_REQUEST_MAGIC),
        .type = htobe16 (NBD_CMD_READ),
        .cookie = htobe64 (sent),
        .offset = htobe64 (0),
        .count = htobe32 (1024 * 1024),
      };
      if (send (conn.fd, &r, sizeof r, MSG_NOSIGNAL) != sizeof r)
        break;                  /* blocked: the server stopped reading */
    }
    printf ("sent %ld read requests before the server stopped reading\n",
            sent);
    if (sent == many)
      raw_die ("the server kept reading requests from a client that reads "
           "no replies");
    /* Wait, still reading nothing, for the server to hang up. */
    t0 = now ();
    while (!(pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      if (now () - t0 > 30)
        raw_die ("the server did not drop a client that reads no replies");
      if (poll (&pfd, 1, 1000) == -1 && errno != EINTR)
        raw_die ("poll: %m");
    }
  }
  else {
    fprintf (stderr, "client-raw: unknown mode %s\n", mode);
    exit (2);
  }
  close (conn.fd);
  return 0;
}
