/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: device_zero and device_trim on regular files.
 *
 * Zeroed ranges read back as zeroes, aligned or not, and nothing
 * around them changes.  Without may_trim the blocks stay allocated
 * (st_blocks does not drop); with may_trim, and for trim, they are
 * deallocated where the file system can punch holes.  Runs in $TMPDIR
 * (ext4, xfs: fallocate zero range) and /dev/shm (tmpfs: no zero
 * range, so the write-zeroes fallback runs, over more than one chunk).
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
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "device.h"
#include "log.h"

#define SIZE (8 * 1024 * 1024)
#define K 1024
#define M (1024 * 1024)

static char *model;             /* what the file must contain */

static void
check_contents (const char *path)
{
  char *host = malloc (SIZE);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t i;

  assert (host && fd >= 0);
  assert (pread (fd, host, SIZE, 0) == SIZE);
  close (fd);
  for (i = 0; i < SIZE; ++i)
    if (host[i] != model[i]) {
      fprintf (stderr, "%s: byte %zu is %d, expected %d\n",
               path, i, host[i], model[i]);
      abort ();
    }
  free (host);
}

/* Punching a hole in the middle of an extent may allocate an extent
 * tree block, so "freed" allows that much back.
 */
#define FREED(before, after, bytes) \
  ((after) <= (before) - (long long) (bytes) / 512 + 64 * 1024 / 512)

static long long
blocks (const char *path)
{
  struct stat st;

  assert (stat (path, &st) == 0);
  return st.st_blocks;
}

/* Can this file system punch holes that free blocks? */
static bool
can_punch (const char *dir)
{
  char path[4200];
  bool ok;
  int fd;

  snprintf (path, sizeof path, "%s/punch-probe-%d", dir, (int) getpid ());
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert (fd >= 0);
  ok = fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    == 0;
  close (fd);
  unlink (path);
  return ok;
}

static void
zero (struct device *dev, const char *path, uint64_t off, uint64_t len,
      bool may_trim)
{
  struct device_info info = *device_get_info (dev);
  char back[8192];

  fprintf (stderr, "zero %llu+%llu may_trim=%d\n",
           (unsigned long long) off, (unsigned long long) len, may_trim);
  assert (device_zero (dev, off, len, may_trim) == 0);
  memset (model + off, 0, len);
  assert (info.size == SIZE);
  /* Through the device too. */
  if (len <= sizeof back) {
    memset (back, 1, len);
    assert (device_pread (dev, back, len, off) == 0);
    assert (memcmp (back, model + off, len) == 0);
  }
  check_contents (path);
}

static void
test_dir (const char *dir, enum sync_mode sync, enum io_mode io)
{
  char path[4200];
  struct export_config ec = {
    .name = "lo0",
    .access = ACCESS_RW,
    .sync = sync,
    .deny = DENY_NO,
    .io = io,
    .blksz = 512,
    .blksz_min = 512,
    .blksz_max = 16384,
  };
  struct device *dev;
  bool punch = can_punch (dir);
  long long b0, b1;
  int fd;

  fprintf (stderr, "--- %s (%s, %s; punching holes %s)\n", dir,
           sync == SYNC_SYNC ? "sync" : "async",
           io == IO_SEEK ? "seek" : "xtype",
           punch ? "works" : "is not supported: no block counts checked");
  snprintf (path, sizeof path, "%s/zero-%d.img", dir, (int) getpid ());
  memset (model, 0xaa, SIZE);
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert (fd >= 0);
  assert (pwrite (fd, model, SIZE, 0) == SIZE);
  assert (fsync (fd) == 0);
  close (fd);
  ec.path = path;
  dev = device_open (&ec);
  assert (dev);

  /* No may_trim: zeroes, blocks stay allocated. */
  b0 = blocks (path);
  zero (dev, path, 64 * K, 256 * K, false);
  assert (device_flush (dev) == 0);
  b1 = blocks (path);
  assert (b1 >= b0);

  /* may_trim: zeroes, blocks freed. */
  b0 = blocks (path);
  zero (dev, path, 1 * M, 256 * K, true);
  b1 = blocks (path);
  fprintf (stderr, "st_blocks %lld -> %lld\n", b0, b1);
  if (punch)
    assert (FREED (b0, b1, 256 * K));

  /* Unaligned, both ways: the edges are kept. */
  zero (dev, path, 2 * M + 1000, 5000, false);
  zero (dev, path, 2 * M + 9000, 5001, true);
  zero (dev, path, SIZE - 7, 7, false);
  zero (dev, path, 0, 1, true);

  /* More than one chunk of the write-zeroes fallback. */
  b0 = blocks (path);
  zero (dev, path, 4 * M - 100, 3 * M + 200, false);
  b1 = blocks (path);
  assert (b1 >= b0);

  /* Trim frees blocks where punching works; reads then see zeroes. */
  b0 = blocks (path);
  assert (device_trim (dev, 3 * M, 256 * K) == 0);
  b1 = blocks (path);
  fprintf (stderr, "trim: st_blocks %lld -> %lld\n", b0, b1);
  if (punch) {
    assert (FREED (b0, b1, 256 * K));
    memset (model + 3 * M, 0, 256 * K);
    check_contents (path);
  }
  assert (device_trim (dev, 0, 0) == 0);
  assert (device_zero (dev, 0, 0, false) == 0);

  device_close (dev);
  unlink (path);
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  struct stat st;

  model = malloc (SIZE);
  assert (model);
  test_dir (tmpdir ? tmpdir : "/tmp", SYNC_ASYNC, IO_XTYPE);
  test_dir (tmpdir ? tmpdir : "/tmp", SYNC_SYNC, IO_SEEK);
  if (stat ("/dev/shm", &st) == 0 && access ("/dev/shm", W_OK) == 0) {
    test_dir ("/dev/shm", SYNC_ASYNC, IO_XTYPE);
    test_dir ("/dev/shm", SYNC_SYNC, IO_SEEK);
  }
  else
    fprintf (stderr, "no writable /dev/shm: tmpfs part skipped\n");
  free (model);
  return 0;
}
