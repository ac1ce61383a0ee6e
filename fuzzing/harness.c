/* SPDX-License-Identifier: BSD-3-Clause */
/* The in-process server the protocol fuzz targets talk to.
 *
 * The daemon's own code, started the way main() starts it but without
 * sockets, signals or detaching: the exports (lo0, a 4 MiB sparse
 * temporary file opened async and denyno, removed at once; ram0, a
 * 1 MiB RAM disk), the I/O threads, the cache (no flusher thread, so
 * write-back happens only on FLUSH, FUA and when the cache is full),
 * the worker pool and one event loop.  Each input is one client: one
 * end of a socketpair handed to conn_new, the other driven from the
 * same event loop, which writes the input, shuts down its half for
 * writing, and reads and discards the replies until the server closes
 * the connection.  The server code is the product's; only main() is
 * left out (main.c is compiled with main renamed, for its globals).
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <ev.h>

#include "cache.h"
#include "harness.h"
#include "internal.h"
#include "iothreads.h"
#include "log.h"
#include "opts.h"

static void
quiet (enum log_level level, const char *msg)
{
}

static void
setup (void)
{
  char path[] = "/tmp/nbdl-fuzz-XXXXXX", fdopt[64];
  char *words[4], *err = NULL;
  struct opts *o;
  struct config *cfg;
  int fd;

  log_set_sink (getenv ("FUZZ_SERVER_LOG") ? NULL : quiet);
  fd = mkstemp (path);
  if (fd == -1 || ftruncate (fd, 4 << 20) == -1) {
    perror ("fuzz harness: temporary file");
    abort ();
  }
  close (fd);
  snprintf (fdopt, sizeof fdopt, "async,denyno,blksz=512,fd=%s", path);
  words[0] = (char *) "loopback";
  words[1] = fdopt;
  words[2] = (char *) "blk";
  words[3] = (char *) "cache=2m,delwri=60,ramdisk=1m,thread=4:1:2";
  o = opts_new ();
  if (o == NULL || opts_parse_words (o, 4, words, &err) == -1
      || (cfg = opts_finish (o, &err)) == NULL) {
    fprintf (stderr, "fuzz harness: %s\n", err ? err : "out of memory");
    abort ();
  }
  opts_free (o);
  config = cfg;
  opt.timeout = 3600;
  opt.stall_timeout = 3600;
  opt.max_connections = 1000;
  if (exports_open_devices (cfg) == -1
      || iothreads_start (cfg->nio) == -1
      || cache_init (&cfg->blk, false) == -1
      || exports_open_cache (cfg) == -1
      || workers_start (cfg->blk.thread_max, cfg->blk.thread_low,
                        cfg->blk.thread_high) == -1
      || loops_init (1) == -1) {
    fprintf (stderr, "fuzz harness: the server did not start\n");
    abort ();
  }
  unlink (path);                /* the device keeps it open */
}

/* The client end. */
struct peer {
  ev_io w;
  int fd;
  const uint8_t *parts[2];
  size_t lens[2];
  int part;
  size_t off;
  bool done_writing;
  bool closed;
};

