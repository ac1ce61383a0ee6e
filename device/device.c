/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: opening, probing and revalidating an fd= target.
 *
 * Everything the rest of the program learns about a host file comes
 * from here: whether it may be exported at all (only regular files
 * and block devices, existing, non-empty, accessible), its size and
 * block size, whether positional I/O works on it, and later whether
 * another process changed it behind our back.  The messages a user
 * sees for a bad fd= are written here, each naming the export and the
 * path and saying what to do.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/magic.h>

#include "cleanup.h"
#include "device.h"
#include "internal.h"
#include "log.h"

/* The export name used in messages when the config has none. */
static const char *
label (const struct export_config *ec)
{
  return ec->name ? ec->name : "fd";
}

/* Only regular files and block devices can back an export: anything
 * else has no fixed size or cannot be read at an offset.  Character
 * devices are refused too, even seekable ones (/dev/zero, /dev/mem):
 * their size cannot be probed.
 */
static int
check_type (const char *name, const char *path, const struct stat *st)
{
  const char *what;

  if (S_ISREG (st->st_mode) || S_ISBLK (st->st_mode))
    return 0;
  if (S_ISDIR (st->st_mode)) {
    errno = EISDIR;
    log_error ("%s: %s: is a directory, expected a regular file "
               "or block device", name, path);
    return -1;
  }
  if (S_ISCHR (st->st_mode))
    what = "a character device";
  else if (S_ISFIFO (st->st_mode))
    what = "a fifo";
  else if (S_ISSOCK (st->st_mode))
    what = "a socket";
  else
    what = "not a regular file";
  errno = EINVAL;
  log_error ("%s: %s: is %s, expected a regular file or block device",
             name, path, what);
  return -1;
}

static int
stat_target (const struct export_config *ec, struct stat *st)
{
  if (stat (ec->path, st) == -1) {
    if (errno == EACCES)
      log_error ("%s: %s: cannot open: %m (this user may not search a "
                 "directory on the path)", label (ec), ec->path);
    else if (errno == ENOENT)
      log_error ("%s: %s: cannot open: %m (an fd= file must exist with "
                 "the size to export: make one, e.g. truncate -s 1G %s)",
                 label (ec), ec->path, ec->path);
    else
      log_error ("%s: %s: cannot open: %m", label (ec), ec->path);
    return -1;
  }
  return check_type (label (ec), ec->path, st);
}

/* Log why open(2) failed, with what the user can do about it. */
static void
log_open_error (const struct export_config *ec, bool excl)
{
  const char *name = label (ec), *path = ec->path;
  bool rw = ec->access == ACCESS_RW;

  switch (errno) {
  case EACCES:
  case EPERM:
    log_error ("%s: %s: cannot open for %s: %m (give this user access "
               "to it%s)", name, path,
               rw ? "reading and writing" : "reading",
               rw ? ", or export it ro" : "");
    break;
  case EROFS:
    log_error ("%s: %s: cannot open for writing: %m (export it ro)",
               name, path);
    break;
  case EBUSY:
    if (excl) {
      log_error ("%s: %s: cannot open exclusively for %s: %m (the block "
                 "device is mounted or opened exclusively by another "
                 "process; choose denyno or denyrd to share it)",
                 name, path, ec->deny == DENY_WR ? "denywr" : "denyrw");
      break;
    }
    /* fallthrough */
  default:
    log_error ("%s: %s: cannot open: %m", name, path);
  }
}

int
device_host_size (const char *name, const char *path, int fd,
                  const struct stat *st, uint64_t *size)
{
  if (S_ISBLK (st->st_mode)) {
    if (ioctl (fd, BLKGETSIZE64, size) == -1) {
      log_error ("%s: %s: ioctl BLKGETSIZE64: %m", name, path);
      return -1;
    }
  }
  else
    *size = st->st_size;
  return 0;
}

/* st_blksize above this (some network file systems say 4 MiB) is
 * not worth asking clients for.
 */
#define MAX_PREFERRED (1024 * 1024)

/* A regular file with all of its size allocated: no holes. */
static bool
fully_allocated (const struct stat *st)
{
  return S_ISREG (st->st_mode)
    && (uint64_t) st->st_blocks * 512 >= (uint64_t) st->st_size;
}

