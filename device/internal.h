/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: declarations private to device/.
 *
 * struct device is shared by the files of this directory and by
 * nobody else: the rest of the program holds an opaque pointer.  Each
 * section below belongs to the file named in its heading.
 */
#ifndef NBDL_DEVICE_INTERNAL_H
#define NBDL_DEVICE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "device.h"

/* ---- device.c: open, probe, revalidate, close ---- */

struct device {
  char *name;                   /* "lo0"; never NULL */
  char *path;                   /* fd=PATH as typed */
  int fd;
  int direct_fd;                /* direct: the same file opened O_DIRECT, or -1 */
  uint32_t direct_align;        /* what its transfers must be multiples of */
  bool readonly;                /* opened O_RDONLY: writes fail with EPERM */
  bool sync;                    /* opened O_SYNC: flush is a no-op */
  struct device_info info;      /* immutable after device_open */

  /* seek_lock serializes every use of the file offset of fd in seek
   * mode: each lseek + read/write pair and the SEEK_DATA/SEEK_HOLE
   * walk of device_extents.  Unused (never taken) in xtype mode.
   */
  pthread_mutex_t seek_lock;

  /* Our own writes, for device_revalidate (see the rule there).
   * writes_inflight counts transfers, zeroes and trims under way;
   * writes_done counts those finished.  Lock-free: __atomic builtins,
   * sequentially consistent (that rule depends on the order of the
   * counts).
   */
  uint64_t writes_inflight;
  uint64_t writes_done;

  /* Set once the host refused to zero a range itself and zeroes had to
   * be written: from then on zeroing is not "fast" (caps.c).  Atomic,
   * relaxed: a hint that publishes nothing else, and a stale "fast"
   * only costs one more refused fallocate.
   */
  bool zero_is_slow;

  /* The host file had no holes when last looked at (open, revalidate:
   * all of its size allocated) and we punched none since: extents are
   * all data, with no lseek (SEEK_HOLE walks the page cache of tmpfs
   * to the next hole: the whole file, on every read).  Cleared before
   * every hole we punch.  Another process punching one is seen at the
   * next revalidation; until then its hole reads as data, which is
   * always a correct answer.  Atomic, relaxed: it publishes nothing
   * else, it only ever goes from true to false after open, and a stale
   * true gives that same correct answer; a request made after a punch
   * was answered comes through the locks of the queue, which order it.
   */
  bool dense;

  /* state_lock guards the host state recorded at open or at the last
   * device_revalidate: the fields below.
   */
  pthread_mutex_t state_lock;
  dev_t st_dev;
  ino_t st_ino;
  uint64_t host_size;
  struct timespec mtime;
  uint64_t writes_done_seen;     /* writes_done before that fstat */
};

/* Around every operation that may change the host file's mtime. */
static inline void
device_write_begin (struct device *dev)
{
  __atomic_fetch_add (&dev->writes_inflight, 1, __ATOMIC_SEQ_CST);
}

static inline void
device_write_end (struct device *dev)
{
  __atomic_fetch_add (&dev->writes_done, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_sub (&dev->writes_inflight, 1, __ATOMIC_SEQ_CST);
}

/* Size of a regular file or block device open on fd (st from fstat).
 * Logs on failure.
 */
extern int device_host_size (const char *name, const char *path, int fd,
                             const struct stat *st, uint64_t *size);

/* ---- lock.c: QEMU-compatible share locks ---- */

/* Take the locks of an access and deny mode on fd, then check that no
 * other open file description conflicts.  On conflict, logs which
 * permission the other process holds or refuses to share, releases
 * what it took and fails with EBUSY.
 */
extern int lock_acquire (int fd, const char *name, const char *path,
                         enum access_mode access, enum deny_mode deny);

/* Release every lock byte this module may have taken on fd. */
extern void lock_release (int fd);

#endif /* NBDL_DEVICE_INTERNAL_H */
