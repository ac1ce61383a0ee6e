/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: reads and writes through device/.
 *
 * Round trips at unaligned offsets in both I/O modes, seek and xtype
 * leaving identical bytes in the host file (also with several threads
 * sharing one seek-mode device, which only its lock keeps correct),
 * EPERM on read-only devices, EIO past the end (of the export, and of
 * a host file that shrank behind our back), ENOSPC for writes past
 * the end, and flush.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "log.h"

#define SIZE (4 * 1024 * 1024)

static char dir[4096];

static struct export_config
config_for (const char *path, enum io_mode io)
{
  struct export_config ec = {
    .name = "lo0",
    .path = (char *) path,
    .access = ACCESS_RW,
    .sync = SYNC_ASYNC,
    .deny = DENY_NO,
    .io = io,
    .blksz_min = 512,
    .blksz_max = 16384,
  };
  return ec;
}

static void
make_file (const char *path, off_t size)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  assert (fd >= 0);
  assert (ftruncate (fd, size) == 0);
  close (fd);
}

/* The host file's bytes, read without device/. */
static char *
slurp (const char *path)
{
  char *buf = malloc (SIZE);
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  assert (buf && fd >= 0);
  assert (pread (fd, buf, SIZE, 0) == SIZE);
  close (fd);
  return buf;
}

static void
fill_random (unsigned *seed, char *buf, size_t n)
{
  size_t i;

  for (i = 0; i < n; ++i)
    buf[i] = rand_r (seed);
}

/* The same random unaligned writes through a seek and an xtype device
 * give the same host bytes, and each reads back what the other wrote.
 */
static void
test_seek_vs_xtype (void)
{
  char pseek[4200], pxtype[4200];
  struct export_config es, ex;
  struct device *ds, *dx;
  char *buf = malloc (70000), *back = malloc (70000), *a, *b;
  unsigned seed = 42;
  int i;

  snprintf (pseek, sizeof pseek, "%s/seek.img", dir);
  snprintf (pxtype, sizeof pxtype, "%s/xtype.img", dir);
  make_file (pseek, SIZE);
  make_file (pxtype, SIZE);
  es = config_for (pseek, IO_SEEK);
  ex = config_for (pxtype, IO_XTYPE);
  ds = device_open (&es);
  dx = device_open (&ex);
  assert (ds && dx);
  assert (!device_get_info (ds)->positional);
  assert (device_get_info (dx)->positional);

  for (i = 0; i < 200; ++i) {
    size_t count = 1 + rand_r (&seed) % 70000;
    uint64_t offset = rand_r (&seed) % (SIZE - count + 1);

    fill_random (&seed, buf, count);
    assert (device_pwrite (ds, buf, count, offset) == 0);
    assert (device_pwrite (dx, buf, count, offset) == 0);
    /* Read back through the other mode's device of the same data. */
    memset (back, 0, count);
    assert (device_pread (ds, back, count, offset) == 0);
    assert (memcmp (buf, back, count) == 0);
    memset (back, 0, count);
    assert (device_pread (dx, back, count, offset) == 0);
    assert (memcmp (buf, back, count) == 0);
  }
  assert (device_flush (ds) == 0);
  assert (device_flush (dx) == 0);
  a = slurp (pseek);
  b = slurp (pxtype);
  assert (memcmp (a, b, SIZE) == 0);
  device_close (ds);
  device_close (dx);
  free (a);
  free (b);
  free (buf);
  free (back);
}

/* Several threads on one seek-mode device: lseek + read/write pairs
 * must not interleave.
 */
#define NR_THREADS 4
#define REGION (SIZE / NR_THREADS)
#define CHUNK 3001

struct worker {
  struct device *dev;
  int index;
};

static void *
hammer (void *arg)
{
  struct worker *w = arg;
  char buf[CHUNK], back[CHUNK];
  uint64_t base = (uint64_t) w->index * REGION, off;
  int round;

  for (round = 0; round < 3; ++round) {
    memset (buf, 'a' + w->index * 4 + round, sizeof buf);
    for (off = 0; off + CHUNK <= REGION; off += CHUNK) {
      assert (device_pwrite (w->dev, buf, CHUNK, base + off) == 0);
      assert (device_pread (w->dev, back, CHUNK, base + off) == 0);
      assert (memcmp (buf, back, CHUNK) == 0);
    }
  }
  return NULL;
}

static void
test_seek_threads (void)
{
  char path[4200];
  struct export_config ec;
  struct worker w[NR_THREADS];
  pthread_t t[NR_THREADS];
  uint64_t off;
  char *host;
  int i;

  snprintf (path, sizeof path, "%s/threads.img", dir);
  make_file (path, SIZE);
  ec = config_for (path, IO_SEEK);
  for (i = 0; i < NR_THREADS; ++i) {
    w[i].dev = i == 0 ? device_open (&ec) : w[0].dev;
    assert (w[i].dev);
    w[i].index = i;
  }
  for (i = 0; i < NR_THREADS; ++i)
    assert (pthread_create (&t[i], NULL, hammer, &w[i]) == 0);
  for (i = 0; i < NR_THREADS; ++i)
    pthread_join (t[i], NULL);
  host = slurp (path);
  for (i = 0; i < NR_THREADS; ++i)
    for (off = 0; off + CHUNK <= REGION; ++off)
      assert (host[i * REGION + off] == 'a' + i * 4 + 2);
  device_close (w[0].dev);
  free (host);
}

