/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: device_preadv with short host reads.
 *
 * preadv and readv are wrapped (-Wl,--wrap) so that each call moves
 * at most `limit` bytes: a read then ends inside an iovec, inside the
 * rest of one, or just before zero-length iovecs.  In both I/O modes
 * every iovec must get the file's bytes at its place, the gaps between
 * the buffers stay untouched, the caller's iovec array is not changed,
 * and no host call is asked for more iovecs than it was given.
 * iovcnt 0 and past DEVICE_IOV_MAX fail with EINVAL.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "device.h"

#define SIZE (1024 * 1024)
#define NIOV 300
#define GAP_BYTE 0xa5

static size_t limit;            /* 0: no limit */
static unsigned calls;

ssize_t __real_preadv (int fd, const struct iovec *iov, int n, off_t off);
ssize_t __real_readv (int fd, const struct iovec *iov, int n);
ssize_t __wrap_preadv (int fd, const struct iovec *iov, int n, off_t off);
ssize_t __wrap_readv (int fd, const struct iovec *iov, int n);

/* iov cut to at most limit bytes, into out; returns its count. */
static int
cut (const struct iovec *iov, int n, struct iovec *out)
{
  size_t left = limit;
  int m = 0;

  assert (n > 0 && n <= DEVICE_IOV_MAX);
  calls++;
  for (int i = 0; i < n; i++) {
    out[m] = iov[i];
    if (limit) {
      if (left == 0)
        break;
      if (out[m].iov_len > left)
        out[m].iov_len = left;
      left -= out[m].iov_len;
    }
    m++;
  }
  return m ? m : 1;
}

ssize_t
__wrap_preadv (int fd, const struct iovec *iov, int n, off_t off)
{
  static struct iovec v[DEVICE_IOV_MAX];  /* one thread only */

  n = cut (iov, n, v);
  return __real_preadv (fd, v, n, off);
}

ssize_t
__wrap_readv (int fd, const struct iovec *iov, int n)
{
  static struct iovec v[DEVICE_IOV_MAX];

  n = cut (iov, n, v);
  return __real_readv (fd, v, n);
}

static char file[SIZE], buf[SIZE];

/* NIOV iovecs over buf with gaps between them, some of zero length
 * (also the last ones), their lengths adding up to at most SIZE / 2.
 */
static void
make_iov (struct iovec *iov, unsigned *seed)
{
  size_t pos = 0;

  for (int i = 0; i < NIOV; i++) {
    size_t len = i % 7 == 3 || i >= NIOV - 2 ? 0
      : 1 + rand_r (seed) % 1800;
    pos += rand_r (seed) % 64;
    iov[i] = (struct iovec) { buf + pos, len };
    pos += len;
  }
  assert (pos <= SIZE / 2);
}

static void
check (struct device *dev, const struct iovec *iov, int n, uint64_t offset)
{
  struct iovec saved[NIOV];
  const char *want = file + offset;
  char *end = buf;

  memcpy (saved, iov, n * sizeof *iov);
  memset (buf, GAP_BYTE, sizeof buf);
  calls = 0;
  assert (device_preadv (dev, iov, n, offset) == 0);
  assert (memcmp (saved, iov, n * sizeof *iov) == 0);
  for (int i = 0; i < n; i++) {
    for (char *p = end; p < (char *) iov[i].iov_base; p++)
      assert ((unsigned char) *p == GAP_BYTE);
    assert (memcmp (iov[i].iov_base, want, iov[i].iov_len) == 0);
    want += iov[i].iov_len;
    end = (char *) iov[i].iov_base + iov[i].iov_len;
  }
  for (char *p = end; p < buf + sizeof buf; p++)
    assert ((unsigned char) *p == GAP_BYTE);
}

static void
test_mode (const char *path, enum io_mode io)
{
  static const size_t limits[] = { 0, 1, 511, 4096, 5000, 65537 };
  struct export_config ec = {
    .name = "lo0",
    .path = (char *) path,
    .access = ACCESS_RO,
    .sync = SYNC_ASYNC,
    .deny = DENY_NO,
    .io = io,
    .direct = DIRECT_OFF,       /* the cut lengths are not aligned */
    .blksz_min = 512,
    .blksz_max = 16384,
  };
  struct device *dev = device_open (&ec);
  struct iovec iov[NIOV];
  unsigned seed = 17;

  assert (dev != NULL);
  for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
    limit = limits[l];
    for (int round = 0; round < 4; round++) {
      uint64_t offset = rand_r (&seed) % (SIZE / 2);

      make_iov (iov, &seed);
      /* limit 1 reads byte by byte: keep that one short. */
      check (dev, iov, limit == 1 ? 12 : NIOV, offset);
      if (limit == 0)
        assert (calls == 1);
      else
        assert (calls > 1);
    }
  }
  limit = 0;

  errno = 0;
  assert (device_preadv (dev, iov, 0, 0) == -1 && errno == EINVAL);
  errno = 0;
  assert (device_preadv (dev, iov, DEVICE_IOV_MAX + 1, 0) == -1
          && errno == EINVAL);
  device_close (dev);
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  char path[4096];
  unsigned seed = 1;
  int fd;

  snprintf (path, sizeof path, "%s/unit-device-preadv.XXXXXX",
            tmpdir ? tmpdir : "/tmp");
  fd = mkstemp (path);
  assert (fd >= 0);
  for (size_t i = 0; i < SIZE; i++)
    file[i] = rand_r (&seed);
  assert (pwrite (fd, file, SIZE, 0) == SIZE);
  close (fd);

  test_mode (path, IO_XTYPE);
  test_mode (path, IO_SEEK);
  unlink (path);
  printf ("unit-device-preadv: ok\n");
  return 0;
}
