/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: write-back.
 *
 * Dirty blocks reach the host here, in four situations:
 *
 * - the flusher thread (flusher.c), for blocks past their deadline
 *   (delwri= after the last write into the block, and postpone= after
 *   it first became dirty, whichever comes first: see due.c);
 * - cache_flush: every dirty block of the export, from any connection,
 *   then fdatasync: "fsync always forces out delayed-write blocks";
 * - a FUA write (or any write at commit=high) for the blocks it wrote;
 * - make_room (room.c), when a shard is full of dirty blocks and a
 *   request needs one.
 *
 * Each round marks the blocks BUSY_WRITE, copies their dirty sectors
 * into a bounce buffer under the shard lock (so writers are never held
 * up by host I/O), writes neighbouring fully dirty blocks with one
 * host write, and then marks each block clean, unless it was written
 * to again meanwhile (its generation changed).  Only one write-back of
 * a block is in flight at a time, so an older copy can never land on
 * the host after a newer one.  A failed host write leaves the block
 * dirty, to be retried after a delay, and remembers the error for the
 * next flush or FUA write of the export.
 *
 * Memory does not grow with the cache: a flush takes the dirty blocks
 * in batches of ALL_BATCH, lowest block numbers first, and bounce
 * buffers are mapped outside malloc and reused.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

struct wb_entry {
  struct block *b;
  uint64_t index;
  uint32_t gen;                 /* b->gen when copied */
  uint8_t mask;                 /* dirty sectors copied */
  int err;
};

void
record_error (struct cache_export *exp, int err)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);
  if (exp->error == 0)
    exp->error = err;
}

int
take_error (struct cache_export *exp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&exp->lock);
  int err = exp->error;

  exp->error = 0;
  return err;
}

/* Bounce buffers, BOUNCE_BYTES each.  They are mapped directly: taken
 * from malloc, every thread's arena would keep the ones it freed.  At
 * most as many free ones are kept as threads can write back at once
 * (the workers and the flusher); one given back beyond that is
 * unmapped.
 */
#define BOUNCE_BYTES ((size_t) IO_RUN_BLOCKS * CACHE_BLOCK_SIZE)

static pthread_mutex_t bounce_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guarded by bounce_lock: */
static void *bounce_free;       /* free buffers, chained by their first word */
static unsigned bounce_nfree;
static uint64_t bounce_mapped;  /* buffers mapped, in use or free */

static char *
bounce_get (void)
{
  void *p;

  lock_or_abort (&bounce_lock);
  p = bounce_free;
  if (p) {
    bounce_free = *(void **) p;
    bounce_nfree--;
  }
  unlock_or_abort (&bounce_lock);
  if (p)
    return p;

  p = mmap (NULL, BOUNCE_BYTES, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&bounce_lock);
  bounce_mapped++;
  return p;
}

static void
bounce_put (char *p)
{
  if (p == NULL)
    return;
  lock_or_abort (&bounce_lock);
  if (bounce_nfree < cache.cfg.thread_max + 1) {
    *(void **) p = bounce_free;
    bounce_free = p;
    bounce_nfree++;
    p = NULL;
  }
  else
    bounce_mapped--;
  unlock_or_abort (&bounce_lock);
  if (p)
    munmap (p, BOUNCE_BYTES);
}

static void
cleanup_bounce (char **p)
{
  bounce_put (*p);
}
#define CLEANUP_BOUNCE __attribute__ ((cleanup (cleanup_bounce)))

/* Unmap the free bounce buffers (at shutdown). */
void
bounce_drain (void)
{
  void *p;

  lock_or_abort (&bounce_lock);
  p = bounce_free;
  bounce_mapped -= bounce_nfree;
  bounce_free = NULL;
  bounce_nfree = 0;
  unlock_or_abort (&bounce_lock);
  while (p) {
    void *next = *(void **) p;
    munmap (p, BOUNCE_BYTES);
    p = next;
  }
}

