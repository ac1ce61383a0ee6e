/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: declarations private to cache/, by owning file.
 *
 * The cache is split into shards so that threads hitting different
 * blocks do not contend on one lock.  A block belongs to the shard
 * chosen by hashing (export, index).  Each shard has its own lock, hash
 * table, CLOCK ring and free list; the memory bound is global, so a
 * busy shard can hold more blocks than a quiet one.
 *
 * Lock order (never take them the other way round):
 *   shard->lock  ->  exp->lock  ->  cache.lock
 * No lock is held across backend I/O.  A block under I/O is marked
 * busy; whoever needs it waits on its shard's condition variable, and
 * never while holding another busy block.  A walk of the export list
 * holds a reference on the export it is at, not a lock (exports.c).
 *
 * Files, and which may call which: a file calls only files on lines
 * below its own, never one above or beside it, so there are no cycles.
 *
 *   backend.c              exports over a device or memory
 *   cache.c                set-up, shutdown, export open/close, stats
 *   io.c                   cache_read, cache_write and their nowait forms
 *   zero.c                 zero, trim, extents
 *   async.c                the asynchronous path (cache_io)
 *   write.c                writing into blocks, the commit level
 *   room.c                 make_room: a block for a full shard
 *   flusher.c              the flusher thread
 *   flush.c                write-back, cache_flush
 *   readahead.c            sequential detection, prefetch
 *   revalidate.c           rmvto=
 *   fill.c                 reading blocks from the host
 *   block.c                shards, blocks, replacement, arena
 *   due.c                  deadlines of dirty blocks, waking the flusher
 *   track.c                changed-block tracking (track.h: then
 *                          track-sidecar.c, then track-bitmap.c)
 *   exports.c  fence.c     (leaves: call no other file)
 */
#ifndef NBDL_CACHE_INTERNAL_H
#define NBDL_CACHE_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "cleanup.h"
#include "vector.h"

#define SECTOR_SIZE 512
#define SECTORS_PER_BLOCK (CACHE_BLOCK_SIZE / SECTOR_SIZE)   /* 8: one byte of bits */
#define FULL_MASK 0xff
#define MAX_SHARDS 64
#define IO_RUN_BLOCKS 256       /* largest host transfer: 1 MiB */
/* Neighbouring blocks share a shard, and neighbouring hash buckets, in
 * groups of this many (64 KiB): a large request takes one shard lock
 * per group and walks memory in order.
 */
#define GROUP_SHIFT 4

/* Busy bits of a block (guarded by its shard lock). */
#define BUSY_READ  1            /* a fill from the host is in progress */
#define BUSY_WRITE 2            /* a write-back is in progress */

/* One cache block: CACHE_BLOCK_SIZE bytes of one export.  Every field
 * is guarded by the lock of the shard the block is in.
 */
struct block {
  struct cache_export *exp;     /* NULL while free */
  uint64_t index;               /* block number in the export */
  struct block *hnext;          /* hash chain, or free list */
  struct block *cprev, *cnext;  /* CLOCK ring of the shard */
  struct block *dprev, *dnext;  /* dirty list of (export, shard) */
  char *data;
  uint64_t first_dirty_ms;      /* when it went from clean to dirty */
  uint64_t last_dirty_ms;       /* last write into it */
  uint64_t retry_ms;            /* after a failed write-back: not before */
  uint32_t gen;                 /* bumped by every write into it */
  uint8_t valid;                /* sectors holding data */
  uint8_t dirty;                /* sectors newer than the host */
  uint8_t busy;                 /* BUSY_* */
  uint8_t credits;              /* CLOCK passes left before eviction */
  bool prefetched;              /* read ahead, not yet referenced */
  /* Zero-copy readers holding the block's memory (cache_read_pinned).
   * Taken under the shard lock, given back without it (atomics).  A
   * pinned block is never a victim; one dropped while pinned becomes
   * an orphan, which the last cache_unpin puts on the free list of
   * shard home.
   */
  uint32_t pins;
  bool orphan;
  uint8_t home;
};

struct dirty_list {
  struct block *head, *tail;    /* oldest first */
  uint64_t count;
};

/* What an export has in one shard, guarded by the shard's lock.  The
 * hot counters live here rather than in shared atomics, so threads
 * hitting different shards never write the same cache line.
 */
struct export_shard {
  struct dirty_list dirty;
  uint64_t resident;            /* blocks */
  uint64_t hits, misses, readahead_blocks, readahead_hits;
  uint64_t read_requests, read_bytes, write_requests, write_bytes;
} __attribute__ ((aligned (64)));

