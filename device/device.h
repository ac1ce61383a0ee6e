/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: one fd= target.
 *
 * A device is a host file or block device opened with the access,
 * sync and deny modes of its export_config, with QEMU-compatible share
 * locks held for as long as it is open.  It knows nothing of NBD or of
 * the cache: it moves bytes at byte offsets, makes them durable,
 * punches and zeroes ranges and reports host extents.
 *
 * Error convention: functions return -1 (or NULL) with errno set, and
 * log once, naming the path, where the failure happened.
 *
 * Thread safety: every function may be called from any thread at any
 * time between device_open and device_close.  With seek I/O
 * (lseek + read/write) the device serializes transfers under its own
 * lock; with xtype (positional) I/O nothing is serialized.
 */
#ifndef NBDL_DEVICE_H
#define NBDL_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "configuration.h"

struct device;

/* What probing found.  Filled by device_probe and device_open. */
struct device_info {
  uint64_t host_size;           /* size of the host file or device */
  uint64_t size;                /* export size: host_size rounded down to blksz */
  uint32_t probed_blksz;        /* blksz= unset: sector size, or 512 for a file */
  uint32_t blksz;               /* in force: blksz= if given, else probed */
  uint32_t preferred_blksz;     /* efficiency hint (st_blksize), >= blksz */
  bool is_block_device;
  bool positional;              /* true: xtype (pread/pwrite); false: seek */
};

/* Inspect the target without locking it or opening it for writing:
 * existence, type, size and block size.  Used by --dump-config and by
 * device_open.  Logs and returns -1 on any of the errors device_open
 * would report for the file itself (missing, directory, empty,
 * permission denied, blksz outside bufsz=).  A size that is not a
 * multiple of blksz is a warning (logged here and by device_open),
 * not an error.  blksz_max == 0 means no upper bound.
 *
 * errno: ENOENT, EACCES/EPERM/EROFS (the message says to export it ro
 * where that would help), EISDIR for a directory, EINVAL for other
 * non-exportable types (character devices, fifos, sockets: only
 * regular files and block devices are supported), for a target
 * smaller than one block (regular files get the hint "pregrow it,
 * e.g. truncate -s 1G PATH") and for blksz outside bufsz=.
 */
extern int device_probe (const struct export_config *ec,
                         struct device_info *info);

/* Refuse a file named by two fd= (by path, link or another name):
 * two exports would cache it twice, and their locks would conflict as
 * if another process held them.  Returns -1 with errno EBUSY and a
 * message naming both exports; files that cannot be looked at are left
 * to device_open to report.
 */
extern int device_check_distinct (const struct export_config *ec, size_t n);

/* Open, lock and probe.  Returns NULL with errno set (and a message
 * logged naming the path and, for lock conflicts, the permission the
 * other process holds).  Besides device_probe's errors: EBUSY for a
 * share-lock conflict (lock.c has the protocol) or, for a block device
 * opened O_EXCL under denywr/denyrw, when it is mounted or opened
 * exclusively elsewhere.
 */
extern struct device *device_open (const struct export_config *ec);

/* Release the locks and close.  Does not flush: callers flush first. */
extern void device_close (struct device *dev);

extern const struct device_info *device_get_info (const struct device *dev);
extern const char *device_path (const struct device *dev);
extern const char *device_name (const struct device *dev);   /* "lo0" */
/* The host file descriptor, for a front end issuing its own reads of
 * it (io_uring), positional devices only.
 */
extern int device_fd (const struct device *dev);
/* With the direct option, host I/O bypasses the page cache where the
 * transfer allows it: every buffer and length, and the offset,
 * multiples of what the file system asks for (512 bytes, or at most
 * DEVICE_DIRECT_ALIGN).  device_direct_fd returns the
 * descriptor for such a transfer (the O_DIRECT one when it qualifies,
 * else device_fd); device_is_direct says whether the option is in
 * force (false where the file system refused O_DIRECT).
 */
#define DEVICE_DIRECT_ALIGN 4096
struct iovec;
extern int device_direct_fd (const struct device *dev,
                             const struct iovec *iov, int iovcnt,
                             uint64_t offset);
extern bool device_is_direct (const struct device *dev);
/* No holes to report right now (a block device, or a file fully
 * allocated when last looked at, with none punched since): every
 * extent is data.
 */
extern bool device_is_dense (const struct device *dev);

/* Around writes to device_fd made outside this layer (io_uring), so
 * that device_revalidate takes the mtime change for ours, as it does
 * for the layer's own writes.
 */
extern void device_outside_write_begin (struct device *dev);
extern void device_outside_write_end (struct device *dev);
extern bool device_is_readonly (const struct device *dev);
/* Opened O_SYNC: completed writes are already durable. */
extern bool device_is_o_sync (const struct device *dev);
/* Zeroing is done by the host without writing zeroes (so far). */
extern bool device_can_zero_fast (const struct device *dev);

/* Transfer exactly count bytes, retrying short transfers and EINTR.
 * Reading past the end of the host fails with EIO; writing to a
 * read-only device fails with EPERM.  Ranges beyond the export size
 * are refused: EIO for reads, ENOSPC for writes, zero and trim,
 * EINVAL for extents.
 */
extern int device_pread (struct device *dev, void *buf, size_t count,
                         uint64_t offset);
extern int device_pwrite (struct device *dev, const void *buf, size_t count,
                          uint64_t offset);

/* device_pread into several buffers (at most DEVICE_IOV_MAX): one host
 * transfer for a run of cache blocks, with no bounce buffer.
 */
#define DEVICE_IOV_MAX 1024
struct iovec;
extern int device_preadv (struct device *dev, const struct iovec *iov,
                          int iovcnt, uint64_t offset);

/* Make every completed write durable: fdatasync, or nothing when the
 * device was opened O_SYNC (where zero and trim sync by themselves)
 * or read-only.
 */
extern int device_flush (struct device *dev);

/* Deallocate a range (reads return zeroes afterwards where the host
 * supports punching; where it does not, the range is left unchanged
 * and 0 is returned, since trim is advisory).
 */
extern int device_trim (struct device *dev, uint64_t offset, uint64_t count);

/* Make a range read as zeroes.  may_trim allows punching holes;
 * otherwise blocks stay allocated (NBD_CMD_FLAG_NO_HOLE).  Falls back
 * to writing zeroes when the host has no faster way.
 */
extern int device_zero (struct device *dev, uint64_t offset, uint64_t count,
                        bool may_trim);

/* Report the extents of [offset, offset+count) in order through fn,
 * contiguous and covering the whole range (the last may extend past
 * it, never past the export size).  Hosts without SEEK_DATA/SEEK_HOLE
 * report everything as data.  fn returns 0 to continue, -1 to stop
 * with that error.
 */
typedef int (*device_extent_fn) (void *opaque, uint64_t offset,
                                 uint64_t length, bool hole);
extern int device_extents (struct device *dev, uint64_t offset,
                           uint64_t count, device_extent_fn fn,
                           void *opaque);

/* Has the host file changed behind our back since the device was
 * opened or last revalidated (another inode at the path, the path
 * removed, another size, another mtime not caused by our own writes)?
 * Returns 1 if so (and records the new state, logging a warning that
 * says what changed), 0 if not, -1 on error.  An mtime change counts
 * as ours when one of our writes, zeroes or trims was in flight or
 * finished since the previous look: a change by another process that
 * coincides with ours is missed, unless it also changed the size or
 * inode.  device_get_info keeps describing the file as opened.
 */
extern int device_revalidate (struct device *dev);

#endif /* NBDL_DEVICE_H */
