/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: moving bytes to and from an fd= target.
 *
 * devb-loopback reads its file either with positional I/O ("xtype")
 * or with a seek followed by read/write ("seek"); both live here, with
 * the checks every caller needs (read-only, range), durability
 * (fdatasync unless O_SYNC), and the fast paths for zeroing and
 * trimming with their fallbacks: fallocate on files, the block-layer
 * ioctls on block devices, and plain writes of zeroes when the host
 * offers nothing better.  Host extents come from SEEK_DATA/SEEK_HOLE.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/fs.h>

#include "cleanup.h"
#include "device.h"
#include "internal.h"
#include "log.h"

/* Largest buffer of zeroes written at a time by the zeroing fallback. */
#define ZERO_CHUNK (1024 * 1024)

static int
check_writable (struct device *dev, const char *what)
{
  if (dev->readonly) {
    errno = EPERM;
    log_error ("%s: %s: %s: the export is read-only: %m",
               dev->name, dev->path, what);
    return -1;
  }
  return 0;
}

/* Out of range: reads fail with EIO (as a short host file would),
 * changes with ENOSPC (what NBD asks for writes past the end).
 */
static int
check_range (struct device *dev, const char *what, uint64_t offset,
             uint64_t count, int err)
{
  uint64_t size = dev->info.size;

  if (count > size || offset > size - count) {
    errno = err;
    log_error ("%s: %s: %s of %" PRIu64 " bytes at %" PRIu64
               " is beyond the end (%" PRIu64 "): %m",
               dev->name, dev->path, what, count, offset, size);
    return -1;
  }
  return 0;
}

/* The descriptor for a transfer of iov at offset, and in seek mode its
 * file offset put in place when it is not the one used last (*cur).
 * The O_DIRECT descriptor is chosen afresh for every attempt: the rest
 * of a short transfer may no longer be aligned.
 */
static int
pick_fd (struct device *dev, const struct iovec *iov, int iovcnt,
         uint64_t offset, int *cur)
{
  int fd = device_direct_fd (dev, iov, iovcnt, offset);

  if (!dev->info.positional && fd != *cur
      && lseek (fd, offset, SEEK_SET) == -1)
    return -1;
  *cur = fd;
  return fd;
}

/* Transfer all of count bytes, with the file offset of dev->fd already
 * in place for seek mode.  A read reaching the end of the host file is
 * EIO.
 */