struct shard {
  pthread_mutex_t lock;         /* guards everything here and its blocks */
  pthread_cond_t cond;          /* a block's busy bits changed */
  struct block **buckets;
  uint64_t nbuckets;            /* power of 2 */
  struct block *hand;           /* CLOCK hand (ring of resident blocks) */
  uint64_t nresident;
  uint64_t ndirty;              /* of them dirty (all exports) */
  struct block *free;           /* free blocks, chained by hnext */
} __attribute__ ((aligned (64)));   /* no false sharing between shards */

/* A range being zeroed or trimmed on the host: write-back of dirty
 * blocks inside it waits until it is done, so data written after the
 * zero cannot be overwritten by it, nor zeroed data resurrected.
 */
struct fence {
  uint64_t first, end;          /* block indexes [first, end) */
  struct fence *next;
};

struct export_counters {        /* updated with relaxed atomics */
  uint64_t write_requests, write_bytes;   /* zero (plus the shards') */
  uint64_t writebacks, writeback_bytes;
  uint64_t writeback_errors, flushes, revalidations_changed;
  uint64_t flush_ns_total;      /* flush latency, summed */
};

struct cache_export {
  struct cache_backend be;
  char *name;
  uint32_t id;                  /* mixes into the shard hash */
  uint64_t nblocks;             /* blocks covering be.size */
  uint8_t last_mask;            /* valid sectors of the last block */
  struct cache_export *next;    /* cache.exports (cache.lock) */
  unsigned refs;                /* walks using it (cache.lock) */
  bool closing;                 /* no new references (cache.lock) */

  struct export_shard *shard;   /* [nshards], each guarded by shard i's lock */
  uint64_t resident_total;      /* atomic: blocks in all shards, against... */
  uint64_t wipe_blocks;         /* ...the most this export may hold (wipe=) */

  /* Atomics, read and written on every request without a lock. */
  uint64_t last_access_ms;      /* for rmvto= */
  uint64_t ra_next;             /* read-ahead: where a sequential read goes next */
  bool flush_soon;              /* cache_flush_soon: the flusher flushes it */
  struct track *track;          /* cbt=, or NULL; set before serving */

  pthread_mutex_t lock;         /* guards what follows */
  pthread_cond_t cond;          /* fences cleared */
  struct fence *fences;
  int error;                    /* first write-back error not yet reported */
  uint64_t ra_window;           /* current window, 0 = not sequential
                                   (stored atomically: read unlocked) */
  uint64_t ra_end;              /* read ahead up to here */

  struct export_counters stats;
};

/* track.c: mark a changed range in the live bitmap (any thread, no
 * lock); write the sidecar and free the tracking at close (clean: the
 * final write-back succeeded, the bitmaps are exact).
 */
struct track;
extern void track_mark (struct track *t, uint64_t offset, uint64_t count);
extern void track_close (struct cache_export *exp, bool clean);
extern uint64_t track_dirty_bytes_live (struct cache_export *exp);
#define TRACK(exp, offset, count) \
  do { if ((exp)->track) track_mark ((exp)->track, (offset), (count)); } \
  while (0)

/* The pool's mmap()ed chunks (block.c). */
DEFINE_VECTOR (chunk_vector, void *);

/* The one cache of the process. */
struct cache {
  struct blk_config cfg;
  cache_clock_fn now_ms;
  unsigned nshards;
  struct shard shards[MAX_SHARDS];
  uint64_t max_blocks;          /* data blocks that fit in cache= */
  /* Dirty blocks of a shard above which the flusher writes back the
   * oldest before their deadline, down to dirty_low: a writer should
   * find a clean block to replace, not wait for a write-back.
   */
  uint64_t dirty_high, dirty_low;
  uint64_t pinned;              /* atomic: pins held (cache_read_pinned) */
  uint64_t max_pinned;          /* at most this many, so room stays */
  uint64_t overhead_bytes;      /* hash tables and the like */

  pthread_mutex_t lock;         /* guards what follows */
  struct cache_export *exports;
  uint32_t next_id;
  uint64_t arena_blocks;        /* blocks allocated from the system */
  bool arena_full;              /* atomic: arena_blocks == max_blocks */
  struct chunk_vector chunks;   /* allocations, freed at shutdown */

  /* The flusher thread (flusher.c, due.c). */
  pthread_mutex_t bg_lock;
  pthread_cond_t bg_cond;
  bool bg_stop;
  bool flush_kick;
  bool pressure_kick;           /* a shard went over dirty_high */
  uint64_t next_due_ms;         /* atomic: see cache_next_due */
  bool flusher_running;
  pthread_t flusher;
};

extern struct cache cache;

