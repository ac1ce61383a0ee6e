/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the tracking file of changed-block tracking.
 *
 * IMAGE.cbt (or DIR/BASENAME.cbt with cbtdir=DIR) holds every bitmap of
 * an export.  It is replaced atomically: a temporary file, fsync,
 * rename, fsync of the directory.  "clean" says the bitmaps are exact,
 * written at a clean close with the image's size and modification
 * time; anything else (a crash, a changed image, another granularity)
 * loads every bitmap entirely dirty, so a bitmap never under-reports.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "track.h"

#define SIDECAR_MAGIC "NBDLCBT1"
#define SIDECAR_VERSION 1
/* Bitmap words copied (on the stack) and written at a time: 8 KiB. */
#define SAVE_WORDS 1024

/* The sidecar: this header, then per bitmap a 32-bit name length, the
 * name, the nwords 64-bit words (host byte order: the magic is checked
 * with the byte-order mark), then a 64-bit FNV-1a of everything before.
 */
struct sidecar_header {
  char magic[8];
  uint32_t version;
  uint32_t byte_order;          /* 0x01020304 as written */
  uint32_t clean;               /* 1: written by a clean close */
  uint32_t nbitmaps;
  uint64_t granularity;
  uint64_t size;                /* of the export: the bitmaps' layout */
  uint64_t image_size;          /* clean: the image's size and mtime */
  int64_t mtime_sec, mtime_nsec;
};
_Static_assert (sizeof (struct sidecar_header) == 64,
                "the sidecar header has no padding");