uint64_t
bounce_bytes (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&bounce_lock);
  return bounce_mapped * BOUNCE_BYTES;
}

static uint64_t
retry_delay_ms (void)
{
  return cache.cfg.delwri_ms > 1000 ? cache.cfg.delwri_ms : 1000;
}

static bool
is_due (const struct block *b, uint64_t t)
{
  return due_time (b) <= t;
}

/* The blocks of one pass, in the order found. */
DEFINE_VECTOR (wb_list, struct wb_entry);

static int
wb_add (struct wb_list *l, struct block *b)
{
  return wb_list_append (l, (struct wb_entry) { .b = b, .index = b->index });
}

static int
compare_entries (const void *a, const void *b)
{
  const struct wb_entry *x = a, *y = b;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* Whether the block may be taken now, and what to remember if not
 * (shard lock held).
 */
static bool
takeable (struct cache_export *exp, struct block *b, enum wb_mode mode,
          uint64_t t, bool *saw_busy, bool *saw_fence)
{
  if (b->busy & BUSY_WRITE) {
    *saw_busy = true;
    return false;
  }
  if (mode == WB_DUE && !is_due (b, t))
    return false;
  if (in_fence (exp, b->index)) {
    *saw_fence = true;
    return false;
  }
  return true;
}

#define ROOM_BATCH 32           /* blocks make_room writes back at once */
#define DUE_BATCH 4096          /* blocks one flusher round takes */
#define ALL_BATCH 8192          /* blocks a flush or FUA write takes at once */
#define DENSE 4                 /* a flush looks blocks up one by one while
                                   at least 1 in DENSE is dirty */

/* Where a flush or FUA write is in its range of blocks. */
struct wb_cursor {
  uint64_t next, end;           /* blocks [next, end) are left */
  bool scan;                    /* WB_ALL: look up every block number */
  uint64_t *lowest;             /* WB_ALL: a max-heap of ALL_BATCH */
  uint64_t next_due;            /* WB_DUE: earliest due time left */
};

/* Blocks that another thread is writing back or a zero fences: if
 * still dirty afterwards, the flusher looks again this soon.
 */
#define BUSY_RECHECK_MS 50

/* Take block idx of exp if it is dirty and can be taken now. */
static int
take_index (struct cache_export *exp, enum wb_mode mode, uint64_t idx,
            uint64_t t, struct wb_list *l, bool *saw_busy, bool *saw_fence)
{
  struct shard *s = shard_of (exp, idx);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
  struct block *b = block_lookup (s, exp, idx);

  if (b && b->dirty && takeable (exp, b, mode, t, saw_busy, saw_fence)) {
    if (wb_add (l, b) == -1)
      return -1;
    b->busy |= BUSY_WRITE;
  }
  return 0;
}

/* Put v at the root of the max-heap h[0, n) and sift it down. */
static void
sift_down (uint64_t *h, size_t n, uint64_t v)
{
  size_t i = 0, c;

  while ((c = 2 * i + 1) < n) {
    if (c + 1 < n && h[c + 1] > h[c])
      c++;
    if (h[c] <= v)
      break;
    h[i] = h[c];
    i = c;
  }
  h[i] = v;
}

/* Keep the ALL_BATCH lowest block numbers offered in the max-heap
 * h[0, n); returns the new n.
 */
static size_t
lowest_offer (uint64_t *h, size_t n, uint64_t idx)
{
  size_t i;

  if (n < ALL_BATCH) {
    for (i = n++; i > 0 && h[(i - 1) / 2] < idx; i = (i - 1) / 2)
      h[i] = h[(i - 1) / 2];
    h[i] = idx;
  }
  else if (idx < h[0])
    sift_down (h, n, idx);
  return n;
}

/* Sort the max-heap h[0, n) in place, lowest first. */
static void
lowest_sort (uint64_t *h, size_t n)
{
  while (n > 1) {
    uint64_t top = h[0];

    n--;
    sift_down (h, n, h[n]);
    h[n] = top;
  }
}

/* Mark the blocks to write back BUSY_WRITE and list them in l.
 *
 * WB_RANGE and WB_ALL list them in block order, at most ALL_BATCH at a
 * time from c->next on, and move c->next past them: the list stays
 * small however much of the cache is dirty.  A FUA write looks up each
 * block of its range.  So does a flush where dirty blocks are dense;
 * elsewhere it walks the dirty lists, one shard lock at a time, for
 * the ALL_BATCH lowest block numbers, and then looks those up.
 */
static int
collect (struct cache_export *exp, enum wb_mode mode, struct wb_cursor *c,
         struct shard *only, struct wb_list *l, bool *saw_busy,
         bool *saw_fence)
{
  uint64_t t = now_ms ();

  if (mode == WB_RANGE || (mode == WB_ALL && c->scan)) {
    uint64_t left = mode == WB_RANGE ? UINT64_MAX : DENSE * ALL_BATCH;

    for (; c->next < c->end && l->len < ALL_BATCH && left > 0;
         c->next++, left--)
      if (take_index (exp, mode, c->next, t, l, saw_busy, saw_fence) == -1)
        return -1;
    c->scan = l->len == ALL_BATCH;
    return 0;
  }

  if (mode == WB_ALL) {
    uint64_t *h = c->lowest;
    size_t n = 0;

    for (unsigned i = 0; i < cache.nshards; i++) {
      struct shard *s = &cache.shards[i];
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);

      for (struct block *b = exp->shard[i].dirty.head; b; b = b->dnext)
        if (b->index >= c->next && b->index < c->end)
          n = lowest_offer (h, n, b->index);
    }
    if (n == ALL_BATCH) {
      c->scan = h[0] + 1 - c->next <= DENSE * ALL_BATCH;
      c->next = h[0] + 1;
    }
    else
      c->next = c->end;
    lowest_sort (h, n);
    for (size_t i = 0; i < n; i++)
      if (take_index (exp, mode, h[i], t, l, saw_busy, saw_fence) == -1)
        return -1;
    return 0;
  }

  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    size_t taken = 0;

    if (only && s != only)
      continue;
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    for (struct block *b = exp->shard[i].dirty.head; b; b = b->dnext) {
      bool busy = false, fenced = false;

      if (!takeable (exp, b, mode, t, &busy, &fenced)) {
        *saw_busy |= busy;
        *saw_fence |= fenced;
        if (mode == WB_DUE) {
          uint64_t due = busy || fenced ? t + BUSY_RECHECK_MS : due_time (b);
          if (due < c->next_due)
            c->next_due = due;
        }
        continue;
      }
      if (wb_add (l, b) == -1)
        return -1;
      b->busy |= BUSY_WRITE;
      taken++;
      if ((mode == WB_ROOM && taken == ROOM_BATCH) ||
          (mode == WB_DUE && l->len >= DUE_BATCH)) {
        c->next_due = t;        /* more may be due: another round now */
        break;
      }
    }
  }
  return 0;
}

