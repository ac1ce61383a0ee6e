/* SPDX-License-Identifier: BSD-3-Clause */
/* hostile-client: clients that misbehave on purpose, for the
 * test-hostile-*.sh tests.  Raw sockets, no libnbd; works against any
 * NBD server on a Unix socket.
 *
 *   hostile-client stop-reading SOCKET EXPORT LIMIT
 *       Handshake, then pipeline 1 MiB READs and never read a reply.
 *       Exits 0 once the server has cut the connection off, printing
 *       after how long (counted from the last request the server
 *       accepted); 1 if it has not after LIMIT seconds.
 *
 *   hostile-client half-open SOCKET N LIMIT
 *       Open N connections and never finish the handshake: a third
 *       send nothing, a third only the client flags, a third the flags
 *       and half an option header.  Exits 0 once the server has closed
 *       every one, printing how long that took; 1 if some are still
 *       open after LIMIT seconds.  Prints "holding N" on stdout once
 *       all are open (tests wait for that line).
 *
 *   hostile-client big-writes SOCKET EXPORT SECONDS
 *       Handshake, then send 32 MiB WRITEs back to back for SECONDS
 *       (random offsets in the export), reading the replies on a
 *       second thread; every reply must be a success.  Prints MiB/s.
 *
 *   hostile-client hold ADDRESS N SECONDS
 *       Keep N connections open that never start the handshake (they
 *       send nothing), opening a new one each time the server closes
 *       one, for SECONDS.  ADDRESS is a Unix socket path or
 *       tcp:HOST:PORT.  Prints "holding N" once all are open, then
 *       how many the server closed.
 *
 * Output lines starting "figures:" are for the test log.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nbd-raw.h"

#define CLIENT_FLAGS (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Fixed newstyle with NBD_OPT_EXPORT_NAME; returns the export size. */
static uint64_t
handshake (struct raw_conn *c, const char *export)
{
  raw_greeting (c, CLIENT_FLAGS);
  return raw_export_name (c, export, NULL);
}

/* Has the server closed (or reset) the connection?  Does not read. */
static bool
hung_up (int fd, int timeout_ms)
{
  struct pollfd p = { .fd = fd, .events = POLLRDHUP };

  return poll (&p, 1, timeout_ms) == 1
    && (p.revents & (POLLHUP | POLLERR | POLLRDHUP));
}

/* ---- stop-reading ---- */

static int
stop_reading (const char *path, const char *export, double limit)
{
  struct raw_conn c = { .fd = raw_connect (path, NULL) };
  uint64_t size = handshake (&c, export), cookie = 0;
  uint32_t len = 1024 * 1024;
  double last_accepted, t;
  unsigned long sent = 0;

  if (size < len)
    raw_die ("export too small");
  /* Pipeline READs until the server stops taking them. */
  last_accepted = now_s ();
  for (;;) {
    struct nbd_request r;
    ssize_t n;

    cookie++;
    raw_make_request (&r, NBD_CMD_READ, 0, cookie,
                      (cookie * len) % (size - len + 1), len);
    n = send (c.fd, &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == (ssize_t) sizeof r) {
      sent++;
      last_accepted = now_s ();
      continue;
    }
    if (n > 0) {                /* a partial header: finish it */
      raw_send_all (&c, (char *) &r + n, sizeof r - n);
      sent++;
      last_accepted = now_s ();
      continue;
    }
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (hung_up (c.fd, 100))
        break;
      if (now_s () - last_accepted > limit)
        raw_die ("still connected %.1f s after the server stopped taking "
             "requests (%lu READs sent, no reply read)",
             now_s () - last_accepted, sent);
      continue;
    }
    break;                      /* EPIPE, ECONNRESET: cut off */
  }
  t = now_s () - last_accepted;
  printf ("figures: stop-reading client: %lu READs of 1 MiB sent, no reply "
          "read; cut off %.1f s after its last request was accepted\n",
          sent, t);
  close (c.fd);
  return 0;
}

/* ---- hold ---- */