static int
transfer (struct device *dev, bool is_write, void *buf, size_t count,
          uint64_t offset)
{
  char *p = buf;
  int cur = dev->fd, fd;
  ssize_t r;

  while (count > 0) {
    fd = pick_fd (dev, &(struct iovec) { p, count }, 1, offset, &cur);
    if (fd == -1)
      return -1;
    if (dev->info.positional)
      r = is_write ? pwrite (fd, p, count, offset)
        : pread (fd, p, count, offset);
    else
      r = is_write ? write (fd, p, count) : read (fd, p, count);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = is_write ? ENOSPC : EIO;
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

/* transfer() in either I/O mode; logs failures. */
static int
do_transfer (struct device *dev, bool is_write, void *buf, size_t count,
             uint64_t offset)
{
  int r;

  if (dev->info.positional)
    r = transfer (dev, is_write, buf, count, offset);
  else {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&dev->seek_lock);
    if (lseek (dev->fd, offset, SEEK_SET) == -1)
      r = -1;
    else
      r = transfer (dev, is_write, buf, count, offset);
  }
  if (r == -1)
    log_error ("%s: %s: %s %zu bytes at %" PRIu64 ": %m",
               dev->name, dev->path, is_write ? "write" : "read",
               count, offset);
  return r;
}

int
device_pread (struct device *dev, void *buf, size_t count, uint64_t offset)
{
  if (check_range (dev, "read", offset, count, EIO) == -1)
    return -1;
  return do_transfer (dev, false, buf, count, offset);
}

/* Vectored reads, straight into the caller's buffers (cache blocks):
 * all of iov, retrying short transfers and EINTR.  iov is not changed
 * and not copied: a read that ends inside an iovec continues with the
 * rest of that one alone (part), then with the iovecs after it, in
 * place (short reads are rare, so the usual read is one call).
 */
int
device_preadv (struct device *dev, const struct iovec *iov, int iovcnt,
               uint64_t offset)
{
  const struct iovec *cur = iov;        /* what the next read fills */
  const struct iovec *next = NULL;      /* after part, if cur is &part */
  struct iovec part;
  uint64_t count = 0, start = offset;
  ssize_t r;
  int n = iovcnt, n_next = 0, last_fd, fd;

  if (iovcnt <= 0 || iovcnt > DEVICE_IOV_MAX) {
    errno = EINVAL;
    return -1;
  }
  for (int i = 0; i < iovcnt; i++)
    count += iov[i].iov_len;
  if (check_range (dev, "read", offset, count, EIO) == -1)
    return -1;

  if (!dev->info.positional) {
    lock_or_abort (&dev->seek_lock);
    if (lseek (dev->fd, offset, SEEK_SET) == -1)
      goto fail;
  }
  last_fd = dev->fd;
  while (n > 0) {
    fd = pick_fd (dev, cur, n, offset, &last_fd);
    if (fd == -1)
      goto fail;
    r = dev->info.positional ? preadv (fd, cur, n, offset)
      : readv (fd, cur, n);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      goto fail;
    }
    if (r == 0) {
      errno = EIO;
      goto fail;
    }
    offset += r;
    while (n > 0 && (size_t) r >= cur->iov_len) {
      r -= cur->iov_len;
      cur++;
      n--;
      if (n == 0 && n_next > 0) {       /* part done: on with the rest */
        cur = next;
        n = n_next;
        n_next = 0;
      }
    }
    if (n > 0 && r > 0) {               /* ended inside *cur */
      if (cur != &part) {
        next = cur + 1;
        n_next = n - 1;
      }
      part.iov_base = (char *) cur->iov_base + r;
      part.iov_len = cur->iov_len - r;
      cur = &part;
      n = 1;
    }
  }
  if (!dev->info.positional)
    unlock_or_abort (&dev->seek_lock);
  return 0;

 fail:
  if (!dev->info.positional)
    unlock_or_abort (&dev->seek_lock);
  log_error ("%s: %s: read %" PRIu64 " bytes at %" PRIu64 ": %m",
             dev->name, dev->path, count, start);
  return -1;
}

int
device_pwrite (struct device *dev, const void *buf, size_t count,
               uint64_t offset)
{
  int r;

  if (check_writable (dev, "write") == -1 ||
      check_range (dev, "write", offset, count, ENOSPC) == -1)
    return -1;
  device_write_begin (dev);
  r = do_transfer (dev, true, (void *) buf, count, offset);
  device_write_end (dev);
  return r;
}

static int
sync_fd (struct device *dev)
{
  if (fdatasync (dev->fd) == -1) {
    log_error ("%s: %s: fdatasync: %m", dev->name, dev->path);
    return -1;
  }
  return 0;
}

int
device_flush (struct device *dev)
{
  if (dev->readonly || dev->sync)
    return 0;
  return sync_fd (dev);
}

/* fallocate and the block ioctls bypass O_SYNC on some file systems,
 * so a sync device makes their effect durable by hand: device_flush
 * is a no-op there.
 */
static int
sync_if_o_sync (struct device *dev)
{
  return dev->sync ? sync_fd (dev) : 0;
}

/* Errors meaning "the host cannot do this", as opposed to failures. */
static bool
unsupported (int err)
{
  return err == EOPNOTSUPP || err == ENOSYS || err == ENOTTY ||
    err == ENODEV || err == EINVAL;
}