/* One host write of len bytes from src at offset, for entries [i, j]. */
static void
host_write (struct cache_export *exp, struct wb_list *l, size_t i, size_t j,
            const char *src, uint64_t len, uint64_t offset,
            enum io_priority prio)
{
  if (exp->be.pwrite (exp->be.handle, src, len, offset, prio) == 0) {
    STAT_ADD (exp, writebacks, 1);
    STAT_ADD (exp, writeback_bytes, len);
    return;
  }
  int err = errno ? errno : EIO;
  log_error ("%s: write-back of %llu bytes at %llu failed: %m; the data "
             "stays in the cache and will be written again",
             exp->name, (unsigned long long) len,
             (unsigned long long) offset);
  STAT_ADD (exp, writeback_errors, 1);
  record_error (exp, err);
  for (size_t k = i; k <= j; k++)
    if (l->ptr[k].err == 0)
      l->ptr[k].err = err;
}

/* Copy, write and finish entries [start, start+n) (sorted). */
static void
write_batch (struct cache_export *exp, struct wb_list *l, size_t start,
             size_t n, enum io_priority prio, char *bounce,
             uint64_t *written)
{
  struct wb_entry *e = &l->ptr[start];

  for (size_t i = 0; i < n; i++) {
    struct shard *s = shard_of (exp, e[i].index);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);

    memcpy (bounce + i * CACHE_BLOCK_SIZE, e[i].b->data, CACHE_BLOCK_SIZE);
    e[i].gen = e[i].b->gen;
    e[i].mask = e[i].b->dirty;
    e[i].err = 0;
  }

  for (size_t i = 0; i < n; ) {
    uint8_t full = block_range_mask (exp, e[i].index);

    if (e[i].mask == full) {
      size_t j = i;
      uint64_t offset = e[i].index * CACHE_BLOCK_SIZE, len;

      while (j + 1 < n && e[j + 1].index == e[j].index + 1 &&
             e[j + 1].mask == block_range_mask (exp, e[j + 1].index))
        j++;
      len = (j - i + 1) * CACHE_BLOCK_SIZE;
      if (offset + len > exp->be.size)
        len = exp->be.size - offset;
      host_write (exp, l, start + i, start + j,
                  bounce + i * CACHE_BLOCK_SIZE, len, offset, prio);
      i = j + 1;
      continue;
    }
    /* A partly dirty block: one write per run of dirty sectors. */
    for (unsigned a = 0; a < SECTORS_PER_BLOCK; ) {
      unsigned z = a;
      if (!(e[i].mask & (1u << a))) {
        a++;
        continue;
      }
      while (z < SECTORS_PER_BLOCK && (e[i].mask & (1u << z)))
        z++;
      host_write (exp, l, start + i, start + i,
                  bounce + i * CACHE_BLOCK_SIZE + a * SECTOR_SIZE,
                  (z - a) * SECTOR_SIZE,
                  e[i].index * CACHE_BLOCK_SIZE + a * SECTOR_SIZE, prio);
      a = z;
    }
    i++;
  }

  for (size_t i = 0; i < n; i++) {
    struct shard *s = shard_of (exp, e[i].index);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    struct block *b = e[i].b;

    b->busy &= ~BUSY_WRITE;
    if (e[i].err == 0) {
      if (b->gen == e[i].gen)
        block_set_clean (s, b);
      (*written)++;
    }
    else
      b->retry_ms = now_ms () + retry_delay_ms ();
    if (b->dirty)
      flusher_note_still_dirty (b);
    shard_wake (s);
  }
}