static void
test_readonly (void)
{
  char path[4200], buf[512] = "x";
  struct export_config ec;
  struct device *dev;
  char *before, *after;

  snprintf (path, sizeof path, "%s/ro.img", dir);
  make_file (path, SIZE);
  before = slurp (path);
  ec = config_for (path, IO_PROBE);
  ec.access = ACCESS_RO;
  dev = device_open (&ec);
  assert (dev);
  errno = 0;
  assert (device_pwrite (dev, buf, sizeof buf, 0) == -1 && errno == EPERM);
  errno = 0;
  assert (device_zero (dev, 0, 512, false) == -1 && errno == EPERM);
  errno = 0;
  assert (device_zero (dev, 0, 512, true) == -1 && errno == EPERM);
  errno = 0;
  assert (device_trim (dev, 0, 512) == -1 && errno == EPERM);
  assert (device_pread (dev, buf, sizeof buf, 0) == 0);
  assert (device_flush (dev) == 0);
  device_close (dev);
  after = slurp (path);
  assert (memcmp (before, after, SIZE) == 0);
  free (before);
  free (after);
}

static void
test_out_of_range (enum io_mode io)
{
  char path[4200], buf[1024];
  struct export_config ec;
  struct device *dev;
  int fd;

  snprintf (path, sizeof path, "%s/range.img", dir);
  make_file (path, SIZE);
  ec = config_for (path, io);
  dev = device_open (&ec);
  assert (dev);

  /* The last byte can be read and written; one more cannot. */
  assert (device_pread (dev, buf, 1, SIZE - 1) == 0);
  assert (device_pwrite (dev, buf, 1, SIZE - 1) == 0);
  assert (device_pread (dev, buf, 0, SIZE) == 0);
  errno = 0;
  assert (device_pread (dev, buf, 2, SIZE - 1) == -1 && errno == EIO);
  errno = 0;
  assert (device_pread (dev, buf, 1, SIZE) == -1 && errno == EIO);
  errno = 0;
  assert (device_pread (dev, buf, 1, UINT64_MAX) == -1 && errno == EIO);
  errno = 0;
  assert (device_pwrite (dev, buf, 2, SIZE - 1) == -1 && errno == ENOSPC);
  errno = 0;
  assert (device_zero (dev, SIZE - 1, 2, false) == -1 && errno == ENOSPC);
  errno = 0;
  assert (device_trim (dev, SIZE, 1) == -1 && errno == ENOSPC);

  /* The host file shrinks behind our back: reads of the lost part are
   * EIO, not zeroes.
   */
  fd = open (path, O_WRONLY | O_CLOEXEC);
  assert (fd >= 0);
  assert (ftruncate (fd, SIZE / 2) == 0);
  close (fd);
  assert (device_pread (dev, buf, sizeof buf, SIZE / 2 - sizeof buf) == 0);
  errno = 0;
  assert (device_pread (dev, buf, sizeof buf, SIZE / 2 + 4096) == -1);
  assert (errno == EIO);
  errno = 0;
  assert (device_pread (dev, buf, sizeof buf, SIZE / 2 - 10) == -1);
  assert (errno == EIO);
  device_close (dev);
}

static void
test_flush (enum sync_mode sync)
{
  char path[4200], buf[4096];
  struct export_config ec;
  struct device *dev;
  char *host;

  snprintf (path, sizeof path, "%s/flush.img", dir);
  make_file (path, SIZE);
  ec = config_for (path, IO_PROBE);
  ec.sync = sync;
  dev = device_open (&ec);
  assert (dev);
  memset (buf, 'f', sizeof buf);
  assert (device_pwrite (dev, buf, sizeof buf, 8192) == 0);
  assert (device_flush (dev) == 0);
  host = slurp (path);
  assert (memcmp (host + 8192, buf, sizeof buf) == 0);
  device_close (dev);
  free (host);
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");

  snprintf (dir, sizeof dir, "%s/unit-device-io.XXXXXX",
            tmpdir ? tmpdir : "/tmp");
  assert (mkdtemp (dir) != NULL);

  test_seek_vs_xtype ();
  test_seek_threads ();
  test_readonly ();
  test_out_of_range (IO_XTYPE);
  test_out_of_range (IO_SEEK);
  test_flush (SYNC_ASYNC);
  test_flush (SYNC_SYNC);

  {
    char cmd[4200 + 16];

    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert (system (cmd) == 0);
  }
  return 0;
}
