/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: device_extents on a sparse file.
 *
 * A file with data at known places reports exactly those places, in
 * order, contiguously, starting at the requested offset and never
 * past the export size (even when the host file has data beyond it),
 * in both I/O modes; a callback returning -1 stops the walk.  Where
 * the file system reports no holes, only the shape is checked.  A file
 * with no holes is all data (answered without lseek), until we punch
 * one: then that hole is reported.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "log.h"

#define K 1024ULL
#define M (1024ULL * 1024)
#define HOST_SIZE (M + 100)     /* export size: M with blksz=512 */

struct extent {
  uint64_t offset, length;
  bool hole;
};

struct list {
  struct extent e[64];
  size_t n;
  size_t stop_after;            /* return -1 after this many, 0: never */
};

static int
collect (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct list *l = opaque;

  assert (l->n < 64);
  l->e[l->n++] = (struct extent) { offset, length, hole };
  fprintf (stderr, "  %llu +%llu %s\n", (unsigned long long) offset,
           (unsigned long long) length, hole ? "hole" : "data");
  if (l->stop_after && l->n == l->stop_after) {
    errno = ECANCELED;
    return -1;
  }
  return 0;
}

/* Contiguous from offset, covering [offset, offset+count), within the
 * export.
 */
static void
check_shape (const struct list *l, uint64_t offset, uint64_t count,
             uint64_t size)
{
  uint64_t pos = offset;
  size_t i;

  assert (l->n > 0);
  for (i = 0; i < l->n; ++i) {
    assert (l->e[i].offset == pos);
    assert (l->e[i].length > 0);
    pos += l->e[i].length;
  }
  assert (pos >= offset + count);
  assert (pos <= size);
}

static void
expect (const struct list *l, size_t i, uint64_t offset, uint64_t length,
        bool hole)
{
  assert (i < l->n);
  if (l->e[i].offset != offset || l->e[i].length != length ||
      l->e[i].hole != hole) {
    fprintf (stderr, "extent %zu: expected %llu +%llu %s\n", i,
             (unsigned long long) offset, (unsigned long long) length,
             hole ? "hole" : "data");
    abort ();
  }
}

/* The file as export lo0, 512-byte blocks. */
static struct device *
open_lo0 (const char *path, enum access_mode access, enum io_mode io)
{
  struct export_config ec = {
    .name = "lo0",
    .path = (char *) path,
    .access = access,
    .sync = SYNC_ASYNC,
    .deny = DENY_NO,
    .io = io,
    .blksz = 512,
    .blksz_min = 512,
    .blksz_max = 16384,
  };

  return device_open (&ec);
}

static void
test_mode (const char *path, enum io_mode io, bool sparse)
{
  struct device *dev = open_lo0 (path, ACCESS_RO, io);
  struct list l;

  assert (dev);
  assert (device_get_info (dev)->size == M);
  fprintf (stderr, "%s mode, whole export:\n", io == IO_SEEK ? "seek" : "xtype");

  memset (&l, 0, sizeof l);
  assert (device_extents (dev, 0, M, collect, &l) == 0);
  check_shape (&l, 0, M, M);
  if (sparse) {
    assert (l.n == 6);
    expect (&l, 0, 0, 64 * K, true);
    expect (&l, 1, 64 * K, 64 * K, false);
    expect (&l, 2, 128 * K, 384 * K, true);
    expect (&l, 3, 512 * K, 4 * K, false);
    expect (&l, 4, 516 * K, M - 4 * K - 516 * K, true);
    /* The host's data goes on 100 bytes past the export. */
    expect (&l, 5, M - 4 * K, 4 * K, false);
  }

  /* From the middle of a data extent and of a hole. */
  memset (&l, 0, sizeof l);
  assert (device_extents (dev, 100 * K, 10 * K, collect, &l) == 0);
  check_shape (&l, 100 * K, 10 * K, M);
  if (sparse)
    expect (&l, 0, 100 * K, 28 * K, false);
  memset (&l, 0, sizeof l);
  assert (device_extents (dev, 200 * K, 400 * K, collect, &l) == 0);
  check_shape (&l, 200 * K, 400 * K, M);
  if (sparse) {
    expect (&l, 0, 200 * K, 312 * K, true);
    expect (&l, 1, 512 * K, 4 * K, false);
  }

  /* The last block. */
  memset (&l, 0, sizeof l);
  assert (device_extents (dev, M - 512, 512, collect, &l) == 0);
  check_shape (&l, M - 512, 512, M);
  if (sparse) {
    assert (l.n == 1);
    expect (&l, 0, M - 512, 512, false);
  }

  /* Stopping. */
  memset (&l, 0, sizeof l);
  l.stop_after = 1;
  errno = 0;
  assert (device_extents (dev, 0, M, collect, &l) == -1);
  assert (errno == ECANCELED);
  assert (l.n == 1);

  /* Out of range. */
  memset (&l, 0, sizeof l);
  assert (device_extents (dev, M - 512, 1024, collect, &l) == -1);
  assert (l.n == 0);

  device_close (dev);
}

static void
test_dense (const char *path, bool sparse)
{
  static char data[HOST_SIZE];
  struct device *dev;
  struct list l;
  int fd;

  fprintf (stderr, "a file with no holes, then one punched:\n");
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert (fd >= 0);
  memset (data, 'd', sizeof data);
  assert (pwrite (fd, data, HOST_SIZE, 0) == (ssize_t) HOST_SIZE);
  assert (fsync (fd) == 0);
  close (fd);
  dev = open_lo0 (path, ACCESS_RW, IO_XTYPE);
  assert (dev);
  memset (&l, 0, sizeof l);
  assert (device_extents (dev, 0, M, collect, &l) == 0);
  assert (l.n == 1);
  expect (&l, 0, 0, M, false);

  assert (device_trim (dev, 128 * K, 64 * K) == 0);
  memset (&l, 0, sizeof l);
  assert (device_extents (dev, 0, M, collect, &l) == 0);
  check_shape (&l, 0, M, M);
  if (sparse) {
    assert (l.n == 3);
    expect (&l, 0, 0, 128 * K, false);
    expect (&l, 1, 128 * K, 64 * K, true);
    expect (&l, 2, 192 * K, M - 192 * K, false);
  }
  device_close (dev);
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  char path[4096], data[64 * K];
  bool sparse;
  int fd;
  off_t r;

  snprintf (path, sizeof path, "%s/extents-%d.img",
            tmpdir ? tmpdir : "/tmp", (int) getpid ());
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert (fd >= 0);
  assert (ftruncate (fd, HOST_SIZE) == 0);
  memset (data, 'd', sizeof data);
  assert (pwrite (fd, data, 64 * K, 64 * K) == 64 * K);
  assert (pwrite (fd, data, 4 * K, 512 * K) == 4 * K);
  /* Data across the end of the export. */
  assert (pwrite (fd, data, 4 * K + 100, M - 4 * K) == 4 * K + 100);
  assert (fsync (fd) == 0);
  /* Does this file system report the hole at 0 exactly? */
  r = lseek (fd, 0, SEEK_DATA);
  sparse = r == 64 * K && lseek (fd, 64 * K, SEEK_HOLE) == 128 * K;
  close (fd);
  if (!sparse)
    fprintf (stderr, "%s: no exact SEEK_DATA/SEEK_HOLE here: checking "
             "the shape of the extents only\n", path);

  test_mode (path, IO_XTYPE, sparse);
  test_mode (path, IO_SEEK, sparse);
  test_dense (path, sparse);
  unlink (path);
  return 0;
}