static inline uint64_t
now_ms (void)
{
  return cache.now_ms ();
}

#define STAT_ADD(exp, field, n) \
  __atomic_fetch_add (&(exp)->stats.field, (n), __ATOMIC_RELAXED)

/* backend.c and cache.c: declared in cache.h only. */

/* write.c: writing into the cache, the commit level. */
extern int insert_nowait (struct cache_export *exp, const void *buf,
                          uint64_t count, uint64_t offset);
extern bool write_is_delayed (unsigned flags);
extern int write_range (struct cache_export *exp, const char *buf,
                        uint64_t count, uint64_t offset);
/* What the commit level requires after writing blocks [first, end):
 * write-back, fdatasync (always if need_flush), pending errors.
 */
extern int commit_write (struct cache_export *exp, uint64_t first,
                         uint64_t end, unsigned flags, bool need_flush);

/* room.c: a block for a request in a full shard. */
/* Write back some dirty blocks (or wait for busy ones), so that a
 * retry of block_alloc in shard s can succeed.
 */
extern int make_room (struct shard *s, struct cache_export *exp);

/* flusher.c: the flusher thread. */
extern int flusher_start (void);
/* Stop the flusher thread, if it runs, and unmap the free bounce
 * buffers.
 */
extern void flusher_stop (void);

/* flush.c: write-back. */
enum wb_mode {
  WB_DUE,                       /* the flusher: blocks past their deadline */
  WB_ALL,                       /* flush: every dirty block, wait for busy */
  WB_RANGE,                     /* FUA / commit=high: blocks of a range */
  WB_ROOM,                      /* make room: oldest dirty of one shard */
};
extern int writeback (struct cache_export *exp, enum wb_mode mode,
                      uint64_t first, uint64_t end, struct shard *only,
                      uint64_t *written, uint64_t *next_due);
/* Take (and clear) the export's pending write-back error. */
extern int take_error (struct cache_export *exp);
extern void record_error (struct cache_export *exp, int err);
/* Bytes mapped for write-back bounce buffers, in use or kept for reuse
 * (outside cache=).
 */
extern uint64_t bounce_bytes (void);
/* Unmap the free bounce buffers (at shutdown). */
extern void bounce_drain (void);

/* readahead.c: sequential detection and background prefetch. */
extern void readahead_note (struct cache_export *exp, uint64_t offset,
                            uint64_t count);
extern int prefetch_queue (struct cache_export *exp, uint64_t first,
                           uint64_t end);
extern int prefetcher_start (void);
extern void prefetcher_stop (void);
extern void prefetch_forget (struct cache_export *exp);

/* revalidate.c: rmvto= revalidation. */
/* After rmvto= idleness, ask the host whether it changed, and if so
 * drop the export's clean blocks (may stat: not on the nowait paths).
 */
extern void revalidate_if_idle (struct cache_export *exp);
extern bool may_skip_revalidation (struct cache_export *exp);

/* fill.c: reading blocks from the host. */
/* Read up to IO_RUN_BLOCKS consecutive blocks, all marked BUSY_READ by
 * the caller, from the host and merge into their invalid sectors.
 * Clears BUSY_READ.  On error, blocks that hold nothing are dropped.
 */
extern int fill_run (struct cache_export *exp, struct block **run,
                     unsigned n, enum io_priority prio, bool prefetch);
/* The same, copying the part of each block inside [req_offset,
 * req_offset + req_count) to dest + (position - req_offset).
 */
extern int fill_run_copy (struct cache_export *exp, struct block **run,
                          unsigned n, enum io_priority prio, bool prefetch,
                          char *dest, uint64_t req_offset,
                          uint64_t req_count);
/* The second half of a fill, once the host read is done (err 0) or
 * failed (an errno value): the data is in the blocks' memory, or in
 * bounce (one block after another) to be merged.  Clears BUSY_READ.
 */
extern void fill_complete (struct cache_export *exp, struct block **run,
                           unsigned n, int err, bool prefetch,
                           const char *bounce, char *dest,
                           uint64_t req_offset, uint64_t req_count);

/* block.c: shards, lookup, allocation and replacement. */
extern struct shard *shard_of (const struct cache_export *exp, uint64_t index);
extern unsigned shard_number (const struct shard *s);
extern struct block *block_lookup (struct shard *s, struct cache_export *exp,
                                   uint64_t index);
/* A free block made resident for (exp, index), evicting a clean one of
 * the shard if the cache is full (one of the export's own, if it holds
 * its wipe= share).  NULL if every candidate is dirty or busy: call
 * make_room and retry.
 */
extern struct block *block_alloc (struct shard *s, struct cache_export *exp,
                                  uint64_t index);