static int
hold (const char *address, unsigned n, double seconds)
{
  int *fds = calloc (n, sizeof *fds);
  struct rlimit rl;
  unsigned long closed = 0;
  double t0;

  if (fds == NULL)
    raw_die ("out of memory");
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
    rl.rlim_cur = rl.rlim_max < n + 64 ? rl.rlim_max : n + 64;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
  for (unsigned i = 0; i < n; i++)
    fds[i] = raw_connect (address, NULL);
  printf ("holding %u\n", n);
  fflush (stdout);
  t0 = now_s ();
  while (now_s () - t0 < seconds) {
    for (unsigned i = 0; i < n; i++) {
      char buf[256];
      ssize_t r = recv (fds[i], buf, sizeof buf, MSG_DONTWAIT);

      /* Closed by the server: open another in its place. */
      if (r == 0 || (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        close (fds[i]);
        closed++;
        fds[i] = raw_connect (address, NULL);
      }
    }
    {
      struct timespec ts = { 0, 5 * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
  }
  printf ("figures: hold: %u idle connections kept open for %.0f s; the "
          "server closed %lu (each reopened)\n", n, seconds, closed);
  for (unsigned i = 0; i < n; i++)
    close (fds[i]);
  free (fds);
  return 0;
}

/* ---- half-open ---- */

static int
half_open (const char *path, unsigned n, double limit)
{
  int *fds = calloc (n, sizeof *fds);
  bool *open = calloc (n, sizeof *open);
  struct rlimit rl;
  unsigned left = n;
  double t0, first = 0, last = 0;

  if (fds == NULL || open == NULL)
    raw_die ("out of memory");
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
    rl.rlim_cur = rl.rlim_max < n + 64 ? rl.rlim_max : n + 64;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
  for (unsigned i = 0; i < n; i++) {
    struct raw_conn c = { .fd = raw_connect (path, NULL) };

    fds[i] = c.fd;
    open[i] = true;
    if (i % 3 >= 1) {
      uint32_t cflags = htobe32 (CLIENT_FLAGS);
      raw_send_all (&c, &cflags, 4);
    }
    if (i % 3 == 2) {
      uint64_t magic = htobe64 (NBD_IHAVEOPT);
      raw_send_all (&c, &magic, 8);      /* half an option header */
    }
  }
  t0 = now_s ();
  printf ("holding %u\n", n);
  fflush (stdout);
  while (left > 0) {
    for (unsigned i = 0; i < n; i++) {
      char buf[256];
      ssize_t r;

      if (!open[i])
        continue;
      /* Drain the greeting; EOF or an error means closed. */
      r = recv (fds[i], buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0 || (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        open[i] = false;
        close (fds[i]);
        left--;
        last = now_s () - t0;
        if (first == 0)
          first = last;
      }
    }
    if (left == 0)
      break;
    if (now_s () - t0 > limit)
      raw_die ("%u of %u connections still open %.1f s after the last was "
           "opened", left, n, now_s () - t0);
    {
      struct timespec ts = { 0, 20 * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
  }
  printf ("figures: half-open client: %u connections that never finish "
          "the handshake, all closed by the server %.1f to %.1f s after "
          "they were opened\n", n, first, last);
  free (fds);
  free (open);
  return 0;
}

/* ---- big-writes ---- */

struct bw {
  struct raw_conn conn;
  uint64_t sent, replied;       /* requests */
  bool done;                    /* all sent */
  pthread_mutex_t lock;
};

static void *
bw_reader (void *arg)
{
  struct bw *b = arg;

  for (;;) {
    struct pollfd p = { .fd = b->conn.fd, .events = POLLIN };
    uint64_t cookie;
    uint32_t error;
    bool stop;

    pthread_mutex_lock (&b->lock);
    stop = b->done && b->replied == b->sent;
    pthread_mutex_unlock (&b->lock);
    if (stop)
      return NULL;
    if (poll (&p, 1, 100) != 1)
      continue;
    error = raw_read_simple_reply (&b->conn, &cookie);
    if (error)
      raw_die ("a 32 MiB WRITE failed: NBD error %" PRIu32, error);
    pthread_mutex_lock (&b->lock);
    b->replied++;
    pthread_mutex_unlock (&b->lock);
  }
}

static int
big_writes (const char *path, const char *export, double seconds)
{
  const uint32_t len = 32 * 1024 * 1024;
  struct bw b = { .lock = PTHREAD_MUTEX_INITIALIZER };
  uint64_t size, rng = 1;
  char *payload = malloc (len);
  pthread_t tid;
  double t0, t;

  if (payload == NULL)
    raw_die ("out of memory");
  memset (payload, 0x5b, len);
  b.conn.fd = raw_connect (path, NULL);
  size = handshake (&b.conn, export);
  if (size < len)
    raw_die ("export smaller than 32 MiB");
  pthread_create (&tid, NULL, bw_reader, &b);
  t0 = now_s ();
  while (now_s () - t0 < seconds) {
    struct nbd_request r;
    uint64_t off;

    rng = rng * 6364136223846793005u + 1442695040888963407u;
    off = ((rng >> 20) % ((size - len) / 4096 + 1)) * 4096;
    raw_make_request (&r, NBD_CMD_WRITE, 0, b.sent + 1, off, len);
    raw_send_all (&b.conn, &r, sizeof r);
    raw_send_all (&b.conn, payload, len);
    pthread_mutex_lock (&b.lock);
    b.sent++;
    pthread_mutex_unlock (&b.lock);
  }
  pthread_mutex_lock (&b.lock);
  b.done = true;
  pthread_mutex_unlock (&b.lock);
  pthread_join (tid, NULL);
  t = now_s () - t0;
  printf ("figures: big-writes client: %" PRIu64 " WRITEs of 32 MiB in "
          "%.1f s (%.0f MiB/s), every one acknowledged\n", b.sent, t,
          b.sent * 32.0 / t);
  close (b.conn.fd);
  free (payload);
  return 0;
}

int
main (int argc, char *argv[])
{
  const char *mode;

  if (argc >= 2 && strcmp (argv[1], "--help") == 0) {
    printf ("usage: hostile-client stop-reading|half-open|big-writes|hold ... "
            "(see the top of hostile-client.c)\n");
    return 0;
  }
  if (argc != 5) {
    fprintf (stderr, "usage: hostile-client MODE SOCKET ARG ARG\n");
    return 1;
  }
  mode = argv[1];
  raw_program = "hostile-client";
  raw_mode = mode;
  raw_die_prefix = "FAIL: ";
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (strcmp (mode, "stop-reading") == 0)
    return stop_reading (argv[2], argv[3], strtod (argv[4], NULL));
  if (strcmp (mode, "half-open") == 0)
    return half_open (argv[2], strtoul (argv[3], NULL, 10),
                      strtod (argv[4], NULL));
  if (strcmp (mode, "big-writes") == 0)
    return big_writes (argv[2], argv[3], strtod (argv[4], NULL));
  if (strcmp (mode, "hold") == 0)
    return hold (argv[2], strtoul (argv[3], NULL, 10), strtod (argv[4], NULL));
  fprintf (stderr, "hostile-client: unknown mode '%s'\n", mode);
  return 1;
}
