/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: deny modes as QEMU-compatible share locks.
 *
 * Linux has no share modes, so devb-loopback's denyrd/denywr/denyrw
 * are built on the protocol QEMU uses to lock images, which makes
 * them visible to qemu, qemu-img, qemu-io, qemu-nbd,
 * qemu-storage-daemon and other nbd-loopback processes alike.  Each
 * party takes shared open-file-description locks on single bytes:
 * byte 100+i says "I hold permission i", byte 200+i says "I do not
 * share permission i".  A party that holds permission i must find no
 * one else locking 200+i, and one that does not share i must find no
 * one else locking 100+i.  Locks are taken first and checked after,
 * so two parties starting together cannot both miss each other.
 *
 * Which bytes each mode takes and checks is the table of SPEC.md §5.
 * Processes that take no locks (cat, dd) are not stopped.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

/* QEMU's permission numbers (BLK_PERM_* bit positions). */
enum perm {
  PERM_CONSISTENT_READ = 0,
  PERM_WRITE = 1,
  PERM_RESIZE = 3,
};
#define PERM_BIT(i) (1u << (i))
#define LOCK_HOLD_BASE 100
#define LOCK_UNSHARE_BASE 200
#define LOCK_LAST_BYTE 299

static const enum perm perms[] = {
  PERM_CONSISTENT_READ, PERM_WRITE, PERM_RESIZE,
};

/* QEMU's names, so messages match what qemu users read. */
static const char *
perm_name (enum perm i)
{
  switch (i) {
  case PERM_CONSISTENT_READ: return "consistent read";
  case PERM_WRITE: return "write";
  case PERM_RESIZE: return "resize";
  }
  return "?";
}

struct lock_set {
  unsigned hold;                /* bytes 100+i we lock */
  unsigned unshare;             /* bytes 200+i we lock */
  unsigned check_hold;          /* i: 200+i locked by others refuses us */
  unsigned check_unshare;       /* i: 100+i locked by others refuses us */
};

/* SPEC §5, row by row; access and deny rows combine as a union. */
static struct lock_set
lock_set_of (enum access_mode access, enum deny_mode deny)
{
  struct lock_set s = { 0 };

  s.hold = PERM_BIT (PERM_CONSISTENT_READ);
  if (access == ACCESS_RW) {
    s.hold |= PERM_BIT (PERM_WRITE);
    /* The size is fixed while exported.  The table does not make rw
     * check byte 103: a resizer is stopped only by denywr/denyrw.
     */
    s.unshare |= PERM_BIT (PERM_RESIZE);
  }
  s.check_hold = s.hold;

  switch (deny) {
  case DENY_NO:
    break;
  case DENY_RD:
    s.check_unshare = PERM_BIT (PERM_CONSISTENT_READ);
    break;
  case DENY_WR:
    s.check_unshare = PERM_BIT (PERM_WRITE) | PERM_BIT (PERM_RESIZE);
    break;
  case DENY_RW:
    s.check_unshare = PERM_BIT (PERM_CONSISTENT_READ) |
      PERM_BIT (PERM_WRITE) | PERM_BIT (PERM_RESIZE);
    break;
  }
  s.unshare |= s.check_unshare;
  return s;
}

static int
set_lock (int fd, short type, off_t start, off_t len)
{
  struct flock fl = {
    .l_type = type,
    .l_whence = SEEK_SET,
    .l_start = start,
    .l_len = len,
  };

  return fcntl (fd, F_OFD_SETLK, &fl);
}

/* Does another open file description lock this byte?  Our own OFD
 * locks never conflict with a test made through the same fd.
 * Returns 1, 0, or -1 with errno set.
 */
static int
byte_locked_by_others (int fd, off_t byte)
{
  struct flock fl = {
    .l_type = F_WRLCK,
    .l_whence = SEEK_SET,
    .l_start = byte,
    .l_len = 1,
  };

  if (fcntl (fd, F_OFD_GETLK, &fl) == -1)
    return -1;
  return fl.l_type != F_UNLCK;
}

void
lock_release (int fd)
{
  int saved_errno = errno;

  if (fd >= 0)
    set_lock (fd, F_UNLCK, LOCK_HOLD_BASE,
              LOCK_LAST_BYTE - LOCK_HOLD_BASE + 1);
  errno = saved_errno;
}

static int
take (int fd, const char *name, const char *path, unsigned bits, int base)
{
  size_t k;

  for (k = 0; k < sizeof perms / sizeof perms[0]; ++k) {
    enum perm i = perms[k];

    if (!(bits & PERM_BIT (i)))
      continue;
    if (set_lock (fd, F_RDLCK, base + i, 1) == -1) {
      if (errno == EAGAIN || errno == EACCES) {
        /* Someone holds a write lock there: not QEMU's protocol. */
        log_error ("%s: %s: cannot open: another process holds a write "
                   "lock on byte %d, which QEMU-compatible image locking "
                   "uses: %m", name, path, base + i);
        errno = EBUSY;
      }
      else
        log_error ("%s: %s: cannot lock byte %d (image locking): %m",
                   name, path, base + i);
      return -1;
    }
  }
  return 0;
}

/* Look for the first conflict.  Returns 0 if none, -1 (logged) if
 * there is one or the check failed.
 */
static int
check (int fd, const char *name, const char *path, const struct lock_set *s)
{
  size_t k;
  int r;

  for (k = 0; k < sizeof perms / sizeof perms[0]; ++k) {
    enum perm i = perms[k];

    if (s->check_hold & PERM_BIT (i)) {
      r = byte_locked_by_others (fd, LOCK_UNSHARE_BASE + i);
      if (r == -1)
        goto test_failed;
      if (r == 1) {
        errno = EBUSY;
        log_error ("%s: %s: cannot open: another process does not share "
                   "the \"%s\" permission (e.g. qemu, or an nbd-loopback "
                   "with %s); %s",
                   name, path, perm_name (i),
                   i == PERM_WRITE ? "denywr or denyrw" : "denyrd or denyrw",
                   i == PERM_WRITE
                   ? "export it ro, or stop that process"
                   : "stop that process or make it share reading");
        return -1;
      }
    }
    if (s->check_unshare & PERM_BIT (i)) {
      r = byte_locked_by_others (fd, LOCK_HOLD_BASE + i);
      if (r == -1)
        goto test_failed;
      if (r == 1) {
        errno = EBUSY;
        log_error ("%s: %s: cannot open: another process holds the \"%s\" "
                   "permission (it is in use, e.g. by qemu or another "
                   "nbd-loopback; choose %s to share it)",
                   name, path, perm_name (i),
                   i == PERM_CONSISTENT_READ
                   ? "denyno or denywr" : "denyno or denyrd");
        return -1;
      }
    }
  }
  return 0;

 test_failed:
  log_error ("%s: %s: cannot test image lock: %m", name, path);
  return -1;
}

int
lock_acquire (int fd, const char *name, const char *path,
              enum access_mode access, enum deny_mode deny)
{
  struct lock_set s = lock_set_of (access, deny);

  if (take (fd, name, path, s.hold, LOCK_HOLD_BASE) == -1 ||
      take (fd, name, path, s.unshare, LOCK_UNSHARE_BASE) == -1 ||
      check (fd, name, path, &s) == -1) {
    lock_release (fd);
    return -1;
  }
  return 0;
}
