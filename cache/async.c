/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: cache misses and durable writes, continuation style.
 *
 * An event loop must never wait for the host.  For a read, it walks
 * the request's blocks once: resident bytes are copied out at once,
 * missing blocks are made resident and marked BUSY_READ, and the list
 * of those blocks is what cache_io_run later fills, in runs of
 * neighbours, one host read each, straight into the blocks.  For a
 * durable write, the loop puts the data into the blocks as a delayed
 * write would; cache_io_run writes those blocks back and makes them
 * durable (commit_write).  Either way the loop's request crosses to one
 * other thread, once, and nothing is walked or copied twice.
 *
 * Anything the walk cannot take in stride (a block another request is
 * filling, a full shard that needs a write-back, a block holding only
 * some sectors) makes the walk give up, giving back the blocks it took:
 * the caller falls back to cache_read, which waits where it must.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

enum io_kind { IO_KIND_READ, IO_KIND_COMMIT };

struct cache_io {
  struct cache_export *exp;
  enum io_kind kind;
  uint64_t offset, count;       /* the request */
  char *dest;                   /* READ: the caller's buffer */
  unsigned flags;               /* COMMIT: cache_write's flags */
  unsigned n;                   /* blocks[], in index order */
  struct iovec *iov;            /* [n]: their memory, for a caller's I/O */
  uint32_t *gens;               /* COMMIT: [n], b->gen when taken */
  struct block *blocks[];       /* READ: to fill; COMMIT: being written */
};

/* Give back blocks taken by a walk that gave up (no lock held). */
static void
release_blocks (struct cache_export *exp, struct block **blocks, unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    struct block *b = blocks[i];
    struct shard *s = shard_of (exp, b->index);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);

    b->busy &= ~BUSY_READ;
    if (b->valid == 0 && b->dirty == 0 && b->busy == 0)
      block_drop (s, b);
    shard_wake (s);
  }
}

/* The end of a read's walk over its blocks (shard held): count the
 * request, note it for read-ahead, and return 1 if every block was
 * resident, else 2 with *iop describing the n blocks to fill.
 */
static int
read_walked (struct cache_export *exp, struct shard **held, uint64_t last,
             uint64_t offset, uint64_t count, struct cache_io *io,
             unsigned n, char *dest, struct cache_io **iop)
{
  struct shard *s = shard_of (exp, last);

  hold_shard (held, s);
  EXP_SHARD (exp, s)->read_requests++;
  EXP_SHARD (exp, s)->read_bytes += count;
  release_shard (held);
  readahead_note (exp, offset, count);
  if (n == 0) {
    free (io);
    return 1;
  }
  io->exp = exp;
  io->kind = IO_KIND_READ;
  io->offset = offset;
  io->count = count;
  io->dest = dest;
  io->n = n;
  *iop = io;
  return 2;
}

