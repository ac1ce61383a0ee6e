/* SPDX-License-Identifier: BSD-3-Clause */
/* faultinject: an LD_PRELOAD shim that makes host I/O fail, for tests.
 *
 * Test-only code: built as a check_LTLIBRARIES module, never
 * installed, never linked into the product.  Preloaded into
 * nbd-loopback or nbdkit, it wraps the calls the device layer uses on
 * the host file (pread/pwrite and their 64-bit, vectored and
 * read/write forms, fdatasync/fsync, fallocate) and, for the one file
 * named by FAULTINJECT_FILE (matched by device and inode, so paths and
 * symlinks do not matter), fails them on a schedule read from a
 * control file.  Every other fd passes straight through.
 *
 * Environment:
 *   FAULTINJECT_FILE     the host file whose I/O may fail
 *   FAULTINJECT_CONTROL  the control file: rules, one per line; read
 *                        again whenever it changes (replace it with
 *                        mv, or rewrite it), and each change restarts
 *                        the counters.  Missing or empty: no faults.
 *   FAULTINJECT_LOG      if set, one line is appended per injected
 *                        fault: "CALL ACTION offset=N count=N"
 *   FAULTINJECT_JOURNAL  if set, a journal of what reached the file, for
 *                        power-cut checks: every completed write (its
 *                        offset and data), fallocate, and completed
 *                        fdatasync/fsync (a write through an O_SYNC or
 *                        O_DSYNC fd counts as synced at once), appended
 *                        in order as binary records (struct jrec, then
 *                        the data).  What a power cut would keep is the
 *                        writes followed by a sync (stress-client
 *                        --journal rebuilds that image).
 *
 * A rule:   KINDS ACTION [after=N] [count=N] [from=OFFSET] [to=OFFSET]
 *           [ms=N]
 *   KINDS   comma-separated: read, write, sync (fdatasync, fsync),
 *           fallocate, or all; positional matches only the positional
 *           transfers (pread, pwrite and their forms), as ESPIPE does
 *           on a file without positional I/O
 *   ACTION  EIO, ENOSPC, EDQUOT, EROFS, ESPIPE (the call fails with
 *           that errno), short
 *           (a read or write moves half the bytes, at least one;
 *           for sync and fallocate, short means EIO), or slow (the
 *           call succeeds, 2 ms late, or ms=N late: a slow disk)
 *   after=N let the first N matching calls through (default 0)
 *   count=N then inject N faults and stop (default: no end)
 *   from/to only calls touching [from, to) match (transfers and
 *           fallocate; sync always matches)
 *   ms=N    how late a slow call is (default 2)
 * The first rule that matches a call decides it.  '#' starts a
 * comment.
 */
#include <config.h>

#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 16

enum kind { K_READ = 1, K_WRITE = 2, K_SYNC = 4, K_FALLOCATE = 8,
            K_POSITIONAL = 16 };

