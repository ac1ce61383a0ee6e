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
 * Persistence (track-sidecar.c): the bitmaps live in a sidecar file
 * (IMAGE.cbt, or DIR/BASENAME.cbt with cbtdir=DIR: opts/ makes it), replaced
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
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"
#include "track.h"


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

  r = track_sidecar_read (t->sidecar, &buf, &len);
  if (r == -1) {
    log_error ("%s: changed-block tracking: reading %s: %m; tracking is "
               "off", exp->name, t->sidecar);
    track_free (t);
    return -1;
  }
  if (r == 1) {
    const char *why, *dirty_why;
    int p = track_sidecar_parse (t, buf, len, &why, &dirty_why);

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
  if (track_sidecar_save (t, false) == -1) {
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
    track_sidecar_save (t, true);
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
  if (track_sidecar_save (t, false) == -1) {
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
  if (track_sidecar_save (t, false) == -1) {
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
  if (track_sidecar_save (t, false) == -1) {
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
