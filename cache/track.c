/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: changed-block tracking (loopback cbt=).
 *
 * Every WRITE, WRITE_ZEROES and TRIM of an export passes through the
 * cache, so the cache is where changes are tracked, for both front
 * ends.  An export with tracking has one live bitmap ("live"), one bit
 * per granule (cbt=GRANULARITY, a power of two), set once the change
 * is in the cache and before the request returns, and any number of
 * frozen bitmaps made by checkpoints.
 *
 * A checkpoint is atomic with respect to writes: writers enter the live
 * bitmap by raising its writer count and checking it is still live (a
 * Dekker pair with the checkpoint's swap, both sequentially
 * consistent); the checkpoint swaps in a fresh live bitmap, then waits
 * until no writer is left in the old one before it freezes it.  So a
 * write that returned before the checkpoint began is in the frozen
 * bitmap, one that began after it returned is only in the new live one,
 * and every write is in exactly one.  The hot path is two atomic
 * additions and a fetch-or only when a bit is not yet set.
 *
 * Persistence: the bitmaps live in a sidecar file (IMAGE.cbt, or
 * DIR/BASENAME.cbt with cbtdir=DIR: opts/ makes the path), replaced
 * atomically (temporary file, fsync, rename, fsync of the directory).
 * While serving, the sidecar says "in use": if the process dies, the
 * next start loads every bitmap as entirely dirty (with a warning), so
 * no bitmap ever under-reports.  A clean close (after the final
 * write-back) writes the exact bitmaps with the image's size and
 * modification time; if those differ at the next start, the image
 * changed while nobody was tracking it and every bitmap is loaded
 * entirely dirty.  A corrupt or truncated sidecar is renamed to
 * SIDECAR.corrupt and tracking starts over with "live" entirely dirty;
 * a sidecar that cannot be written at start (missing directory, no
 * permission) turns tracking off for the export, which still serves;
 * later, checkpoint, delete and merge undo themselves instead.
 *
 * Lock: track->lock guards the frozen list, reference counts and the
 * sidecar; never held across client I/O, only across sidecar writes.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#define SIDECAR_MAGIC "NBDLCBT1"
#define SIDECAR_VERSION 1
#define SIDECAR_MAX_BITMAPS 1024
#define BITMAP_NAME_MAX 64
/* Bitmap words copied (on the stack) and written at a time: 8 KiB. */
#define SAVE_WORDS 1024

struct bitmap {
  char *name;
  uint64_t *words;              /* bits, atomically set; LSB first */
  uint64_t writers;             /* atomic: writers inside (live only) */
  unsigned refs;                /* track->lock: the list's, readers' */
  struct bitmap *next;          /* frozen list, oldest first */
};

struct track {
  struct bitmap *live;          /* atomic pointer; swapped by checkpoints */
  uint32_t shift;               /* log2 of the granularity */
  uint64_t size;                /* export size */
  uint64_t nbits, nwords;
  char *sidecar;
  char *image;                  /* for its size and mtime; NULL: memory */

  pthread_mutex_t lock;         /* guards what follows and the sidecar */
  struct bitmap *frozen;
  unsigned nfrozen;
};

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

static struct bitmap *
bitmap_new (const struct track *t, const char *name, bool all_dirty)
{
  struct bitmap *b = calloc (1, sizeof *b);

  if (b == NULL)
    return NULL;
  b->name = strdup (name);
  b->words = calloc (t->nwords ? t->nwords : 1, sizeof *b->words);
  if (b->name == NULL || b->words == NULL) {
    free (b->name);
    free (b->words);
    free (b);
    return NULL;
  }
  if (all_dirty) {
    memset (b->words, 0xff, t->nwords * sizeof *b->words);
    if (t->nbits % 64)
      b->words[t->nwords - 1] = (UINT64_C (1) << (t->nbits % 64)) - 1;
  }
  b->refs = 1;
  return b;
}

static void
bitmap_free (struct bitmap *b)
{
  if (b) {
    free (b->name);
    free (b->words);
    free (b);
  }
}