/* Shrink [*offset, *offset + *count) to whole sectors, as the block
 * ioctls require.  Returns false if nothing is left.
 */
static bool
align_inward (uint64_t sector, uint64_t *offset, uint64_t *count)
{
  uint64_t start = (*offset + sector - 1) / sector * sector;
  uint64_t end = (*offset + *count) / sector * sector;

  if (end <= start)
    return false;
  *offset = start;
  *count = end - start;
  return true;
}

/* The block ioctl cmd on [offset, offset + count).  Returns 0, -1
 * with errno set (not logged).
 */
static int
block_ioctl (struct device *dev, unsigned long cmd, uint64_t offset,
             uint64_t count)
{
  uint64_t range[2] = { offset, count };

  return ioctl (dev->fd, cmd, range);
}

int
device_trim (struct device *dev, uint64_t offset, uint64_t count)
{
  int r;

  if (check_writable (dev, "trim") == -1 ||
      check_range (dev, "trim", offset, count, ENOSPC) == -1)
    return -1;
  if (count == 0)
    return 0;

  device_write_begin (dev);
  if (dev->info.is_block_device) {
    if (align_inward (dev->info.probed_blksz, &offset, &count))
      r = block_ioctl (dev, BLKDISCARD, offset, count);
    else
      r = 0;
  }
  else {
    __atomic_store_n (&dev->dense, false, __ATOMIC_RELAXED);
    r = fallocate (dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   offset, count);
  }
  device_write_end (dev);

  if (r == -1) {
    if (unsupported (errno)) {
      /* Trim is advisory: leaving the data there is allowed. */
      log_debug ("%s: %s: trim not supported by the host: %m",
                 dev->name, dev->path);
      return 0;
    }
    log_error ("%s: %s: trim %" PRIu64 " bytes at %" PRIu64 ": %m",
               dev->name, dev->path, count, offset);
    return -1;
  }
  return sync_if_o_sync (dev);
}

/* The slow path: write zeroes through the normal write path, at most
 * ZERO_CHUNK at a time.
 */