/* Wait until no dirty block of exp in [first, end) is being written
 * back by someone else.
 */
static void
wait_busy (struct cache_export *exp, uint64_t first, uint64_t end)
{
  for (unsigned i = 0; i < cache.nshards; i++) {
    struct shard *s = &cache.shards[i];
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    bool busy;

    do {
      busy = false;
      for (struct block *b = exp->shard[i].dirty.head; b; b = b->dnext)
        if ((b->busy & BUSY_WRITE) && b->index >= first && b->index < end) {
          busy = true;
          shard_wait (s);
          break;
        }
    } while (busy);
  }
}

/* Write back the blocks listed in l, all BUSY_WRITE, and give them
 * back.  Returns the first error, or 0.
 */
static int
write_list (struct cache_export *exp, enum wb_mode mode, struct wb_list *l,
            char **bounce, uint64_t *written)
{
  enum io_priority prio = mode == WB_DUE ? IO_PRIO_BACKGROUND : IO_PRIO_CLIENT;

  if (*bounce == NULL && (*bounce = bounce_get ()) == NULL) {
    int err = errno ? errno : ENOMEM;

    log_error ("%s: write-back: allocating a buffer: %m", exp->name);
    /* Give the blocks back untouched. */
    for (size_t i = 0; i < l->len; i++) {
      struct shard *s = shard_of (exp, l->ptr[i].index);
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
      l->ptr[i].b->busy &= ~BUSY_WRITE;
      shard_wake (s);
    }
    return err;
  }

  if (mode == WB_DUE || mode == WB_ROOM)  /* the others are in order */
    qsort (l->ptr, l->len, sizeof *l->ptr, compare_entries);
  for (size_t i = 0; i < l->len; i += IO_RUN_BLOCKS) {
    size_t n = l->len - i < IO_RUN_BLOCKS ? l->len - i : IO_RUN_BLOCKS;
    write_batch (exp, l, i, n, prio, *bounce, written);
  }
  for (size_t i = 0; i < l->len; i++)
    if (l->ptr[i].err)
      return l->ptr[i].err;
  return 0;
}