static void
bitmap_put (struct track *t, struct bitmap *b)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  if (--b->refs == 0)
    bitmap_free (b);
}

static uint64_t
bitmap_count (const struct track *t, const struct bitmap *b)
{
  uint64_t n = 0;

  for (uint64_t i = 0; i < t->nwords; i++)
    n += __builtin_popcountll (__atomic_load_n (&b->words[i],
                                                __ATOMIC_RELAXED));
  return n;
}

static uint64_t
dirty_bytes (const struct track *t, const struct bitmap *b)
{
  uint64_t n = bitmap_count (t, b) << t->shift;
  uint64_t last = t->nbits - 1;

  /* The last granule may be short. */
  if (t->nbits && (b->words[last / 64] >> (last % 64)) & 1)
    n -= (t->nbits << t->shift) - t->size;
  return n;
}

/* ---- the hot path ---- */

void
track_mark (struct track *t, uint64_t offset, uint64_t count)
{
  struct bitmap *b;
  uint64_t i, last;

  if (count == 0 || offset >= t->size)
    return;
  if (count > t->size - offset)
    count = t->size - offset;
  i = offset >> t->shift;
  last = (offset + count - 1) >> t->shift;

  for (;;) {
    b = __atomic_load_n (&t->live, __ATOMIC_SEQ_CST);
    __atomic_add_fetch (&b->writers, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n (&t->live, __ATOMIC_SEQ_CST) == b)
      break;
    __atomic_sub_fetch (&b->writers, 1, __ATOMIC_SEQ_CST);
  }
  for (uint64_t wi = i / 64, wl = last / 64; wi <= wl; wi++) {
    uint64_t mask = ~UINT64_C (0);
    uint64_t *w = &b->words[wi];

    if (wi == i / 64)
      mask &= ~UINT64_C (0) << (i % 64);
    if (wi == wl)
      mask &= ~UINT64_C (0) >> (63 - last % 64);
    /* Rewriting a granule already marked costs no atomic write. */
    if ((__atomic_load_n (w, __ATOMIC_RELAXED) & mask) != mask)
      __atomic_fetch_or (w, mask, __ATOMIC_RELAXED);
  }
  __atomic_sub_fetch (&b->writers, 1, __ATOMIC_RELEASE);
}

/* ---- the sidecar ---- */

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
static int
save_sidecar (struct track *t, bool clean)
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
static int
read_file (const char *path, char **buf, size_t *len)
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

static bool
valid_name (const char *name, size_t len)
{
  if (len == 0 || len > BITMAP_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!(name[i] >= 'a' && name[i] <= 'z') &&
        !(name[i] >= 'A' && name[i] <= 'Z') &&
        !(name[i] >= '0' && name[i] <= '9') &&
        name[i] != '_' && name[i] != '-' && name[i] != '.')
      return false;
  return true;
}

static void
add_frozen (struct track *t, struct bitmap *b)
{
  struct bitmap **p = &t->frozen;

  while (*p)
    p = &(*p)->next;
  *p = b;
  t->nfrozen++;
}

/* Parse a sidecar.  Returns 0 with t's bitmaps loaded, -1 with *why
 * set (corrupt), or -2 (out of memory).  Each bitmap is loaded as
 * entirely dirty when the file cannot vouch for it (the reason in
 * *dirty_why, NULL if exact).
 */