int
cache_read_start (struct cache_export *exp, void *buf, uint64_t count,
                  uint64_t offset, struct cache_io **iop)
{
  uint64_t first, last;
  struct shard *held = NULL;
  struct cache_io *io;
  char *dest = buf;
  unsigned n = 0;

  *iop = NULL;
  if (check_range (exp, count, offset, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 1;
  if (!may_skip_revalidation (exp))
    return 0;

  first = offset / CACHE_BLOCK_SIZE;
  last = (offset + count - 1) / CACHE_BLOCK_SIZE;
  io = NULL;                    /* made at the first miss: a hit needs none */

  for (uint64_t idx = first; idx <= last; idx++) {
    uint32_t lo, hi;
    uint8_t need;
    struct shard *s = shard_of (exp, idx);
    struct block *b;

    block_span (idx, offset, count, &lo, &hi);
    need = sectors_touched (lo, hi);
    hold_shard (&held, s);
    b = block_lookup (s, exp, idx);
    if (b && (b->valid & need) == need) {
      memcpy (dest + (idx * CACHE_BLOCK_SIZE + lo - offset), b->data + lo,
              hi - lo);
      block_reference (s, b);
      EXP_SHARD (exp, s)->hits++;
      continue;
    }
    if (io == NULL) {
      uint64_t left = last - idx + 1;

      io = malloc (sizeof *io + left * (sizeof io->blocks[0]
                                        + sizeof io->iov[0]));
      if (io == NULL) {
        release_shard (&held);
        return -1;
      }
      io->iov = (struct iovec *) &io->blocks[left];
    }
    if (b == NULL)
      b = block_alloc (s, exp, idx);
    if (b == NULL || b->busy || b->valid != 0) {
      /* Full of dirty blocks, or someone else's I/O, or a block whose
       * sectors must be merged: cache_read's business.
       */
      release_shard (&held);
      release_blocks (exp, io->blocks, n);
      free (io);
      return 0;
    }
    b->busy |= BUSY_READ;
    io->blocks[n++] = b;
  }
  return read_walked (exp, &held, last, offset, count, io, n, dest, iop);
}

/* The walk of cache_read_pinned and cache_read_start_pinned: pin
 * every block of the range and describe it in iov; a block that holds
 * nothing yet is taken to be filled if iop is set, else the walk gives
 * up.
 */
static int
pinned_walk (struct cache_export *exp, uint64_t count, uint64_t offset,
             struct iovec *iov, size_t max_iov, size_t *niov,
             struct cache_pin **pins, size_t *npins, struct cache_io **iop)
{
  uint64_t first, last, nblocks;
  struct shard *held = NULL;
  struct cache_io *io = NULL;
  size_t ni = 0, np = 0;
  unsigned n = 0;

  *niov = *npins = 0;
  if (iop)
    *iop = NULL;
  if (check_range (exp, count, offset, EINVAL) == -1)
    return -1;
  if (count == 0)
    return 1;
  if (!may_skip_revalidation (exp))
    return 0;

  first = offset / CACHE_BLOCK_SIZE;
  last = (offset + count - 1) / CACHE_BLOCK_SIZE;
  nblocks = last - first + 1;
  /* Pins keep blocks from eviction: leave most of the cache free to
   * replace, whatever slow clients hold.
   */
  if (__atomic_add_fetch (&cache.pinned, nblocks, __ATOMIC_RELAXED)
      > cache.max_pinned) {
    __atomic_sub_fetch (&cache.pinned, nblocks, __ATOMIC_RELAXED);
    return 0;
  }
  if (iop) {
    io = malloc (sizeof *io + nblocks * (sizeof io->blocks[0]
                                         + sizeof io->iov[0]));
    if (io == NULL) {
      __atomic_sub_fetch (&cache.pinned, nblocks, __ATOMIC_RELAXED);
      return -1;
    }
    io->iov = (struct iovec *) &io->blocks[nblocks];
  }

  for (uint64_t idx = first; idx <= last; idx++) {
    uint32_t lo, hi;
    uint8_t need;
    struct shard *s = shard_of (exp, idx);
    struct block *b;
    char *p;

    block_span (idx, offset, count, &lo, &hi);
    need = sectors_touched (lo, hi);
    hold_shard (&held, s);
    b = block_lookup (s, exp, idx);
    if (b && (b->valid & need) == need) {
      block_reference (s, b);
      EXP_SHARD (exp, s)->hits++;
    }
    else {
      if (io == NULL)
        goto give_up;           /* hits only */
      if (b == NULL)
        b = block_alloc (s, exp, idx);
      if (b == NULL || b->busy || b->valid != 0)
        goto give_up;
      b->busy |= BUSY_READ;
      io->blocks[n++] = b;
    }
    p = b->data + lo;
    if (ni > 0 && (char *) iov[ni - 1].iov_base + iov[ni - 1].iov_len == p)
      iov[ni - 1].iov_len += hi - lo;
    else if (ni == max_iov)
      goto give_up;
    else
      iov[ni++] = (struct iovec) { .iov_base = p, .iov_len = hi - lo };
    __atomic_add_fetch (&b->pins, 1, __ATOMIC_RELAXED);
    pins[np++] = (struct cache_pin *) b;
  }
  *niov = ni;
  *npins = np;
  /* No dest: the reply is sent from the blocks. */
  return read_walked (exp, &held, last, offset, count, io, n, NULL, iop);

 give_up:
  /* Blocks taken are dropped (orphans while pinned: the unpin frees
   * them); the budget not used by a pin is given back here, the rest
   * by cache_unpin.
   */
  release_shard (&held);
  if (io)
    release_blocks (exp, io->blocks, n);
  cache_unpin (pins, np);
  __atomic_sub_fetch (&cache.pinned, nblocks - np, __ATOMIC_RELAXED);
  free (io);
  return 0;
}

int
cache_read_pinned (struct cache_export *exp, uint64_t count, uint64_t offset,
                   struct iovec *iov, size_t max_iov, size_t *niov,
                   struct cache_pin **pins, size_t *npins)
{
  return pinned_walk (exp, count, offset, iov, max_iov, niov, pins, npins,
                      NULL);
}

int
cache_read_start_pinned (struct cache_export *exp, uint64_t count,
                         uint64_t offset, struct iovec *iov, size_t max_iov,
                         size_t *niov, struct cache_pin **pins,
                         size_t *npins, struct cache_io **iop)
{
  return pinned_walk (exp, count, offset, iov, max_iov, niov, pins, npins,
                      iop);
}

int
cache_write_start (struct cache_export *exp, const void *buf, uint64_t count,
                   uint64_t offset, unsigned flags, struct cache_io **iop)
{
  struct cache_io *io;
  int r;

  *iop = NULL;
  r = insert_nowait (exp, buf, count, offset);
  if (r != 1)
    return r;
  if (count == 0 || write_is_delayed (flags)) {
    if (cache.cfg.delwri_ms == 0)
      flusher_kick ();
    return 1;
  }
  {
    uint64_t nb = (offset + count - 1) / CACHE_BLOCK_SIZE
      - offset / CACHE_BLOCK_SIZE + 1;

    io = malloc (sizeof *io + nb * (sizeof io->blocks[0] + sizeof io->iov[0]
                                    + sizeof io->gens[0]));
    if (io == NULL)
      return -1;
    *io = (struct cache_io) {
      .exp = exp, .kind = IO_KIND_COMMIT, .offset = offset, .count = count,
      .flags = flags,
    };
    io->iov = (struct iovec *) &io->blocks[nb];
    io->gens = (uint32_t *) &io->iov[nb];
  }
  *iop = io;
  return 2;
}

static unsigned run_end (const struct cache_io *io, unsigned i);

/* Fill the blocks of a read, a run of neighbours at a time. */
static int
run_read (struct cache_io *io)
{
  struct cache_export *exp = io->exp;
  unsigned i = 0;
  int r = 0, err = 0;

  while (i < io->n) {
    unsigned j = run_end (io, i);

    /* Every run is filled (and its blocks given back), error or not. */
    if (fill_run_copy (exp, &io->blocks[i], j - i, IO_PRIO_CLIENT, false,
                       io->dest, io->offset, io->count) == -1 && r == 0) {
      r = -1;
      err = errno;
    }
    i = j;
  }
  errno = err;
  return r;
}

int
cache_io_run (struct cache_io *io)
{
  int r, err;

  if (io->kind == IO_KIND_READ)
    r = run_read (io);
  else
    r = commit_write (io->exp, io->offset / CACHE_BLOCK_SIZE,
                      (io->offset + io->count - 1) / CACHE_BLOCK_SIZE + 1,
                      io->flags, false);
  err = errno;
  free (io);
  errno = err;
  return r;
}

/* The runs of a read: neighbouring blocks, at most IO_RUN_BLOCKS. */
static unsigned
run_end (const struct cache_io *io, unsigned i)
{
  unsigned j = i + 1;

  while (j < io->n && j - i < IO_RUN_BLOCKS
         && io->blocks[j]->index == io->blocks[j - 1]->index + 1)
    j++;
  return j;
}

unsigned
cache_io_reads (struct cache_io *io, struct cache_host_read *reads,
                unsigned max)
{
  struct cache_export *exp = io->exp;
  unsigned nr = 0;

  if (io->kind != IO_KIND_READ)
    return 0;
  for (unsigned i = 0; i < io->n; ) {
    unsigned j = run_end (io, i);
    uint64_t offset = io->blocks[i]->index * CACHE_BLOCK_SIZE;

    if (nr == max)
      return 0;
    /* The blocks hold nothing and nobody else touches them while they
     * are BUSY_READ: the host reads straight into them.
     */
    for (unsigned k = i; k < j; k++) {
      uint64_t start = io->blocks[k]->index * CACHE_BLOCK_SIZE;
      uint64_t left = exp->be.size - start;

      io->iov[k].iov_base = io->blocks[k]->data;
      io->iov[k].iov_len = left < CACHE_BLOCK_SIZE ? left : CACHE_BLOCK_SIZE;
    }
    reads[nr++] = (struct cache_host_read) {
      .offset = offset, .iov = &io->iov[i], .niov = j - i,
    };
    i = j;
  }
  return nr;
}

int
cache_io_finish (struct cache_io *io, int err)
{
  struct cache_export *exp = io->exp;

  if (err)
    log_error ("%s: reading %llu bytes at %llu from the host: %s",
               exp->name, (unsigned long long) io->count,
               (unsigned long long) io->offset, strerror (err));
  for (unsigned i = 0; i < io->n; ) {
    unsigned j = run_end (io, i);

    fill_complete (exp, &io->blocks[i], j - i, err, false, NULL, io->dest,
                   io->offset, io->count);
    i = j;
  }
  free (io);
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

/* Give back the blocks a durable write took for write-back, cleaning
 * those not written to since if clean is true.
 */
static void
release_written (struct cache_io *io, bool clean)
{
  for (unsigned i = 0; i < io->n; i++) {
    struct block *b = io->blocks[i];
    struct shard *s = shard_of (io->exp, b->index);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);

    b->busy &= ~BUSY_WRITE;
    if (clean && b->gen == io->gens[i])
      block_set_clean (s, b);
    if (b->dirty)
      flusher_note_still_dirty (b);
    shard_wake (s);
  }
  io->n = 0;
}

int
cache_io_writes (struct cache_io *io, struct cache_host_read *writes,
                 unsigned max, bool *sync)
{
  struct cache_export *exp = io->exp;
  enum commit_level level = cache.cfg.commit;
  uint64_t first, end;
  struct shard *held = NULL;
  unsigned nr = 0;

  if (io->kind != IO_KIND_COMMIT)
    return -1;
  *sync = (level == COMMIT_HIGH
           || ((io->flags & CACHE_FUA) && level == COMMIT_MEDIUM))
    && !exp->be.durable_writes;
  first = io->offset / CACHE_BLOCK_SIZE;
  end = (io->offset + io->count - 1) / CACHE_BLOCK_SIZE + 1;
  io->n = 0;
  for (uint64_t idx = first; idx < end; idx++) {
    struct shard *s = shard_of (exp, idx);
    struct block *b;

    hold_shard (&held, s);
    b = block_lookup (s, exp, idx);
    if (b == NULL || b->dirty == 0)
      continue;                 /* written back already */
    /* Someone else's write-back, a zero under way, or dirty sectors
     * that are not the whole block: cache_io_run's business.
     */
    if (b->busy || b->dirty != block_range_mask (exp, idx)
        || in_fence (exp, idx)) {
      release_shard (&held);
      release_written (io, false);
      return -1;
    }
    b->busy |= BUSY_WRITE;
    io->gens[io->n] = b->gen;
    io->blocks[io->n++] = b;
  }
  release_shard (&held);

  for (unsigned i = 0; i < io->n; ) {
    unsigned j = run_end (io, i);

    if (nr == max) {
      release_written (io, false);
      return -1;
    }
    for (unsigned k = i; k < j; k++) {
      uint64_t left = exp->be.size - io->blocks[k]->index * CACHE_BLOCK_SIZE;

      io->iov[k].iov_base = io->blocks[k]->data;
      io->iov[k].iov_len = left < CACHE_BLOCK_SIZE ? left : CACHE_BLOCK_SIZE;
    }
    writes[nr++] = (struct cache_host_read) {
      .offset = io->blocks[i]->index * CACHE_BLOCK_SIZE,
      .iov = &io->iov[i], .niov = j - i,
    };
    i = j;
  }
  return nr;
}

int
cache_io_writes_done (struct cache_io *io, bool written, int sync_err)
{
  struct cache_export *exp = io->exp;
  int err, pending;

  if (!written) {
    release_written (io, false);
    return 1;
  }
  for (unsigned i = 0; i < io->n; ) {
    unsigned j = run_end (io, i);
    uint64_t bytes = 0;

    for (unsigned k = i; k < j; k++)
      bytes += io->iov[k].iov_len;
    STAT_ADD (exp, writebacks, 1);
    STAT_ADD (exp, writeback_bytes, bytes);
    i = j;
  }
  release_written (io, true);
  err = sync_err;
  if (err)
    log_error ("%s: fdatasync: %s", exp->name, strerror (err));
  pending = take_error (exp);
  if (err == 0)
    err = pending;
  free (io);
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

void
cache_io_cancel (struct cache_io *io)
{
  if (io == NULL)
    return;
  if (io->kind == IO_KIND_READ)
    release_blocks (io->exp, io->blocks, io->n);
  else
    release_written (io, false);
  free (io);
}