static uint64_t
fnv1a (uint64_t h, const void *p, size_t n)
{
  const unsigned char *c = p;

  for (size_t i = 0; i < n; i++) {
    h ^= c[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
#define FNV_START 0xcbf29ce484222325ULL

static int
stat_image (const struct track *t, uint64_t *size, struct timespec *mtime)
{
  struct stat st;

  if (t->image == NULL) {
    *size = t->size;
    *mtime = (struct timespec) { 0 };
    return 0;
  }
  if (stat (t->image, &st) == -1)
    return -1;
  *size = S_ISREG (st.st_mode) ? (uint64_t) st.st_size : t->size;
  *mtime = st.st_mtim;
  return 0;
}

static int
write_all (int fd, const void *p, size_t n, uint64_t *h)
{
  const char *c = p;

  *h = fnv1a (*h, p, n);
  while (n > 0) {
    ssize_t r = write (fd, c, n);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    c += r;
    n -= r;
  }
  return 0;
}

static int
write_bitmap (int fd, const struct track *t, const struct bitmap *b,
              uint64_t *h)
{
  uint32_t len = strlen (b->name);

  if (write_all (fd, &len, sizeof len, h) == -1 ||
      write_all (fd, b->name, len, h) == -1)
    return -1;
  for (uint64_t i = 0; i < t->nwords; i += SAVE_WORDS) {
    uint64_t buf[SAVE_WORDS];
    uint64_t n = t->nwords - i < SAVE_WORDS ? t->nwords - i : SAVE_WORDS;

    for (uint64_t j = 0; j < n; j++)
      buf[j] = __atomic_load_n (&b->words[i + j], __ATOMIC_RELAXED);
    if (write_all (fd, buf, n * sizeof *buf, h) == -1)
      return -1;
  }
  return 0;
}

/* Replace the sidecar.  clean: the bitmaps are exact and the image
 * will not change (a clean close).  Called with t->lock held (or
 * before anyone else can see t).  Logs failures.
 */
int
track_sidecar_save (struct track *t, bool clean)
{
  CLEANUP_FREE char *tmp = NULL;
  CLEANUP_FREE char *dircopy = NULL;
  struct sidecar_header h = {
    .magic = SIDECAR_MAGIC, .version = SIDECAR_VERSION,
    .byte_order = 0x01020304, .clean = clean,
    .nbitmaps = t->nfrozen + 1, .granularity = UINT64_C (1) << t->shift,
    .size = t->size,
  };
  struct timespec mtime;
  uint64_t sum = FNV_START;
  int fd, dfd;

  if (clean) {
    uint64_t isize;

    if (stat_image (t, &isize, &mtime) == -1) {
      log_error ("%s: stat: %m", t->image);
      return -1;
    }
    h.image_size = isize;
    h.mtime_sec = mtime.tv_sec;
    h.mtime_nsec = mtime.tv_nsec;
  }
  if (asprintf (&tmp, "%s.tmp", t->sidecar) == -1) {
    tmp = NULL;
    log_error ("%s: out of memory", t->sidecar);
    return -1;
  }
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd == -1) {
    log_error ("changed-block tracking: creating %s: %m", tmp);
    return -1;
  }
  if (write_all (fd, &h, sizeof h, &sum) == -1)
    goto fail;
  for (struct bitmap *b = t->frozen; b; b = b->next)
    if (write_bitmap (fd, t, b, &sum) == -1)
      goto fail;
  if (write_bitmap (fd, t, t->live, &sum) == -1)
    goto fail;
  {
    uint64_t dummy = FNV_START, s = sum;
    if (write_all (fd, &s, sizeof s, &dummy) == -1)
      goto fail;
  }
  if (fsync (fd) == -1)
    goto fail;
  if (close (fd) == -1) {
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (rename (tmp, t->sidecar) == -1)
    goto fail;
  dircopy = strdup (t->sidecar);
  if (dircopy) {
    dfd = open (dirname (dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync (dfd);
      close (dfd);
    }
  }
  return 0;

 fail:
  log_error ("changed-block tracking: writing %s: %m", tmp);
  if (fd >= 0)
    close (fd);
  unlink (tmp);
  return -1;
}

/* Read the whole sidecar.  Returns 1 and *buf if there is one, 0 if
 * there is none, -1 (errno) if it cannot be read.
 */
int
track_sidecar_read (const char *path, char **buf, size_t *len)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t done = 0;

  if (fd == -1)
    return errno == ENOENT ? 0 : -1;
  if (fstat (fd, &st) == -1 || (uint64_t) st.st_size > (UINT64_C (1) << 40)) {
    if (errno == 0)
      errno = EFBIG;
    close (fd);
    return -1;
  }
  *len = st.st_size;
  *buf = malloc (*len ? *len : 1);
  if (*buf == NULL) {
    close (fd);
    return -1;
  }
  while (done < *len) {
    ssize_t r = read (fd, *buf + done, *len - done);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        errno = EIO;
      free (*buf);
      close (fd);
      return -1;
    }
    done += r;
  }
  close (fd);
  return 1;
}

/* Parse a sidecar.  Returns 0 with t's bitmaps loaded, -1 with *why
 * set (corrupt), or -2 (out of memory).  Each bitmap is loaded as
 * entirely dirty when the file cannot vouch for it (the reason in
 * *dirty_why, NULL if exact).
 */
int
track_sidecar_parse (struct track *t, const char *buf, size_t len,
               const char **why, const char **dirty_why)
{
  struct sidecar_header h;
  const char *p = buf + sizeof h, *end;
  uint64_t sum;
  struct timespec mtime;
  uint64_t size;
  bool all_dirty = false, exact_layout;

  *dirty_why = NULL;
  if (len < sizeof h + sizeof sum) {
    *why = "truncated";
    return -1;
  }
  memcpy (&h, buf, sizeof h);
  if (memcmp (h.magic, SIDECAR_MAGIC, sizeof h.magic) != 0) {
    *why = "not a changed-block tracking file";
    return -1;
  }
  if (h.version != SIDECAR_VERSION || h.byte_order != 0x01020304) {
    *why = "unsupported version or byte order";
    return -1;
  }
  end = buf + len - sizeof sum;
  memcpy (&sum, end, sizeof sum);
  if (fnv1a (FNV_START, buf, len - sizeof sum) != sum) {
    *why = "checksum mismatch (corrupt or truncated)";
    return -1;
  }
  if (h.nbitmaps == 0 || h.nbitmaps > SIDECAR_MAX_BITMAPS) {
    *why = "bad number of bitmaps";
    return -1;
  }
  exact_layout = h.granularity == (UINT64_C (1) << t->shift);
  if (!h.clean) {
    all_dirty = true;
    *dirty_why = "the server did not stop cleanly";
  }
  else if (!exact_layout) {
    all_dirty = true;
    *dirty_why = "the granularity changed";
  }
  else if (stat_image (t, &size, &mtime) == 0 &&
           (size != h.image_size || mtime.tv_sec != h.mtime_sec ||
            mtime.tv_nsec != h.mtime_nsec)) {
    all_dirty = true;
    *dirty_why = "the image changed while nobody tracked it";
  }
  if (h.size != t->size)
    exact_layout = false;

  for (uint32_t i = 0; i < h.nbitmaps; i++) {
    uint32_t nlen;
    uint64_t nw;
    char name[BITMAP_NAME_MAX + 1];
    struct bitmap *b;

    if ((size_t) (end - p) < sizeof nlen) {
      *why = "truncated";
      return -1;
    }
    memcpy (&nlen, p, sizeof nlen);
    p += sizeof nlen;
    if ((size_t) (end - p) < nlen || !valid_name (p, nlen)) {
      *why = "bad bitmap name";
      return -1;
    }
    memcpy (name, p, nlen);
    name[nlen] = '\0';
    p += nlen;
    /* The words of the image size the sidecar was written for. */
    {
      uint64_t g = h.granularity ? h.granularity : 1;
      uint64_t bits = h.size / g + (h.size % g != 0);
      nw = (bits + 63) / 64;
    }
    if (h.granularity == 0 || (h.granularity & (h.granularity - 1)) ||
        (uint64_t) (end - p) / sizeof (uint64_t) < nw) {
      *why = "truncated or bad granularity";
      return -1;
    }
    b = bitmap_new (t, name, all_dirty || !exact_layout);
    if (b == NULL) {
      *why = "out of memory";
      return -2;                /* not the file's fault */
    }
    if (!all_dirty && exact_layout)
      memcpy (b->words, p, nw * sizeof (uint64_t));
    p += nw * sizeof (uint64_t);
    if (i == h.nbitmaps - 1) {
      if (strcmp (name, "live") != 0) {
        bitmap_free (b);
        *why = "no live bitmap";
        return -1;
      }
      t->live = b;
    }
    else if (strcmp (name, "live") == 0) {
      bitmap_free (b);
      *why = "two live bitmaps";
      return -1;
    }
    else
      add_frozen (t, b);
  }
  if (p != end) {
    *why = "trailing bytes";
    return -1;
  }
  if (!exact_layout && !all_dirty) {
    all_dirty = true;
    *dirty_why = "the image size changed";
  }
  return 0;
}