/* Fill info from an open fd (st from fstat).  Logs every failure and
 * the rounding warning.
 */
static int
probe_fd (const struct export_config *ec, int fd, const struct stat *st,
          struct device_info *info)
{
  const char *name = label (ec), *path = ec->path;
  bool blk = S_ISBLK (st->st_mode);
  uint32_t blksz;

  memset (info, 0, sizeof *info);
  info->is_block_device = blk;
  if (device_host_size (name, path, fd, st, &info->host_size) == -1)
    return -1;

  if (blk) {
    int sector;

    if (ioctl (fd, BLKSSZGET, &sector) == -1) {
      log_error ("%s: %s: ioctl BLKSSZGET: %m", name, path);
      return -1;
    }
    info->probed_blksz = sector;
  }
  else
    /* A file has no sectors: st_blksize is the file system's I/O
     * size, a hint for the preferred size, not a minimum.
     */
    info->probed_blksz = 512;

  blksz = ec->blksz ? ec->blksz : info->probed_blksz;
  if (blksz < 512 || (blksz & (blksz - 1)) != 0) {
    errno = EINVAL;
    log_error ("%s: %s: block size %" PRIu32 " is not a power of two "
               "of at least 512: set blksz=", name, path, blksz);
    return -1;
  }
  if (blksz < ec->blksz_min || (ec->blksz_max && blksz > ec->blksz_max)) {
    errno = EINVAL;
    log_error ("%s: %s: block size %" PRIu32 " (%s) is outside "
               "bufsz=%" PRIu32 ":%" PRIu32 ": set blksz= to a size "
               "within it, or widen bufsz=",
               name, path, blksz,
               ec->blksz ? "from blksz=" : "probed from the host",
               ec->blksz_min, ec->blksz_max);
    return -1;
  }
  info->blksz = blksz;
  info->preferred_blksz = blksz;
  if (!blk && st->st_blksize > blksz && st->st_blksize <= MAX_PREFERRED &&
      (st->st_blksize & (st->st_blksize - 1)) == 0)
    info->preferred_blksz = st->st_blksize;

  if (info->host_size < blksz) {
    errno = EINVAL;
    if (info->host_size == 0 && blk)
      log_error ("%s: %s: the block device is empty (0 bytes)", name, path);
    else if (blk)
      log_error ("%s: %s: the block device is smaller than one block "
                 "(%" PRIu64 " bytes < blksz=%" PRIu32 ")",
                 name, path, info->host_size, blksz);
    else if (info->host_size == 0)
      log_error ("%s: %s: the file is empty (0 bytes): an fd= file must "
                 "exist with the size to export; "
                 "pregrow it, e.g. truncate -s 1G %s", name, path, path);
    else
      log_error ("%s: %s: the file is smaller than one block "
                 "(%" PRIu64 " bytes < blksz=%" PRIu32 "); "
                 "pregrow it, e.g. truncate -s 1G %s",
                 name, path, info->host_size, blksz, path);
    return -1;
  }
  info->size = info->host_size / blksz * blksz;
  if (info->size != info->host_size)
    log_warning ("%s: %s: size %" PRIu64 " is not a multiple of "
                 "blksz=%" PRIu32 ": exporting %" PRIu64 " bytes, "
                 "the last %" PRIu64 " bytes are not accessible",
                 name, path, info->host_size, blksz, info->size,
                 info->host_size - info->size);

  /* Positional I/O works on every regular file and block device Linux
   * has, but the probe is what devb-loopback does and costs nothing.
   */
  switch (ec->io) {
  case IO_XTYPE:
    info->positional = true;
    break;
  case IO_SEEK:
    info->positional = false;
    break;
  case IO_PROBE: {
    char c;

    info->positional = !(pread (fd, &c, 0, 0) == -1 && errno == ESPIPE);
    if (!info->positional)
      log_debug ("%s: %s: positional I/O fails (ESPIPE): using seek",
                 name, path);
    break;
  }
  }
  return 0;
}