int
writeback (struct cache_export *exp, enum wb_mode mode, uint64_t first,
           uint64_t end, struct shard *only, uint64_t *written_ret,
           uint64_t *next_due)
{
  bool waits = mode == WB_ALL || mode == WB_RANGE;
  CLEANUP_BOUNCE char *bounce = NULL;
  CLEANUP_FREE uint64_t *lowest = NULL;
  struct wb_list l = { 0 };
  uint64_t written = 0;
  int first_err = 0;

  if (end > exp->nblocks)
    end = exp->nblocks;
  if (mode == WB_ALL &&
      (lowest = malloc (ALL_BATCH * sizeof *lowest)) == NULL) {
    log_error ("%s: write-back: %m", exp->name);
    return -1;
  }

  /* Flush and FUA take a second round for blocks that were being
   * written back by someone else, or fenced by a zero, the first time.
   */
  for (int round = 0; round < (waits ? 2 : 1); round++) {
    bool saw_busy = false, saw_fence = false;
    struct wb_cursor c = { .next = first, .end = end, .lowest = lowest,
                           .next_due = UINT64_MAX };

    do {
      int r, err;

      l.len = 0;
      r = collect (exp, mode, &c, only, &l, &saw_busy, &saw_fence);
      if (r == -1) {
        log_error ("%s: write-back: %m", exp->name);
        first_err = first_err ? first_err : errno;
      }
      if (l.len > 0 &&
          (err = write_list (exp, mode, &l, &bounce, &written)) != 0 &&
          first_err == 0)
        first_err = err;
      if (r == -1)
        break;
    } while (waits && c.next < c.end);
    if (next_due && c.next_due < *next_due)
      *next_due = c.next_due;
    if (!waits || (!saw_busy && !saw_fence))
      break;
    if (saw_fence)
      wait_fences (exp, first, end);
    if (saw_busy)
      wait_busy (exp, first, end);
  }
  wb_list_reset (&l);

  if (written_ret)
    *written_ret = written;
  if (first_err) {
    errno = first_err;
    return -1;
  }
  return 0;
}

int
cache_flush (struct cache_export *exp)
{
  struct timespec t0, t1;
  int r = 0, err = 0, pending;

  clock_gettime (CLOCK_MONOTONIC, &t0);
  STAT_ADD (exp, flushes, 1);
  if (writeback (exp, WB_ALL, 0, exp->nblocks, NULL, NULL, NULL) == -1) {
    r = -1;
    err = errno;
  }
  /* Keep going: what was written must still be made durable. */
  if (!exp->be.durable_writes && !exp->be.readonly &&
      exp->be.flush (exp->be.handle) == -1 && r == 0) {
    r = -1;
    err = errno;
  }
  pending = take_error (exp);
  if (r == 0 && pending) {
    r = -1;
    err = pending;
  }
  clock_gettime (CLOCK_MONOTONIC, &t1);
  STAT_ADD (exp, flush_ns_total,
            (uint64_t) (t1.tv_sec - t0.tv_sec) * 1000000000
            + t1.tv_nsec - t0.tv_nsec);
  errno = err;
  return r;
}