struct rule {
  unsigned kinds;
  int action;                   /* an errno, 0 for short, ACTION_SLOW */
  uint64_t after, count;        /* count 0: no end */
  uint64_t from, to;            /* to 0: no end */
  uint64_t seen, injected;
  uint64_t ms;                  /* ACTION_SLOW: the delay */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[MAX_RULES];
static size_t nr_rules;
static struct stat control_st;  /* of the control file last read */
static bool control_read;
static bool have_target;
static dev_t target_dev;
static ino_t target_ino;

/* The journal's records (host byte order). */
struct jrec {
  uint32_t magic;               /* JREC_MAGIC */
  uint32_t type;                /* 'W' write, 'S' sync, 'F' fallocate */
  uint64_t offset, count;       /* W: count bytes of data follow */
  uint64_t mode;                /* F: the fallocate mode */
};
#define JREC_MAGIC 0x4a524543   /* "JREC" */

/* ---- the real functions ---- */

#define REAL(name, ret, ...)                                            \
  static ret (*real_##name) (__VA_ARGS__);                              \
  static void init_##name (void)                                        \
  {                                                                     \
    if (real_##name == NULL)                                            \
      real_##name = (ret (*) (__VA_ARGS__)) dlsym (RTLD_NEXT, #name);   \
  }

REAL (pread, ssize_t, int, void *, size_t, off_t)
REAL (pread64, ssize_t, int, void *, size_t, off64_t)
REAL (pwrite, ssize_t, int, const void *, size_t, off_t)
REAL (pwrite64, ssize_t, int, const void *, size_t, off64_t)
REAL (preadv, ssize_t, int, const struct iovec *, int, off_t)
REAL (preadv64, ssize_t, int, const struct iovec *, int, off64_t)
REAL (pwritev, ssize_t, int, const struct iovec *, int, off_t)
REAL (pwritev64, ssize_t, int, const struct iovec *, int, off64_t)
REAL (read, ssize_t, int, void *, size_t)
REAL (write, ssize_t, int, const void *, size_t)
REAL (fdatasync, int, int)
REAL (fsync, int, int)
REAL (fallocate, int, int, int, off_t, off_t)
REAL (fallocate64, int, int, int, off64_t, off64_t)
REAL (lseek, off_t, int, off_t, int)

/* ---- the control file ---- */

#define ACTION_SLOW (-2)

static int
errno_value (const char *s)
{
  if (strcmp (s, "slow") == 0) return ACTION_SLOW;
  if (strcmp (s, "EIO") == 0) return EIO;
  if (strcmp (s, "ENOSPC") == 0) return ENOSPC;
  if (strcmp (s, "EDQUOT") == 0) return EDQUOT;
  if (strcmp (s, "EROFS") == 0) return EROFS;
  if (strcmp (s, "ESPIPE") == 0) return ESPIPE;
  if (strcmp (s, "short") == 0) return 0;
  return -1;
}

static unsigned
kinds_value (char *s)
{
  unsigned k = 0;
  char *save = NULL;

  for (char *w = strtok_r (s, ",", &save); w; w = strtok_r (NULL, ",", &save)) {
    if (strcmp (w, "read") == 0) k |= K_READ;
    else if (strcmp (w, "write") == 0) k |= K_WRITE;
    else if (strcmp (w, "sync") == 0) k |= K_SYNC;
    else if (strcmp (w, "fallocate") == 0) k |= K_FALLOCATE;
    else if (strcmp (w, "positional") == 0) k |= K_POSITIONAL;
    else if (strcmp (w, "all") == 0) k |= K_READ | K_WRITE | K_SYNC | K_FALLOCATE;
    else return 0;
  }
  return k;
}

static void
complain (const char *line)
{
  static const char msg[] = "faultinject: ignoring a bad rule: ";
  init_write ();
  real_write (2, msg, sizeof msg - 1);
  real_write (2, line, strlen (line));
  real_write (2, "\n", 1);
}

static void
parse_rule (char *line)
{
  char copy[256], *save = NULL, *w;
  struct rule r = { .ms = 2 };
  int i = 0;

  snprintf (copy, sizeof copy, "%s", line);
  if ((w = strchr (line, '#')) != NULL)
    *w = '\0';
  for (w = strtok_r (line, " \t\r", &save); w;
       w = strtok_r (NULL, " \t\r", &save), i++) {
    if (i == 0) {
      if ((r.kinds = kinds_value (w)) == 0)
        goto bad;
    }
    else if (i == 1) {
      if ((r.action = errno_value (w)) == -1)
        goto bad;
    }
    else if (strncmp (w, "after=", 6) == 0)
      r.after = strtoull (w + 6, NULL, 0);
    else if (strncmp (w, "count=", 6) == 0)
      r.count = strtoull (w + 6, NULL, 0);
    else if (strncmp (w, "from=", 5) == 0)
      r.from = strtoull (w + 5, NULL, 0);
    else if (strncmp (w, "to=", 3) == 0)
      r.to = strtoull (w + 3, NULL, 0);
    else if (strncmp (w, "ms=", 3) == 0)
      r.ms = strtoull (w + 3, NULL, 0);
    else
      goto bad;
  }
  if (i == 0)
    return;                     /* blank or comment */
  if (i < 2)
    goto bad;
  if (nr_rules < MAX_RULES)
    rules[nr_rules++] = r;
  return;
 bad:
  complain (copy);
}

/* Read the control file again if it changed (lock held). */
static void
reload_locked (void)
{
  const char *path = getenv ("FAULTINJECT_CONTROL");
  const char *target = getenv ("FAULTINJECT_FILE");
  struct stat st;
  char buf[4096], *line, *save = NULL;
  ssize_t n;
  int fd;

  if (!have_target && target && stat (target, &st) == 0) {
    target_dev = st.st_dev;
    target_ino = st.st_ino;
    have_target = true;
  }
  if (path == NULL || stat (path, &st) == -1) {
    nr_rules = 0;
    control_read = false;
    return;
  }
  if (control_read && st.st_ino == control_st.st_ino
      && st.st_size == control_st.st_size
      && st.st_mtim.tv_sec == control_st.st_mtim.tv_sec
      && st.st_mtim.tv_nsec == control_st.st_mtim.tv_nsec)
    return;
  control_st = st;
  control_read = true;
  nr_rules = 0;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return;
  init_read ();
  n = real_read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  for (line = strtok_r (buf, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save))
    parse_rule (line);
}

static void
log_fault (const char *call, int action, uint64_t offset, uint64_t count)
{
  const char *path = getenv ("FAULTINJECT_LOG");
  char line[160];
  int fd, n;

  if (path == NULL)
    return;
  n = snprintf (line, sizeof line, "%s %s offset=%" PRIu64 " count=%"
                PRIu64 "\n", call, action == 0 ? "short"
                : action == EIO ? "EIO" : action == ENOSPC ? "ENOSPC"
                : action == ESPIPE ? "ESPIPE" : "error", offset, count);
  fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1)
    return;
  init_write ();
  if (real_write (fd, line, n) != n) {
    /* nothing better to do in a test shim */
  }
  close (fd);
}

/* Is fd the target file? */
static bool
is_target (int fd)
{
  struct stat st;

  if (!have_target) {
    pthread_mutex_lock (&lock);
    reload_locked ();
    pthread_mutex_unlock (&lock);
    if (!have_target)
      return false;
  }
  return fstat (fd, &st) == 0 && S_ISREG (st.st_mode)
    && st.st_dev == target_dev && st.st_ino == target_ino;
}

/* What to do with this call: -1 nothing, 0 short, else an errno. */
static int
decide (int fd, unsigned kind, const char *call, uint64_t offset,
        uint64_t count)
{
  int action = -1, saved = errno;
  uint64_t ms = 0;

  if (!is_target (fd)) {
    errno = saved;
    return -1;
  }
  pthread_mutex_lock (&lock);
  reload_locked ();
  for (size_t i = 0; i < nr_rules; i++) {
    struct rule *r = &rules[i];

    if (!(r->kinds & kind))
      continue;
    /* A transfer of 0 bytes (a probe) touches its offset. */
    if (kind != K_SYNC
        && (offset + (count ? count : 1) <= r->from
            || (r->to && offset >= r->to)))
      continue;
    if (r->seen++ < r->after)
      break;                    /* this rule lets it through */
    if (r->count && r->injected >= r->count)
      continue;
    r->injected++;
    action = r->action;
    ms = r->ms;
    if (action == 0 && (kind == K_SYNC || kind == K_FALLOCATE))
      action = EIO;
    break;
  }
  pthread_mutex_unlock (&lock);
  if (action == ACTION_SLOW) {
    struct timespec ts = { .tv_sec = ms / 1000,
                           .tv_nsec = (ms % 1000) * 1000000 };
    nanosleep (&ts, NULL);
    action = -1;                /* then the call goes through */
  }
  if (action != -1)
    log_fault (call, action, offset, count);
  errno = saved;
  return action;
}

/* The length of a short transfer: half of count.  On an O_DIRECT
 * descriptor a short transfer is still a whole number of sectors (as
 * at the end of a file), so it is rounded down to 512 bytes; a single
 * sector is not shortened.
 */
static size_t
half (int fd, size_t count)
{
  int flags = fcntl (fd, F_GETFL);

  if (flags != -1 && (flags & O_DIRECT)) {
    size_t h = count / 2 / 512 * 512;
    return h ? h : count;
  }
  return count > 1 ? count / 2 : count;
}

/* ---- the journal ---- */

static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;
static int journal_fd = -2;     /* -2: not opened yet, -1: none */

/* Append one record (and its data) in one write, under a lock, so
 * records keep the order in which the calls completed.
 */
static void
journal (uint32_t type, uint64_t offset, uint64_t count, uint64_t mode,
         const struct iovec *data, int ndata)
{
  struct jrec r = { JREC_MAGIC, type, offset, count, mode };
  struct iovec iov[1 + 64];
  int n = 0, saved = errno;

  pthread_mutex_lock (&journal_lock);
  if (journal_fd == -2) {
    const char *path = getenv ("FAULTINJECT_JOURNAL");
    journal_fd = path ? open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                              0644) : -1;
  }
  if (journal_fd >= 0) {
    iov[n++] = (struct iovec) { &r, sizeof r };
    for (int i = 0; i < ndata && n < 65; i++)
      iov[n++] = data[i];
    if (writev (journal_fd, iov, n) == -1) {
      /* nothing better to do in a test shim */
    }
  }
  pthread_mutex_unlock (&journal_lock);
  errno = saved;
}

static bool
journaling (int fd)
{
  return getenv ("FAULTINJECT_JOURNAL") && is_target (fd);
}

/* A completed write of r bytes at offset from these buffers. */
static void
journal_write (int fd, uint64_t offset, const struct iovec *iov, int n,
               ssize_t r)
{
  struct iovec d[64];
  int m = 0, flags;
  size_t left = r;

  if (r <= 0 || !journaling (fd))
    return;
  for (int i = 0; i < n && left > 0 && m < 64; i++) {
    d[m] = iov[i];
    if (d[m].iov_len > left)
      d[m].iov_len = left;
    left -= d[m].iov_len;
    m++;
  }
  journal ('W', offset, r, 0, d, m);
  flags = fcntl (fd, F_GETFL);
  if (flags != -1 && (flags & (O_SYNC | O_DSYNC)))
    journal ('S', 0, 0, 0, NULL, 0);
}

/* ---- the wrappers ---- */

#define TRANSFER(name, type, kind, buftype)                             \
  ssize_t                                                               \
  name (int fd, buftype buf, size_t count, type offset)                 \
  {                                                                     \
    ssize_t r;                                                          \
    int a;                                                              \
    init_##name ();                                                     \
    a = decide (fd, kind, #name, offset, count);                        \
    if (a > 0) {                                                        \
      errno = a;                                                        \
      return -1;                                                        \
    }                                                                   \
    if (a == 0)                                                         \
      count = half (fd, count);                                         \
    r = real_##name (fd, buf, count, offset);                           \
    if ((kind) & K_WRITE) {                                             \
      struct iovec v = { (void *) buf, count };                         \
      journal_write (fd, offset, &v, 1, r);                             \
    }                                                                   \
    return r;                                                           \
  }

TRANSFER (pread, off_t, K_READ | K_POSITIONAL, void *)
TRANSFER (pread64, off64_t, K_READ | K_POSITIONAL, void *)
TRANSFER (pwrite, off_t, K_WRITE | K_POSITIONAL, const void *)
TRANSFER (pwrite64, off64_t, K_WRITE | K_POSITIONAL, const void *)

static size_t
iov_bytes (const struct iovec *iov, int n)
{
  size_t total = 0;

  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  return total;
}

/* A short vectored transfer: only the first half of the bytes. */
static int
iov_half (int fd, const struct iovec *iov, int n, struct iovec *out)
{
  size_t want = half (fd, iov_bytes (iov, n)), m = 0;

  for (int i = 0; i < n && want > 0; i++) {
    out[m] = iov[i];
    if (out[m].iov_len > want)
      out[m].iov_len = want;
    want -= out[m].iov_len;
    m++;
  }
  return m;
}

#define VECTORED(name, type, kind)                                      \
  ssize_t                                                               \
  name (int fd, const struct iovec *iov, int n, type offset)            \
  {                                                                     \
    ssize_t r;                                                          \
    int a;                                                              \
    init_##name ();                                                     \
    a = n > 0 && n <= 1024                                              \
      ? decide (fd, kind, #name, offset, iov_bytes (iov, n)) : -1;      \
    if (a > 0) {                                                        \
      errno = a;                                                        \
      return -1;                                                        \
    }                                                                   \
    if (a == 0) {                                                       \
      struct iovec *h = alloca (n * sizeof *h);                         \
      int m = iov_half (fd, iov, n, h);                                 \
      r = real_##name (fd, h, m, offset);                               \
      if ((kind) & K_WRITE)                                             \
        journal_write (fd, offset, h, m, r);                            \
      return r;                                                         \
    }                                                                   \
    r = real_##name (fd, iov, n, offset);                               \
    if ((kind) & K_WRITE)                                               \
      journal_write (fd, offset, iov, n, r);                            \
    return r;                                                           \
  }

VECTORED (preadv, off_t, K_READ | K_POSITIONAL)
VECTORED (preadv64, off64_t, K_READ | K_POSITIONAL)
VECTORED (pwritev, off_t, K_WRITE | K_POSITIONAL)
VECTORED (pwritev64, off64_t, K_WRITE | K_POSITIONAL)

/* read and write: the seek I/O mode.  The offset is the file's. */
ssize_t
read (int fd, void *buf, size_t count)
{
  int a;

  init_read ();
  init_lseek ();
  if (!is_target (fd))
    return real_read (fd, buf, count);
  a = decide (fd, K_READ, "read", real_lseek (fd, 0, SEEK_CUR), count);
  if (a > 0) {
    errno = a;
    return -1;
  }
  return real_read (fd, buf, a == 0 ? half (fd, count) : count);
}

ssize_t
write (int fd, const void *buf, size_t count)
{
  int a;

  init_write ();
  init_lseek ();
  off_t pos;
  ssize_t r;

  if (!is_target (fd))
    return real_write (fd, buf, count);
  pos = real_lseek (fd, 0, SEEK_CUR);
  a = decide (fd, K_WRITE, "write", pos, count);
  if (a > 0) {
    errno = a;
    return -1;
  }
  if (a == 0)
    count = half (fd, count);
  r = real_write (fd, buf, count);
  {
    struct iovec v = { (void *) buf, count };
    journal_write (fd, pos, &v, 1, r);
  }
  return r;
}

#define SYNC(name)                                                      \
  int                                                                   \
  name (int fd)                                                         \
  {                                                                     \
    int a;                                                              \
    init_##name ();                                                     \
    a = decide (fd, K_SYNC, #name, 0, 0);                               \
    if (a > 0) {                                                        \
      errno = a;                                                        \
      return -1;                                                        \
    }                                                                   \
    if (real_##name (fd) == -1)                                         \
      return -1;                                                        \
    if (journaling (fd))                                                \
      journal ('S', 0, 0, 0, NULL, 0);                                  \
    return 0;                                                           \
  }

SYNC (fdatasync)
SYNC (fsync)

#define FALLOCATE(name, type)                                           \
  int                                                                   \
  name (int fd, int mode, type offset, type len)                        \
  {                                                                     \
    int a;                                                              \
    init_##name ();                                                     \
    a = decide (fd, K_FALLOCATE, #name, offset, len);                   \
    if (a > 0) {                                                        \
      errno = a;                                                        \
      return -1;                                                        \
    }                                                                   \
    if (real_##name (fd, mode, offset, len) == -1)                      \
      return -1;                                                        \
    if (journaling (fd))                                                \
      journal ('F', offset, len, mode, NULL, 0);                        \
    return 0;                                                           \
  }

FALLOCATE (fallocate, off_t)
FALLOCATE (fallocate64, off64_t)