static void
peer_cb (struct ev_loop *ev, ev_io *w, int revents)
{
  struct peer *p = w->data;
  char buf[65536];

  if ((revents & EV_WRITE) && !p->done_writing) {
    while (p->part < 2 && p->off == p->lens[p->part]) {
      p->part++;
      p->off = 0;
    }
    if (p->part < 2) {
      ssize_t r = send (p->fd, p->parts[p->part] + p->off,
                        p->lens[p->part] - p->off,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r > 0)
        p->off += r;
      else if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
        p->part = 2;            /* the server has gone: stop sending */
    }
    if (p->part == 2 || (p->part == 1 && p->off == p->lens[1])) {
      shutdown (p->fd, SHUT_WR);
      p->done_writing = true;
      ev_io_stop (ev, w);
      ev_io_set (w, p->fd, EV_READ);
      ev_io_start (ev, w);
    }
  }
  if (revents & EV_READ) {
    ssize_t r;
    do
      r = recv (p->fd, buf, sizeof buf, MSG_DONTWAIT);
    while (r > 0);
    if (r == 0 || (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      p->closed = true;
      ev_io_stop (ev, w);
    }
  }
}

void
harness_run (const uint8_t *prefix, size_t prefix_len,
             const uint8_t *data, size_t size)
{
  static bool ready;
  struct loop *loop;
  struct peer p = {
    .parts = { prefix, data }, .lens = { prefix_len, size },
  };
  int sv[2];

  if (!ready) {
    setup ();
    ready = true;
  }
  loop = &loops[0];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                  sv) == -1) {
    perror ("socketpair");
    abort ();
  }
  p.fd = sv[1];
  ev_io_init (&p.w, peer_cb, sv[1], EV_READ | EV_WRITE);
  p.w.data = &p;
  ev_io_start (loop->ev, &p.w);
  if (conn_new (loop, sv[0], &handshake_phase) == NULL)
    abort ();
  /* Until the server has freed the connection and the client end has
   * seen it close.  Workers wake the loop through its ev_async.
   */
  while (!p.closed || loop->nr_conns > 0)
    ev_run (loop->ev, EVRUN_ONCE);
  ev_io_stop (loop->ev, &p.w);
  close (sv[1]);
}

/* ---- packets: harness_run_chunks ---- */

struct cpeer {
  ev_io w;
  int fd;
  void (*sink) (void *opaque, const uint8_t *data, size_t len);
  void *opaque;
  bool closed;
};

static void
cpeer_read (struct cpeer *p)
{
  uint8_t buf[65536];
  ssize_t r;

  for (;;) {
    r = recv (p->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) {
      p->sink (p->opaque, buf, r);
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)) {
      p->closed = true;
      ev_io_stop (loops[0].ev, &p->w);
    }
    return;
  }
}

static void
cpeer_cb (struct ev_loop *ev, ev_io *w, int revents)
{
  cpeer_read (w->data);
}

/* Bytes the client sent that the server has not read yet. */
static int
unread (int fd)
{
  int n = 0;

  if (ioctl (fd, SIOCOUTQ, &n) == -1)
    return 0;
  return n;
}

void
harness_run_chunks (const struct harness_chunk *chunks, size_t nchunks,
                    void (*sink) (void *opaque, const uint8_t *data,
                                  size_t len),
                    void *opaque)
{
  static bool ready;
  struct loop *loop;
  struct cpeer p = { .sink = sink, .opaque = opaque };
  int sv[2];

  if (!ready) {
    setup ();
    ready = true;
  }
  loop = &loops[0];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                  sv) == -1) {
    perror ("socketpair");
    abort ();
  }
  p.fd = sv[1];
  ev_io_init (&p.w, cpeer_cb, sv[1], EV_READ);
  p.w.data = &p;
  ev_io_start (loop->ev, &p.w);
  if (conn_new (loop, sv[0], &handshake_phase) == NULL)
    abort ();
  for (size_t i = 0; i < nchunks && !p.closed; i++) {
    size_t off = 0;

    while (off < chunks[i].len && !p.closed) {
      ssize_t r = send (p.fd, chunks[i].data + off, chunks[i].len - off,
                        MSG_NOSIGNAL | MSG_DONTWAIT);

      if (r > 0)
        off += r;
      else if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        ev_run (loop->ev, EVRUN_ONCE);
        cpeer_read (&p);
      }
      else if (r == -1 && errno != EINTR)
        break;                  /* the server has gone */
    }
    /* Until the server has read the chunk (or gone), then whatever it
     * still has to do with it.
     */
    while (!p.closed && loop->nr_conns > 0 && unread (p.fd) > 0)
      ev_run (loop->ev, EVRUN_ONCE);
    for (int k = 0; k < 4; k++)
      ev_run (loop->ev, EVRUN_NOWAIT);
    if (!p.closed)
      cpeer_read (&p);
  }
  shutdown (p.fd, SHUT_WR);
  while (!p.closed || loop->nr_conns > 0) {
    ev_run (loop->ev, EVRUN_ONCE);
    if (!p.closed)
      cpeer_read (&p);
  }
  ev_io_stop (loop->ev, &p.w);
  close (sv[1]);
}
