/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: the nio= I/O threads.
 *
 * Client requests are taken before background ones and each priority
 * is FIFO; nio=0 runs requests in the submitter before io_submit
 * returns; io_run returns the operation's errno and leaves the
 * request's done and opaque as they were; iothreads_stop runs every
 * queued request before returning; the pool can be started again.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iothreads.h"
#include "log.h"

#define SIZE (1024 * 1024)

static char path[4096];

static struct device *
open_dev (enum access_mode access)
{
  struct export_config ec = {
    .name = "lo0",
    .path = path,
    .access = access,
    .sync = SYNC_ASYNC,
    .deny = DENY_NO,
    .io = IO_PROBE,
    .blksz = 512,
    .blksz_min = 512,
    .blksz_max = 16384,
  };
  struct device *dev = device_open (&ec);

  assert (dev);
  return dev;
}

/* lock guards everything in this section. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int order[64];           /* opaque ids in completion order */
static int nr_done;
static int errs[64];
static bool blocker_entered, gate_open;
static pthread_t done_thread;

static void
record (struct io_request *req, int err)
{
  int id = (int) (intptr_t) req->opaque;

  pthread_mutex_lock (&lock);
  errs[id] = err;
  order[nr_done++] = id;
  done_thread = pthread_self ();
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
}

/* Keeps the only I/O thread busy until the gate opens. */
static void
blocker (struct io_request *req, int err)
{
  (void) req;
  assert (err == 0);
  pthread_mutex_lock (&lock);
  blocker_entered = true;
  pthread_cond_broadcast (&cond);
  while (!gate_open)
    pthread_cond_wait (&cond, &lock);
  pthread_mutex_unlock (&lock);
}

static void
reset (void)
{
  nr_done = 0;
  memset (order, -1, sizeof order);
  memset (errs, -1, sizeof errs);
  blocker_entered = gate_open = false;
}

static void
test_priority (struct device *dev)
{
  struct io_request first = {
    .op = IO_OP_FLUSH, .prio = IO_PRIO_BACKGROUND, .dev = dev,
    .done = blocker,
  };
  struct io_request reqs[8];
  static char bufs[8][512];
  /* Interleaved submissions: background ids 0-3, client ids 4-7. */
  static const int submit_order[8] = { 0, 4, 1, 5, 2, 6, 3, 7 };
  static const int expected[8] = { 4, 5, 6, 7, 0, 1, 2, 3 };
  int i;

  reset ();
  assert (iothreads_start (1) == 0);
  io_submit (&first);
  pthread_mutex_lock (&lock);
  while (!blocker_entered)
    pthread_cond_wait (&cond, &lock);
  pthread_mutex_unlock (&lock);

  for (i = 0; i < 8; ++i) {
    int id = submit_order[i];

    reqs[id] = (struct io_request) {
      .op = IO_OP_READ,
      .prio = id < 4 ? IO_PRIO_BACKGROUND : IO_PRIO_CLIENT,
      .dev = dev, .buf = bufs[id], .offset = id * 512, .count = 512,
      .done = record, .opaque = (void *) (intptr_t) id,
    };
    io_submit (&reqs[id]);
  }
  pthread_mutex_lock (&lock);
  assert (nr_done == 0);
  gate_open = true;
  pthread_cond_broadcast (&cond);
  while (nr_done < 8)
    pthread_cond_wait (&cond, &lock);
  pthread_mutex_unlock (&lock);
  iothreads_stop ();

  for (i = 0; i < 8; ++i) {
    fprintf (stderr, "completion %d: request %d\n", i, order[i]);
    assert (order[i] == expected[i]);
    assert (errs[order[i]] == 0);
  }
}

static void
test_inline (struct device *dev)
{
  char buf[512];
  struct io_request req = {
    .op = IO_OP_READ, .prio = IO_PRIO_CLIENT, .dev = dev,
    .buf = buf, .count = sizeof buf, .done = record, .opaque = 0,
  };

  reset ();
  assert (iothreads_start (0) == 0);
  io_submit (&req);
  assert (nr_done == 1);        /* before io_submit returned */
  assert (pthread_equal (done_thread, pthread_self ()));
  assert (errs[0] == 0);
  iothreads_stop ();
}