int
device_probe (const struct export_config *ec, struct device_info *info)
{
  CLEANUP_CLOSE int fd = -1;
  struct stat st;

  if (stat_target (ec, &st) == -1)
    return -1;
  /* Whether we could open it for writing, without doing so.  Errors
   * other than permissions surface in device_open.
   */
  if (ec->access == ACCESS_RW &&
      faccessat (AT_FDCWD, ec->path, R_OK | W_OK, AT_EACCESS) == -1 &&
      (errno == EACCES || errno == EPERM || errno == EROFS)) {
    log_open_error (ec, false);
    return -1;
  }
  fd = open (ec->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd == -1) {
    log_open_error (ec, false);
    return -1;
  }
  if (fstat (fd, &st) == -1) {
    log_error ("%s: %s: fstat: %m", label (ec), ec->path);
    return -1;
  }
  if (check_type (label (ec), ec->path, &st) == -1)
    return -1;
  return probe_fd (ec, fd, &st, info);
}

static void
free_device (struct device *dev)
{
  if (dev->direct_fd >= 0)
    close (dev->direct_fd);
  if (dev->fd >= 0)
    close (dev->fd);
  pthread_mutex_destroy (&dev->seek_lock);
  pthread_mutex_destroy (&dev->state_lock);
  free (dev->name);
  free (dev->path);
  free (dev);
}

int
device_check_distinct (const struct export_config *ec, size_t n)
{
  for (size_t i = 1; i < n; i++) {
    struct stat si, sj;

    if (stat (ec[i].path, &si) == -1)
      continue;
    for (size_t j = 0; j < i; j++)
      if (stat (ec[j].path, &sj) == 0 && si.st_dev == sj.st_dev &&
          si.st_ino == sj.st_ino) {
        log_error ("%s: %s: cannot open: it is the same file as %s (%s), "
                   "named twice: give each file one fd=", label (&ec[i]),
                   ec[i].path, label (&ec[j]), ec[j].path);
        errno = EBUSY;
        return -1;
      }
  }
  return 0;
}

/* On tmpfs the page cache is where the file lives: there is no second
 * copy for O_DIRECT to avoid, and unless asked for it is not used.
 */
