/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: changed-block tracking, private to its three files.
 *
 *   track.c          the live bitmap, checkpoints, the bitmap table
 *   track-sidecar.c  the tracking file: writing, reading, parsing
 *   track-bitmap.c   the bitmap type
 *
 * Each calls only those below it.  track.c's opening comment has the
 * rules (atomic checkpoints, what the file vouches for).
 */
#ifndef NBDL_CACHE_TRACK_H
#define NBDL_CACHE_TRACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BITMAP_NAME_MAX 64
#define SIDECAR_MAX_BITMAPS 1024  /* the tracking file holds no more */

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

/* ---- track-bitmap.c ---- */

/* A bitmap for t named name, all clear or all set (all_dirty), with one
 * reference; NULL if out of memory.
 */
extern struct bitmap *bitmap_new (const struct track *t, const char *name,
                                  bool all_dirty);
extern void bitmap_free (struct bitmap *b);
/* A name a client may give: 1 to BITMAP_NAME_MAX of [A-Za-z0-9_.-]. */
extern bool valid_name (const char *name, size_t len);
/* Append b to t's frozen bitmaps (t->lock held, or t not shared yet). */
extern void add_frozen (struct track *t, struct bitmap *b);

/* ---- track-sidecar.c ---- */

/* Replace the tracking file (t->lock held, or t not shared yet); clean:
 * the bitmaps are exact (a clean close).  Logs failures.
 */
extern int track_sidecar_save (struct track *t, bool clean);
/* Read a whole file: 1 and *buf (malloc) if there is one, 0 if there is
 * none, -1 (errno) if it cannot be read.
 */
extern int track_sidecar_read (const char *path, char **buf, size_t *len);
/* Load t's bitmaps from a tracking file's bytes: 0, -1 with *why
 * (corrupt), -2 (out of memory); *dirty_why says why every bitmap was
 * loaded entirely dirty, NULL if they are exact.
 */
extern int track_sidecar_parse (struct track *t, const char *buf, size_t len,
                                const char **why, const char **dirty_why);

#endif /* NBDL_CACHE_TRACK_H */