static void
test_io_run (struct device *dev, struct device *rodev, unsigned nio)
{
  char buf[4096], back[4096];
  struct io_request req = {
    .prio = IO_PRIO_CLIENT, .dev = dev, .done = record,
    .opaque = (void *) 33,
  };

  reset ();
  assert (iothreads_start (nio) == 0);
  memset (buf, 'r', sizeof buf);
  req.op = IO_OP_WRITE;
  req.buf = buf;
  req.offset = 12345;
  req.count = sizeof buf;
  assert (io_run (&req) == 0);
  req.op = IO_OP_READ;
  req.buf = back;
  assert (io_run (&req) == 0);
  assert (memcmp (buf, back, sizeof buf) == 0);
  req.op = IO_OP_ZERO;
  req.may_trim = true;
  assert (io_run (&req) == 0);
  req.op = IO_OP_READ;
  assert (io_run (&req) == 0);
  memset (buf, 0, sizeof buf);
  assert (memcmp (buf, back, sizeof buf) == 0);
  req.op = IO_OP_TRIM;
  assert (io_run (&req) == 0);
  req.op = IO_OP_FLUSH;
  assert (io_run (&req) == 0);

  /* Errors come back as errno. */
  req.op = IO_OP_READ;
  req.offset = SIZE - 100;
  errno = 0;
  assert (io_run (&req) == -1 && errno == EIO);
  req.dev = rodev;
  req.op = IO_OP_WRITE;
  req.offset = 0;
  errno = 0;
  assert (io_run (&req) == -1 && errno == EPERM);

  /* done was never called, and is the submitter's again. */
  assert (nr_done == 0);
  assert (req.done == record && req.opaque == (void *) 33);
  iothreads_stop ();
}

/* An error reaches done as an errno value. */
static void
test_done_err (struct device *dev, unsigned nio)
{
  char buf[512];
  struct io_request req = {
    .op = IO_OP_READ, .prio = IO_PRIO_BACKGROUND, .dev = dev,
    .buf = buf, .offset = SIZE, .count = sizeof buf, .done = record,
    .opaque = (void *) 5,
  };

  reset ();
  assert (iothreads_start (nio) == 0);
  io_submit (&req);
  iothreads_stop ();
  assert (nr_done == 1 && errs[5] == EIO);
}

/* iothreads_stop runs everything queued, even behind a blocked
 * thread.
 */
static void
test_stop_drains (struct device *dev)
{
  struct io_request first = {
    .op = IO_OP_FLUSH, .prio = IO_PRIO_CLIENT, .dev = dev, .done = blocker,
  };
  static struct io_request reqs[60];
  static char bufs[60][4096];
  int i;

  reset ();
  assert (iothreads_start (2) == 0);
  io_submit (&first);
  for (i = 0; i < 60; ++i) {
    reqs[i] = (struct io_request) {
      .op = i % 2 ? IO_OP_WRITE : IO_OP_READ,
      .prio = i % 3 ? IO_PRIO_BACKGROUND : IO_PRIO_CLIENT,
      .dev = dev, .buf = bufs[i], .offset = i * 4096, .count = 4096,
      .done = record, .opaque = (void *) (intptr_t) i,
    };
    io_submit (&reqs[i]);
  }
  pthread_mutex_lock (&lock);
  gate_open = true;
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
  iothreads_stop ();
  assert (nr_done == 60);

  /* Stopped: requests run in the submitter again. */
  reset ();
  io_submit (&reqs[0]);
  assert (nr_done == 1);
  assert (pthread_equal (done_thread, pthread_self ()));
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  struct device *dev, *rodev;
  int fd;

  snprintf (path, sizeof path, "%s/iothreads-%d.img",
            tmpdir ? tmpdir : "/tmp", (int) getpid ());
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert (fd >= 0);
  assert (ftruncate (fd, SIZE) == 0);
  close (fd);
  dev = open_dev (ACCESS_RW);
  rodev = open_dev (ACCESS_RO);

  test_inline (dev);
  test_priority (dev);
  test_io_run (dev, rodev, 0);
  test_io_run (dev, rodev, 3);
  test_done_err (dev, 0);
  test_done_err (dev, 2);
  test_stop_drains (dev);
  /* Started twice is refused. */
  assert (iothreads_start (1) == 0);
  errno = 0;
  assert (iothreads_start (1) == -1 && errno == EBUSY);
  iothreads_stop ();

  device_close (dev);
  device_close (rodev);
  unlink (path);
  return 0;
}