extern void block_drop (struct shard *s, struct block *b);
extern void block_reference (struct shard *s, struct block *b);
/* The export's part of shard s (s->lock held). */
#define EXP_SHARD(exp, s) (&(exp)->shard[shard_number (s)])
/* Mark sectors dirty, written at time t (now_ms (), read once per
 * request).
 */
extern void block_set_dirty (struct shard *s, struct block *b, uint8_t mask,
                             uint64_t t);
extern void block_set_clean (struct shard *s, struct block *b);
/* Evict a clean block of another shard and give it to s (no lock
 * held).  False if there is none.
 */
extern bool steal_block (struct shard *s);
/* Evict one clean block of exp from any shard (no lock held). */
extern bool evict_own (struct cache_export *exp);
extern bool export_at_share (const struct cache_export *exp);
extern void shard_wait (struct shard *s);
extern void shard_wake (struct shard *s);
/* Mask of the sectors of block index that lie inside the export. */
extern uint8_t block_range_mask (const struct cache_export *exp,
                                 uint64_t index);
/* Sectors touched by [lo, hi) of a block, and those wholly covered. */
extern uint8_t sectors_touched (uint32_t lo, uint32_t hi);
extern uint8_t sectors_covered (uint32_t lo, uint32_t hi);
extern int arena_init (void);
extern void arena_free (void);

/* due.c: deadlines of dirty blocks, waking the flusher. */
/* When the flusher must write b back (shard lock held). */
extern uint64_t due_time (const struct block *b);
/* Lower cache.next_due_ms to due; true if it was later. */
extern bool lower_next_due (uint64_t due);
/* A block went from clean to dirty at t (shard lock held): wake the
 * flusher if it sleeps past the block's deadline.
 */
extern void flusher_note_dirty (uint64_t t);
/* A write-back of b ended and b is still dirty (written to meanwhile,
 * or the write failed): the same for its deadline.
 */
extern void flusher_note_still_dirty (const struct block *b);
extern void flusher_kick (void);
/* A shard went over dirty_high (any lock may be held). */
extern void flusher_kick_pressure (void);

/* exports.c: the list of open exports (cache.exports), references. */
extern void exports_link (struct cache_export *exp);
/* Mark exp closing, wait for its references to go, unlink it. */
extern void exports_unlink (struct cache_export *exp);
/* Take a reference on exp (cache.lock held); false if it is closing. */
extern bool export_get_locked (struct cache_export *exp);
extern void export_put (struct cache_export *exp);
/* The first open export (after NULL) or the next one after after, with
 * a reference taken, and the reference on after given back; NULL at
 * the end.  Walk with
 *   for (e = export_next (NULL); e; e = export_next (e))
 * and export_put (e) on leaving the loop early.
 */
extern struct cache_export *export_next (struct cache_export *after);

/* fence.c: ranges being zeroed or trimmed on the host (exp->lock). */
extern bool in_fence (struct cache_export *exp, uint64_t index);
extern void wait_fences (struct cache_export *exp, uint64_t first,
                         uint64_t end);
extern void fence_up (struct cache_export *exp, struct fence *f);
extern void fence_down (struct cache_export *exp, struct fence *f);

/* Shared helpers (inline). */

/* Fail with err unless [offset, offset+count) lies inside the export. */
static inline int
check_range (const struct cache_export *exp, uint64_t count, uint64_t offset,
             int err)
{
  if (offset > exp->be.size || count > exp->be.size - offset) {
    errno = err;
    return -1;
  }
  return 0;
}

/* The part [*lo, *hi) of block idx inside [offset, offset+count). */
static inline void
block_span (uint64_t idx, uint64_t offset, uint64_t count,
            uint32_t *lo, uint32_t *hi)
{
  uint64_t bstart = idx * CACHE_BLOCK_SIZE;

  *lo = offset > bstart ? offset - bstart : 0;
  *hi = offset + count < bstart + CACHE_BLOCK_SIZE
    ? offset + count - bstart : CACHE_BLOCK_SIZE;
}

/* Walking a request block by block, keep the shard lock while the
 * blocks stay in one shard (a group of GROUP_SHIFT): switch to s.
 */
static inline void
hold_shard (struct shard **held, struct shard *s)
{
  if (*held != s) {
    if (*held)
      unlock_or_abort (&(*held)->lock);
    lock_or_abort (&s->lock);
    *held = s;
  }
}

static inline void
release_shard (struct shard **held)
{
  if (*held) {
    unlock_or_abort (&(*held)->lock);
    *held = NULL;
  }
}

#endif /* NBDL_CACHE_INTERNAL_H */