static bool
page_cache_is_the_file (int fd)
{
  struct statfs sfs;

  return fstatfs (fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC;
}

/* direct: a second descriptor of the same file (reopened through
 * /proc, so a file renamed over the path meanwhile is not the one
 * opened) with O_DIRECT, used for the transfers it can take
 * (device_direct_fd), unless nodirect was given.  The alignment is what the file system accepts:
 * 512 bytes where a sector-sized read at a sector offset works (most
 * disks), else DEVICE_DIRECT_ALIGN.  File systems without O_DIRECT
 * (ramfs) refuse the open or the aligned read: host I/O then goes
 * through the page cache as with nodirect, and the log says so (a
 * warning if direct was asked for).
 */
static void
open_direct (struct device *dev, bool asked)
{
  char path[64];
  const char *why;
  int fd, err;
  void *buf = NULL;
  ssize_t r = 0;

  snprintf (path, sizeof path, "/proc/self/fd/%d", dev->fd);
  fd = open (path, (dev->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_DIRECT
             | (dev->sync ? O_SYNC : 0));
  dev->direct_align = DEVICE_DIRECT_ALIGN;
  if (fd >= 0 && dev->info.host_size >= DEVICE_DIRECT_ALIGN) {
    if (posix_memalign (&buf, DEVICE_DIRECT_ALIGN, DEVICE_DIRECT_ALIGN) != 0)
      buf = NULL;
    if (buf && pread (fd, buf, 512, 512) == 512)
      dev->direct_align = 512;
    else
      r = buf ? pread (fd, buf, DEVICE_DIRECT_ALIGN, 0) : -1;
    free (buf);
  }
  if (fd == -1 || r == -1) {
    err = errno;
    if (fd >= 0)
      close (fd);
    errno = err;
    why = err == EINVAL ? "the file system does not support O_DIRECT"
      : "cannot use O_DIRECT";
    if (asked)
      log_warning ("%s: %s: direct: %s: %m; host I/O goes through the page "
                   "cache", dev->name, dev->path, why);
    else
      log_info ("%s: %s: %s: %m; host I/O goes through the page cache",
                dev->name, dev->path, why);
    return;
  }
  dev->direct_fd = fd;
}

int
device_direct_fd (const struct device *dev, const struct iovec *iov,
                  int iovcnt, uint64_t offset)
{
  const uintptr_t mask = dev->direct_align - 1;

  if (dev->direct_fd < 0 || (offset & mask) != 0)
    return dev->fd;
  for (int i = 0; i < iovcnt; i++)
    if (((uintptr_t) iov[i].iov_base & mask) != 0
        || (iov[i].iov_len & mask) != 0)
      return dev->fd;
  return dev->direct_fd;
}

bool
device_is_direct (const struct device *dev)
{
  return dev->direct_fd >= 0;
}

struct device *
device_open (const struct export_config *ec)
{
  struct device *dev;
  struct stat st, fst;
  int flags, saved_errno, err;
  bool excl;

  if (stat_target (ec, &st) == -1)
    return NULL;

  dev = calloc (1, sizeof *dev);
  if (dev == NULL) {
    log_error ("%s: %s: calloc: %m", label (ec), ec->path);
    return NULL;
  }
  dev->fd = dev->direct_fd = -1;
  err = pthread_mutex_init (&dev->seek_lock, NULL);
  if (err == 0) {
    err = pthread_mutex_init (&dev->state_lock, NULL);
    if (err != 0)
      pthread_mutex_destroy (&dev->seek_lock);
  }
  if (err != 0) {
    errno = err;
    log_error ("%s: %s: initialising a lock: %m", label (ec), ec->path);
    free (dev);
    return NULL;
  }
  dev->name = strdup (label (ec));
  dev->path = strdup (ec->path);
  if (dev->name == NULL || dev->path == NULL) {
    log_error ("%s: %s: strdup: %m", label (ec), ec->path);
    goto err;
  }
  dev->readonly = ec->access == ACCESS_RO;
  dev->sync = ec->sync == SYNC_SYNC;

  /* O_NONBLOCK only guards the open itself against a fifo swapped in
   * after the stat; it is cleared below.  O_EXCL on a block device
   * fails if it is mounted or opened O_EXCL elsewhere.
   */
  excl = S_ISBLK (st.st_mode) && (ec->deny == DENY_WR || ec->deny == DENY_RW);
  flags = (dev->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;
  if (dev->sync)
    flags |= O_SYNC;
  if (excl)
    flags |= O_EXCL;
  dev->fd = open (ec->path, flags);
  if (dev->fd == -1) {
    log_open_error (ec, excl);
    goto err;
  }
  if (fstat (dev->fd, &fst) == -1) {
    log_error ("%s: %s: fstat: %m", dev->name, dev->path);
    goto err;
  }
  if (check_type (dev->name, dev->path, &fst) == -1)
    goto err;
  if ((fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
    errno = EAGAIN;
    log_error ("%s: %s: cannot open: the file was replaced while "
               "opening it", dev->name, dev->path);
    goto err;
  }
  flags = fcntl (dev->fd, F_GETFL);
  if (flags == -1 || fcntl (dev->fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
    log_error ("%s: %s: fcntl F_SETFL: %m", dev->name, dev->path);
    goto err;
  }

  /* Lock before probing, so the size we record is one nobody who
   * respects the locks may change while we hold them.
   */
  if (lock_acquire (dev->fd, dev->name, dev->path, ec->access, ec->deny) == -1)
    goto err;
  if (probe_fd (ec, dev->fd, &fst, &dev->info) == -1)
    goto err;

  if (ec->direct == DIRECT_ON
      || (ec->direct == DIRECT_AUTO && !page_cache_is_the_file (dev->fd)))
    open_direct (dev, ec->direct == DIRECT_ON);

  dev->st_dev = fst.st_dev;
  dev->st_ino = fst.st_ino;
  dev->host_size = dev->info.host_size;
  dev->mtime = fst.st_mtim;
  dev->writes_done_seen = 0;
  __atomic_store_n (&dev->dense, fully_allocated (&fst), __ATOMIC_RELAXED);

  log_debug ("%s: %s: opened %s%s%s, size %" PRIu64 ", blksz %" PRIu32
             " (probed %" PRIu32 ", preferred %" PRIu32 "), %s I/O",
             dev->name, dev->path, dev->readonly ? "ro" : "rw",
             dev->sync ? " sync" : "",
             dev->direct_fd < 0 ? "" : dev->direct_align == 512
             ? " direct (512-byte aligned)" : " direct (4096-byte aligned)",
             dev->info.size, dev->info.blksz,
             dev->info.probed_blksz, dev->info.preferred_blksz,
             dev->info.positional ? "positional" : "seek");
  return dev;

 err:
  saved_errno = errno;
  free_device (dev);
  errno = saved_errno;
  return NULL;
}

void
device_close (struct device *dev)
{
  if (dev == NULL)
    return;
  lock_release (dev->fd);
  free_device (dev);
}

const struct device_info *
device_get_info (const struct device *dev)
{
  return &dev->info;
}

const char *
device_path (const struct device *dev)
{
  return dev->path;
}

const char *
device_name (const struct device *dev)
{
  return dev->name;
}

int
device_fd (const struct device *dev)
{
  return dev->fd;
}

bool
device_is_dense (const struct device *dev)
{
  return dev->info.is_block_device
    || __atomic_load_n (&dev->dense, __ATOMIC_RELAXED);
}

void
device_outside_write_begin (struct device *dev)
{
  device_write_begin (dev);
}

void
device_outside_write_end (struct device *dev)
{
  device_write_end (dev);
}

bool
device_is_readonly (const struct device *dev)
{
  return dev->readonly;
}

/* The rule for our own writes: every write, zero and trim is counted
 * in writes_inflight while it runs and in writes_done when it ends.
 * An mtime change is ours, and not reported, if a write was in flight
 * when we looked or one finished since the previous look began.  So a
 * change by another process that coincides with one of our writes is
 * missed; its size or inode changes are still seen.  A size change or
 * another inode at the path is always reported.
 */
int
device_revalidate (struct device *dev)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&dev->state_lock);
  struct stat pst, fst;
  uint64_t size;
  uint64_t done_before, done_after, inflight;
  bool ours;
  int changed = 0;

  if (stat (dev->path, &pst) == -1) {
    if (errno != ENOENT) {
      log_error ("%s: %s: stat: %m", dev->name, dev->path);
      return -1;
    }
    /* st_ino 0 records "the path was gone", so it is reported once. */
    if (dev->st_ino != 0) {
      log_warning ("%s: %s: changed behind our back: the path was "
                   "removed", dev->name, dev->path);
      dev->st_ino = 0;
      dev->st_dev = 0;
      changed = 1;
    }
  }
  else if (pst.st_dev != dev->st_dev || pst.st_ino != dev->st_ino) {
    log_warning ("%s: %s: changed behind our back: the path now names "
                 "another file (the open one is still used)",
                 dev->name, dev->path);
    dev->st_dev = pst.st_dev;
    dev->st_ino = pst.st_ino;
    changed = 1;
  }

  done_before = __atomic_load_n (&dev->writes_done, __ATOMIC_SEQ_CST);
  if (fstat (dev->fd, &fst) == -1) {
    log_error ("%s: %s: fstat: %m", dev->name, dev->path);
    return -1;
  }
  if (device_host_size (dev->name, dev->path, dev->fd, &fst, &size) == -1)
    return -1;
  /* In this order: a write not counted in done_after was still in
   * flight when inflight was read.
   */
  inflight = __atomic_load_n (&dev->writes_inflight, __ATOMIC_SEQ_CST);
  done_after = __atomic_load_n (&dev->writes_done, __ATOMIC_SEQ_CST);
  ours = inflight > 0 || done_after != dev->writes_done_seen;

  if (size != dev->host_size) {
    log_warning ("%s: %s: changed behind our back: size %" PRIu64
                 " is now %" PRIu64, dev->name, dev->path,
                 dev->host_size, size);
    changed = 1;
  }
  else if ((fst.st_mtim.tv_sec != dev->mtime.tv_sec ||
            fst.st_mtim.tv_nsec != dev->mtime.tv_nsec) && !ours) {
    log_warning ("%s: %s: changed behind our back: modified by another "
                 "process", dev->name, dev->path);
    changed = 1;
  }
  dev->host_size = size;
  dev->mtime = fst.st_mtim;
  dev->writes_done_seen = done_before;
  if (!fully_allocated (&fst))
    __atomic_store_n (&dev->dense, false, __ATOMIC_RELAXED);
  return changed;
}