static int
parse_sidecar (struct track *t, const char *buf, size_t len,
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

static void
track_free (struct track *t)
{
  struct bitmap *b, *next;

  if (t == NULL)
    return;
  for (b = t->frozen; b; b = next) {
    next = b->next;
    bitmap_free (b);
  }
  bitmap_free (t->live);
  pthread_mutex_destroy (&t->lock);
  free (t->sidecar);
  free (t->image);
  free (t);
}

static void
drop_bitmaps (struct track *t)
{
  struct bitmap *b, *next;

  for (b = t->frozen; b; b = next) {
    next = b->next;
    bitmap_free (b);
  }
  t->frozen = NULL;
  t->nfrozen = 0;
  bitmap_free (t->live);
  t->live = NULL;
}

int
cache_export_track (struct cache_export *exp, uint32_t granularity,
                    const char *image, const char *sidecar)
{
  struct track *t;
  CLEANUP_FREE char *buf = NULL;
  size_t len = 0;
  int r;

  if (granularity < exp->be.blksz || (granularity & (granularity - 1))) {
    log_error ("%s: cbt=%" PRIu32 ": the granularity must be a power of "
               "two no smaller than the block size %" PRIu32 "; tracking "
               "is off", exp->name, granularity, exp->be.blksz);
    errno = EINVAL;
    return -1;
  }
  t = calloc (1, sizeof *t);
  if (t == NULL)
    return -1;
  r = pthread_mutex_init (&t->lock, NULL);
  if (r) {
    errno = r;
    log_error ("%s: changed-block tracking: initialising a lock: %m; "
               "tracking is off", exp->name);
    free (t);
    return -1;
  }
  t->shift = __builtin_ctz (granularity);
  t->size = exp->be.size;
  t->nbits = (t->size >> t->shift) + ((t->size & (granularity - 1)) != 0);
  t->nwords = (t->nbits + 63) / 64;
  t->image = strdup (image);
  t->sidecar = strdup (sidecar);
  if (t->image == NULL || t->sidecar == NULL) {
    track_free (t);
    return -1;
  }

  r = read_file (t->sidecar, &buf, &len);
  if (r == -1) {
    log_error ("%s: changed-block tracking: reading %s: %m; tracking is "
               "off", exp->name, t->sidecar);
    track_free (t);
    return -1;
  }
  if (r == 1) {
    const char *why, *dirty_why;
    int p = parse_sidecar (t, buf, len, &why, &dirty_why);

    if (p == -2) {
      log_error ("%s: changed-block tracking is off: no memory to load %s",
                 exp->name, t->sidecar);
      track_free (t);
      errno = ENOMEM;
      return -1;
    }
    if (p == -1) {
      CLEANUP_FREE char *bad = NULL;

      drop_bitmaps (t);
      if (asprintf (&bad, "%s.corrupt", t->sidecar) == -1)
        bad = NULL;
      log_error ("%s: changed-block tracking: %s: %s; moved to %s, "
                 "tracking starts over with every block dirty",
                 exp->name, t->sidecar, why, bad ? bad : "(nowhere)");
      if (bad)
        rename (t->sidecar, bad);
      t->live = bitmap_new (t, "live", true);
    }
    else if (dirty_why)
      log_warning ("%s: changed-block tracking: %s: every bitmap is "
                   "loaded as entirely dirty", exp->name, dirty_why);
  }
  else
    t->live = bitmap_new (t, "live", false);
  if (t->live == NULL) {
    log_error ("%s: changed-block tracking is off: no memory for its "
               "bitmaps (%" PRIu64 " bytes each at cbt=%" PRIu32 ")",
               exp->name, t->nwords * 8, granularity);
    track_free (t);
    errno = ENOMEM;
    return -1;
  }
  /* In use from now on: a crash means "all dirty" at the next start. */
  if (save_sidecar (t, false) == -1) {
    log_error ("%s: changed-block tracking is off: its file %s cannot be "
               "written", exp->name, t->sidecar);
    track_free (t);
    errno = EIO;
    return -1;
  }
  exp->track = t;
  log_debug ("%s: changed-block tracking at %" PRIu32 " bytes in %s",
             exp->name, granularity, t->sidecar);
  return 0;
}

/* At close, after the final write-back: exact bitmaps unless it
 * failed.
 */
void
track_close (struct cache_export *exp, bool clean)
{
  struct track *t = exp->track;

  if (t == NULL)
    return;
  exp->track = NULL;
  if (clean) {
    lock_or_abort (&t->lock);
    save_sidecar (t, true);
    unlock_or_abort (&t->lock);
  }
  track_free (t);
}

uint32_t
cache_export_track_granularity (const struct cache_export *exp)
{
  return exp->track ? UINT32_C (1) << exp->track->shift : 0;
}

/* ---- checkpoints and the bitmap table ---- */

static void
remove_frozen (struct track *t, struct bitmap *b)
{
  for (struct bitmap **p = &t->frozen; *p; p = &(*p)->next)
    if (*p == b) {
      *p = b->next;
      b->next = NULL;
      t->nfrozen--;
      return;
    }
}

/* dst |= src, word by word (atomically: dst may be served meanwhile). */
static void
or_words (const struct track *t, struct bitmap *dst, const struct bitmap *src)
{
  for (uint64_t i = 0; i < t->nwords; i++)
    __atomic_fetch_or (&dst->words[i],
                       __atomic_load_n (&src->words[i], __ATOMIC_RELAXED),
                       __ATOMIC_RELAXED);
}

static struct bitmap **
find_frozen (struct track *t, const char *name)
{
  for (struct bitmap **p = &t->frozen; *p; p = &(*p)->next)
    if (strcmp ((*p)->name, name) == 0)
      return p;
  return NULL;
}

static int
check_name (const char *name)
{
  if (!valid_name (name, strlen (name))) {
    errno = EINVAL;
    return -1;
  }
  if (strcmp (name, "live") == 0) {
    errno = EEXIST;
    return -1;
  }
  return 0;
}

int
cache_bitmap_checkpoint (struct cache_export *exp, const char *name,
                         uint64_t *dirty)
{
  struct track *t = exp->track;
  struct bitmap *fresh, *old;

  if (t == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  if (check_name (name) == -1)
    return -1;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  if (find_frozen (t, name)) {
    errno = EEXIST;
    return -1;
  }
  if (t->nfrozen + 1 >= SIDECAR_MAX_BITMAPS) {
    errno = ENOSPC;
    return -1;
  }
  fresh = bitmap_new (t, "live", false);
  if (fresh == NULL)
    return -1;
  old = t->live;
  free (old->name);
  old->name = strdup (name);
  if (old->name == NULL) {
    old->name = strdup ("live");
    bitmap_free (fresh);
    errno = ENOMEM;
    return -1;
  }
  __atomic_store_n (&t->live, fresh, __ATOMIC_SEQ_CST);
  /* Writers that entered the old bitmap finish their few bit sets. */
  while (__atomic_load_n (&old->writers, __ATOMIC_SEQ_CST) != 0)
    sched_yield ();
  add_frozen (t, old);
  /* The name must survive a crash: if it cannot be written, undo. */
  if (save_sidecar (t, false) == -1) {
    remove_frozen (t, old);
    __atomic_store_n (&t->live, old, __ATOMIC_SEQ_CST);
    while (__atomic_load_n (&fresh->writers, __ATOMIC_SEQ_CST) != 0)
      sched_yield ();
    or_words (t, old, fresh);
    free (old->name);
    old->name = fresh->name;
    fresh->name = NULL;
    bitmap_free (fresh);
    errno = EIO;
    return -1;
  }
  if (dirty)
    *dirty = dirty_bytes (t, old);
  return 0;
}

int
cache_bitmap_delete (struct cache_export *exp, const char *name)
{
  struct track *t = exp->track;
  struct bitmap **p, *b;

  if (t == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  if (strcmp (name, "live") == 0) {
    errno = EPERM;
    return -1;
  }
  p = find_frozen (t, name);
  if (p == NULL) {
    errno = ENOENT;
    return -1;
  }
  b = *p;
  *p = b->next;
  t->nfrozen--;
  if (save_sidecar (t, false) == -1) {
    b->next = *p;               /* back where it was */
    *p = b;
    t->nfrozen++;
    errno = EIO;
    return -1;
  }
  if (--b->refs == 0)
    bitmap_free (b);
  return 0;
}

int
cache_bitmap_merge (struct cache_export *exp, const char *target,
                    const char *source)
{
  struct track *t = exp->track;
  struct bitmap **tp, **sp, *src, *dst;
  CLEANUP_FREE uint64_t *saved = NULL;

  if (t == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  if (check_name (target) == -1)
    return -1;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  sp = strcmp (source, "live") == 0 ? NULL : find_frozen (t, source);
  if (sp == NULL && strcmp (source, "live") != 0) {
    errno = ENOENT;
    return -1;
  }
  src = sp ? *sp : t->live;
  tp = find_frozen (t, target);
  if (tp)
    dst = *tp;
  else {
    if (t->nfrozen + 1 >= SIDECAR_MAX_BITMAPS) {
      errno = ENOSPC;
      return -1;
    }
    dst = bitmap_new (t, target, false);
    if (dst == NULL)
      return -1;
  }
  /* To undo if the file cannot be written. */
  if (tp) {
    saved = malloc (t->nwords * sizeof *saved + 1);
    if (saved == NULL)
      return -1;
    memcpy (saved, dst->words, t->nwords * sizeof *saved);
  }
  /* Blocks being read now may see the target grow: only more dirty. */
  or_words (t, dst, src);
  if (tp == NULL)
    add_frozen (t, dst);
  if (save_sidecar (t, false) == -1) {
    if (tp)
      memcpy (dst->words, saved, t->nwords * sizeof *saved);
    else {
      remove_frozen (t, dst);
      bitmap_free (dst);
    }
    errno = EIO;
    return -1;
  }
  return 0;
}

static struct bitmap *
bitmap_get (struct track *t, const char *name)
{
  struct bitmap **p, *b;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  if (strcmp (name, "live") == 0)
    b = t->live;
  else if ((p = find_frozen (t, name)) != NULL)
    b = *p;
  else
    return NULL;
  b->refs++;
  return b;
}

bool
cache_bitmap_exists (struct cache_export *exp, const char *name)
{
  struct bitmap *b;

  if (exp->track == NULL)
    return false;
  b = bitmap_get (exp->track, name);
  if (b == NULL)
    return false;
  bitmap_put (exp->track, b);
  return true;
}

int
cache_bitmap_list (struct cache_export *exp, cache_bitmap_fn fn, void *opaque)
{
  struct track *t = exp->track;

  if (t == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  for (struct bitmap *b = t->frozen; b; b = b->next)
    if (fn (opaque, b->name, dirty_bytes (t, b)) == -1)
      return -1;
  return fn (opaque, t->live->name, dirty_bytes (t, t->live));
}

int
cache_bitmap_extents (struct cache_export *exp, const char *name,
                      uint64_t count, uint64_t offset,
                      cache_extent_fn fn, void *opaque)
{
  struct track *t = exp->track;
  struct bitmap *b;
  uint64_t end, pos;
  int r = 0;

  if (t == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  b = bitmap_get (t, name);
  if (b == NULL) {
    errno = ENOENT;
    return -1;
  }
  end = offset + count > t->size ? t->size : offset + count;
  pos = offset;
  while (pos < end) {
    uint64_t bit = pos >> t->shift;
    bool dirty = (__atomic_load_n (&b->words[bit / 64], __ATOMIC_RELAXED)
                  >> (bit % 64)) & 1;
    uint64_t run_end;

    /* Extend over granules of the same state. */
    do {
      bit++;
      run_end = bit << t->shift;
    } while (run_end < end &&
             ((__atomic_load_n (&b->words[bit / 64], __ATOMIC_RELAXED)
               >> (bit % 64)) & 1) == dirty);
    if (run_end > end)
      run_end = end;
    /* cache_extent_fn's "hole" flag carries "clean" here. */
    if (fn (opaque, pos, run_end - pos, !dirty) == -1) {
      r = -1;
      break;
    }
    pos = run_end;
  }
  {
    int err = errno;
    bitmap_put (t, b);
    errno = err;
  }
  return r;
}

uint64_t
track_dirty_bytes_live (struct cache_export *exp)
{
  struct track *t = exp->track;
  struct bitmap *b;
  uint64_t n;

  if (t == NULL)
    return 0;
  b = bitmap_get (t, "live");
  n = dirty_bytes (t, b);
  bitmap_put (t, b);
  return n;
}