static int
write_zeroes (struct device *dev, uint64_t offset, uint64_t count)
{
  CLEANUP_FREE char *zeroes = NULL;
  size_t len = count < ZERO_CHUNK ? count : ZERO_CHUNK;

  if (count == 0)
    return 0;
  zeroes = calloc (1, len);
  if (zeroes == NULL) {
    log_error ("%s: %s: calloc: %m", dev->name, dev->path);
    return -1;
  }
  while (count > 0) {
    size_t n = count < len ? count : len;

    if (do_transfer (dev, true, zeroes, n, offset) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

/* Zero a block device range: BLKZEROOUT on whole sectors, writes for
 * the unaligned edges and where the ioctl is refused.
 */
static int
zero_block_device (struct device *dev, uint64_t offset, uint64_t count)
{
  uint64_t start = offset, len = count;

  if (!align_inward (dev->info.probed_blksz, &start, &len))
    return write_zeroes (dev, offset, count);   /* small: still fast */
  if (block_ioctl (dev, BLKZEROOUT, start, len) == -1) {
    if (!unsupported (errno)) {
      log_error ("%s: %s: ioctl BLKZEROOUT %" PRIu64 " bytes at %" PRIu64
                 ": %m", dev->name, dev->path, len, start);
      return -1;
    }
    log_debug ("%s: %s: BLKZEROOUT refused, writing zeroes: %m",
               dev->name, dev->path);
    __atomic_store_n (&dev->zero_is_slow, true, __ATOMIC_RELAXED);
    return write_zeroes (dev, offset, count);
  }
  if (write_zeroes (dev, offset, start - offset) == -1 ||
      write_zeroes (dev, start + len, offset + count - (start + len)) == -1)
    return -1;
  return sync_if_o_sync (dev);
}

/* Zero a regular file range: punch a hole if allowed, else zero the
 * range keeping it allocated, else write zeroes.
 */
static int
zero_file (struct device *dev, uint64_t offset, uint64_t count,
           bool may_trim)
{
  if (may_trim) {
    __atomic_store_n (&dev->dense, false, __ATOMIC_RELAXED);
    if (fallocate (dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   offset, count) == 0)
      return sync_if_o_sync (dev);
    if (!unsupported (errno)) {
      log_error ("%s: %s: punch hole %" PRIu64 " bytes at %" PRIu64
                 ": %m", dev->name, dev->path, count, offset);
      return -1;
    }
  }
  if (fallocate (dev->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                 offset, count) == 0)
    return sync_if_o_sync (dev);
  if (!unsupported (errno)) {
    log_error ("%s: %s: zero range %" PRIu64 " bytes at %" PRIu64
               ": %m", dev->name, dev->path, count, offset);
    return -1;
  }
  log_debug ("%s: %s: fallocate refused, writing zeroes: %m",
             dev->name, dev->path);
  __atomic_store_n (&dev->zero_is_slow, true, __ATOMIC_RELAXED);
  return write_zeroes (dev, offset, count);
}

int
device_zero (struct device *dev, uint64_t offset, uint64_t count,
             bool may_trim)
{
  int r;

  if (check_writable (dev, "zero") == -1 ||
      check_range (dev, "zero", offset, count, ENOSPC) == -1)
    return -1;
  if (count == 0)
    return 0;

  device_write_begin (dev);
  if (dev->info.is_block_device)
    r = zero_block_device (dev, offset, count);
  else
    r = zero_file (dev, offset, count, may_trim);
  device_write_end (dev);
  return r;
}

/* The SEEK_DATA/SEEK_HOLE walk; the caller holds seek_lock in seek
 * mode, since lseek moves the file offset.
 */
static int
walk_extents (struct device *dev, uint64_t offset, uint64_t end,
              device_extent_fn fn, void *opaque)
{
  uint64_t size = dev->info.size;
  uint64_t pos = offset;
  off_t data, hole;

  while (pos < end) {
    data = lseek (dev->fd, pos, SEEK_DATA);
    if (data == -1) {
      if (errno == ENXIO)       /* no data from pos to the host's end */
        return fn (opaque, pos, size - pos, true);
      if (unsupported (errno))
        return fn (opaque, pos, size - pos, false);
      log_error ("%s: %s: lseek SEEK_DATA: %m", dev->name, dev->path);
      return -1;
    }
    if ((uint64_t) data > pos) {
      uint64_t next = (uint64_t) data < size ? (uint64_t) data : size;

      if (fn (opaque, pos, next - pos, true) == -1)
        return -1;
      pos = next;
      continue;
    }
    hole = lseek (dev->fd, pos, SEEK_HOLE);
    if (hole == -1) {
      if (unsupported (errno) || errno == ENXIO)
        return fn (opaque, pos, size - pos, false);
      log_error ("%s: %s: lseek SEEK_HOLE: %m", dev->name, dev->path);
      return -1;
    }
    if ((uint64_t) hole > size || (uint64_t) hole <= pos)
      hole = size;
    if (fn (opaque, pos, hole - pos, false) == -1)
      return -1;
    pos = hole;
  }
  return 0;
}

int
device_extents (struct device *dev, uint64_t offset, uint64_t count,
                device_extent_fn fn, void *opaque)
{
  if (check_range (dev, "extents", offset, count, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 0;
  /* Block devices have no holes we can see; dense files none. */
  if (dev->info.is_block_device
      || __atomic_load_n (&dev->dense, __ATOMIC_RELAXED))
    return fn (opaque, offset, count, false);
  if (dev->info.positional)
    return walk_extents (dev, offset, offset + count, fn, opaque);
  else {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&dev->seek_lock);
    return walk_extents (dev, offset, offset + count, fn, opaque);
  }
}
