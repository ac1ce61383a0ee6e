/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the io-blk style write-back buffer cache.
 *
 * One cache per process, shared by every export and every connection
 * of both front ends (the daemon and the nbdkit plugin).  It speaks in
 * byte ranges of an export and knows nothing of NBD: the front end
 * maps NBD_CMD_* and their flags onto these calls.
 *
 * The rules, which the front ends advertise (SPEC section 6):
 *
 * - A read always returns the newest acknowledged write from any
 *   connection, written back or not.
 * - Write classes: CACHE_FUA marks "file-system data", its absence
 *   "user data".  What happens before cache_write returns depends on
 *   commit=:
 *     high:   every write is durable before return (SYNC);
 *     medium: FUA writes are durable before return, plain writes are
 *             delayed (DELWRI);
 *     low:    FUA writes reach the host file before return but are
 *             not synced (ASYNC), plain writes are delayed;
 *     none:   every write is delayed; front ends do not advertise FUA.
 *   "Durable" means written through an O_SYNC fd or followed by
 *   fdatasync.
 * - A delayed block reaches the host no later than min(first dirtied +
 *   postpone, last dirtied + delwri); delwri=0 writes back at once in
 *   the background.
 * - cache_flush writes back every dirty block of the export (written by
 *   any connection) and makes it durable, at every commit level; it
 *   keeps going after an error and returns the first one.  So
 *   NBD_FLAG_CAN_MULTI_CONN is safe to advertise.
 * - A failed write-back keeps the block dirty (it is retried), is
 *   logged, and its error (EIO, ENOSPC, ...) is returned by the next
 *   cache_flush or FUA/SYNC write on that export.
 *
 * Every function may be called from any thread.  Functions return 0 or
 * -1 with errno set.  Nothing here holds a cache lock across host I/O.
 */
#ifndef NBDL_CACHE_H
#define NBDL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "configuration.h"
#include "device.h"
#include "iothreads.h"

struct cache_export;
struct cache_pin;
struct iovec;

/* Flags of cache_write, cache_zero and cache_trim. */
#define CACHE_FUA       (1u << 0)   /* "file-system data" (NBD_CMD_FLAG_FUA) */
#define CACHE_MAY_TRIM  (1u << 1)   /* zero: may deallocate (no NO_HOLE) */
#define CACHE_FAST_ZERO (1u << 2)   /* zero: fail with ENOTSUP unless fast */

/* Set up the process-wide cache from the blk group: memory bound,
 * alloc= (allocated now), hash=, delwri=/postpone=, commit=, ra=,
 * protect=, wipe=, rmvto=.  Starts the background flusher thread
 * unless start_flusher is false: the nbdkit plugin starts it after
 * nbdkit forks (cache_start_flusher), and tests drive write-back by
 * hand (cache_writeback_due).  The read-ahead thread starts with the
 * first read-ahead.
 */
extern int cache_init (const struct blk_config *blk, bool start_flusher);
extern int cache_start_flusher (void);

/* Write back every dirty block of every export (durably), stop the
 * flusher and free the cache.  Exports must have been closed first.
 * Returns the first write-back error, if any.
 */
extern int cache_shutdown (void);

/* What an export reads from and writes back to.  The cache calls
 * these without holding any lock, from client threads (priority
 * IO_PRIO_CLIENT: someone is waiting) and from the flusher and
 * read-ahead (IO_PRIO_BACKGROUND).  Each returns 0 or -1 with errno
 * set.  Transfers are whole: a short one is an error.  Tests supply
 * their own backend (a fake device with fault injection).
 */
struct cache_backend {
  const char *name;             /* export name, for messages */
  uint64_t size;                /* export size in bytes */
  uint32_t blksz;               /* minimum block size (blksz=) */
  uint32_t preferred;           /* the host's I/O size; 0: none */
  bool readonly;
  bool durable_writes;          /* writes are durable at once (O_SYNC, memory) */
  bool can_revalidate;          /* revalidate is meaningful (rmvto=) */
  void *handle;
  int (*pread) (void *handle, void *buf, size_t count, uint64_t offset,
                enum io_priority prio);
  int (*pwrite) (void *handle, const void *buf, size_t count,
                 uint64_t offset, enum io_priority prio);
  /* Optional: pread into several buffers (cache blocks, at most
   * IO_RUN_BLOCKS of them), so fills need no bounce buffer.
   */
  int (*preadv) (void *handle, const struct iovec *iov, int iovcnt,
                 uint64_t offset, enum io_priority prio);
  int (*flush) (void *handle);
  int (*trim) (void *handle, uint64_t offset, uint64_t count);
  /* fast_only: fail with ENOTSUP rather than write zeroes slowly. */
  int (*zero) (void *handle, uint64_t offset, uint64_t count, bool may_trim,
               bool fast_only);
  int (*extents) (void *handle, uint64_t offset, uint64_t count,
                  device_extent_fn fn, void *opaque);
  /* 1 if the host changed behind our back, 0 if not, -1 on error. */
  int (*revalidate) (void *handle);
  /* Called by cache_export_close after the final write-back. */
  void (*close) (void *handle);
};

/* An export over any backend (the struct is copied). */
extern struct cache_export *cache_export_open_backend
  (const struct cache_backend *backend);

/* An export over an open device, its I/O done on the nio= threads
 * (the cache does not take ownership of dev: close the export, then
 * the device).
 */
extern struct cache_export *cache_export_open (struct device *dev);

/* An export over memory (blk ramdisk=): size bytes, zeroed.  Its data
 * lives in the backend; cached blocks of it are never dirty for long.
 * readonly (blk ro) refuses writes as a read-only file does.
 */
extern struct cache_export *cache_export_open_ram (const char *name,
                                                   uint64_t size,
                                                   uint32_t sector,
                                                   bool readonly);

/* Write back everything dirty of the export (durably), then forget
 * it.  Returns the first write-back error; the export is freed anyway.
 */
extern int cache_export_close (struct cache_export *exp);

extern const char *cache_export_name (const struct cache_export *exp);
extern uint64_t cache_export_size (const struct cache_export *exp);
extern uint32_t cache_export_blksz (const struct cache_export *exp);
/* The NBD preferred block size: the largest of blksz, the host's I/O
 * size and a cache block.
 */
extern uint32_t cache_export_preferred (const struct cache_export *exp);
extern bool cache_export_readonly (const struct cache_export *exp);
/* Whether FUA means anything (commit is not none). */
extern bool cache_export_can_fua (const struct cache_export *exp);

/* Data.  Ranges must lie within the export (EINVAL otherwise, ENOSPC
 * for writes past the end); any alignment is accepted.  Writes to a
 * read-only export fail with EPERM.
 */
extern int cache_read (struct cache_export *exp, void *buf, uint64_t count,
                       uint64_t offset);
extern int cache_write (struct cache_export *exp, const void *buf,
                        uint64_t count, uint64_t offset, unsigned flags);
extern int cache_zero (struct cache_export *exp, uint64_t count,
                       uint64_t offset, unsigned flags);
extern int cache_trim (struct cache_export *exp, uint64_t count,
                       uint64_t offset, unsigned flags);
extern int cache_flush (struct cache_export *exp);
/* A client that wrote went away without FLUSH: its data is safe in
 * the cache and delwri= would write it back anyway, but start now, so
 * that a crash soon after loses as little as possible.  The flusher
 * thread does a cache_flush of the export (and logs a failure); this
 * returns at once.  Both front ends call it when such a client leaves.
 */
extern void cache_flush_soon (struct cache_export *exp);

/* The fast path for an event loop: serve a read only if every byte is
 * already in the cache.  Returns 1 if served, 0 if it would need host
 * I/O (nothing was done), -1 on error.
 */
extern int cache_read_nowait (struct cache_export *exp, void *buf,
                              uint64_t count, uint64_t offset);

/* The same for writes: apply a write only if no host I/O is needed
 * (every block resident or free to take, no partial sector to read,
 * and the commit level delays it).  Returns 1 if done, 0 if the caller
 * must use cache_write (part of the data may already be in the cache:
 * writing it again is harmless), -1 on error.
 */
extern int cache_write_nowait (struct cache_export *exp, const void *buf,
                               uint64_t count, uint64_t offset,
                               unsigned flags);

/* Continuation-style reads and durable writes, for an event loop:
 * the part the cache can do at once is done on the loop, in one walk
 * over the blocks, and what needs the host is returned as a cache_io
 * for cache_io_run to do on a thread that may block (an I/O thread).
 *
 * cache_read_start copies the resident part of the range into buf,
 * makes the missing blocks resident and marks them busy (so nothing
 * else reads or writes them until cache_io_run is done) and returns 2
 * with *io set: cache_io_run then reads them from the host, straight
 * into their memory, and copies the rest of the range into buf.  It
 * returns 1 if every byte was resident (like cache_read_nowait), 0 if
 * it cannot be done this way (a block being filled by someone else,
 * room needs a write-back first, a block holding part of its sectors,
 * an rmvto= revalidation due): nothing is held then, use cache_read.
 * -1 on error.
 *
 * cache_write_start applies the write to the cache as
 * cache_write_nowait would, whatever the commit level.  Returns 1 if
 * that was all (a delayed write), 2 with *io set if the commit level
 * wants the blocks written back (and made durable) before the reply,
 * which cache_io_run does; 0 and -1 as cache_write_nowait.
 *
 * cache_io_run returns 0 or -1 with errno set (the host error, or a
 * pending write-back error for durable writes) and frees io.
 */
struct cache_io;
extern int cache_read_start (struct cache_export *exp, void *buf,
                             uint64_t count, uint64_t offset,
                             struct cache_io **io);
/* cache_read_start for replies sent straight from the cache (see
 * cache_read_pinned): every block of the range, resident or to be
 * filled, is pinned and described in iov; nothing is copied.  Once
 * cache_io_run or cache_io_finish has succeeded the iovecs hold the
 * data; send it, then cache_unpin.  On failure of the I/O, unpin too.
 * Returns like cache_read_start (0 also when too much of the cache is
 * pinned already).
 */
extern int cache_read_start_pinned (struct cache_export *exp,
                                    uint64_t count, uint64_t offset,
                                    struct iovec *iov, size_t max_iov,
                                    size_t *niov, struct cache_pin **pins,
                                    size_t *npins, struct cache_io **io);
extern int cache_write_start (struct cache_export *exp, const void *buf,
                              uint64_t count, uint64_t offset,
                              unsigned flags, struct cache_io **io);
extern int cache_io_run (struct cache_io *io);
/* For a front end that does the host reads of a read's cache_io
 * itself (an event loop with io_uring): cache_io_reads describes them,
 * each one host transfer into iovecs over the blocks' memory, and
 * returns how many (0 if io is not a read, or needs more than max).
 * Once all are done, cache_io_finish completes the read with 0 or the
 * first errno, as cache_io_run would have, and frees io.  A short
 * transfer is the caller's to continue.
 */
struct cache_host_read {
  uint64_t offset;
  struct iovec *iov;
  unsigned niov;
};
extern unsigned cache_io_reads (struct cache_io *io,
                                struct cache_host_read *reads,
                                unsigned max);
extern int cache_io_finish (struct cache_io *io, int err);
/* The same for a durable write: cache_io_writes takes the written
 * blocks for write-back and describes the host writes (straight from
 * the blocks' memory), and whether an fdatasync must follow (*sync).
 * Returns how many, or -1 if this cannot be done so (a block being
 * written back by someone else, one dirty only in part, a zero under
 * way, more than max writes): nothing is held then; use cache_io_run.
 * cache_io_writes_done: written says every write completed in full;
 * sync_err is the fdatasync's errno (0: fine or not needed).  Returns 0
 * or -1 with errno set (sync_err, or a pending write-back error), io
 * freed; or 1 if not written: the blocks stay dirty and io is for
 * cache_io_run to do properly (and to report what went wrong).
 */
extern int cache_io_writes (struct cache_io *io,
                            struct cache_host_read *writes, unsigned max,
                            bool *sync);
extern int cache_io_writes_done (struct cache_io *io, bool written,
                                 int sync_err);
/* Give up on io without doing it: a read's blocks are given back; a
 * write stays in the cache as a delayed write.
 */
extern void cache_io_cancel (struct cache_io *io);

/* Zero-copy reads for an event loop.  Like cache_read_nowait, but
 * instead of copying, describe the bytes where they lie in the cache:
 * fill iov (at most max_iov entries; blocks that are neighbours in
 * memory share one) and pin every block used in pins, which must have
 * room for CACHE_PINS_FOR (count, offset) entries.  A pinned block
 * keeps its memory until cache_unpin: it is never evicted nor reused
 * for other data, though a write, zero or trim that overlaps the read
 * (a concurrent request, whose order against the read is undefined)
 * may still change its bytes.  Give the pins back once the bytes have
 * been sent.  Returns 1 if served (*niov iovecs, *npins pins), 0 if it
 * would need host I/O or too much of the cache is pinned already
 * (nothing is pinned then: read with cache_read), -1 on error.
 */
struct cache_pin;
#define CACHE_PINS_FOR(count, offset) \
  ((((offset) % CACHE_BLOCK_SIZE) + (count) + CACHE_BLOCK_SIZE - 1) \
   / CACHE_BLOCK_SIZE)
struct iovec;
extern int cache_read_pinned (struct cache_export *exp, uint64_t count,
                              uint64_t offset, struct iovec *iov,
                              size_t max_iov, size_t *niov,
                              struct cache_pin **pins, size_t *npins);
/* Any thread. */
extern void cache_unpin (struct cache_pin *const *pins, size_t npins);

/* Start reading a range into the cache in the background
 * (NBD_CMD_CACHE).  Returns once the reads are queued.
 */
extern int cache_prefetch (struct cache_export *exp, uint64_t count,
                           uint64_t offset);

/* Allocation status of [offset, offset+count), in order, covering the
 * range: host holes merged with the cache (a dirty block is data).
 * fn returns 0 to go on, -1 to stop with that error.
 */
typedef int (*cache_extent_fn) (void *opaque, uint64_t offset,
                                uint64_t length, bool hole);
extern int cache_extents (struct cache_export *exp, uint64_t count,
                          uint64_t offset, cache_extent_fn fn, void *opaque);

/* Changed-block tracking (loopback cbt=; see track.c).  Turn it on
 * for an export before serving it: granularity is a power of two no
 * smaller than the block size; the bitmaps persist in the file sidecar
 * (absolute), image (absolute) is stat'ed for its size and mtime.
 * Returns -1 (logged) if tracking could not be set up: the export
 * serves without it.
 */
extern int cache_export_track (struct cache_export *exp, uint32_t granularity,
                               const char *image, const char *sidecar);
/* 0: no tracking. */
extern uint32_t cache_export_track_granularity (const struct cache_export *exp);
/* Freeze the live bitmap as name and start a fresh one, atomically
 * with respect to writes; *dirty (if not NULL): the bytes it marks.
 * errno: ENOTSUP (no tracking), EINVAL (bad name: 1 to 64 of
 * [A-Za-z0-9_.-]), EEXIST (taken, or "live"), ENOSPC
 * (too many bitmaps), EIO (the tracking file cannot be written, so
 * the change would not survive a crash; logged).  Nothing changes on
 * error, here and in delete and merge.
 */
extern int cache_bitmap_checkpoint (struct cache_export *exp, const char *name,
                                    uint64_t *dirty);
/* Forget a frozen bitmap.  ENOENT, EPERM for "live". */
extern int cache_bitmap_delete (struct cache_export *exp, const char *name);
/* target |= source; target (frozen) is made if missing.  source may be
 * "live".
 */
extern int cache_bitmap_merge (struct cache_export *exp, const char *target,
                               const char *source);
extern bool cache_bitmap_exists (struct cache_export *exp, const char *name);
/* Every bitmap, frozen ones oldest first, then "live". */
typedef int (*cache_bitmap_fn) (void *opaque, const char *name,
                                uint64_t dirty_bytes);
extern int cache_bitmap_list (struct cache_export *exp, cache_bitmap_fn fn,
                              void *opaque);
/* The runs of a bitmap over [offset, offset+count), in order; the
 * extent function's hole flag means "clean".  ENOENT if no such bitmap.
 */
extern int cache_bitmap_extents (struct cache_export *exp, const char *name,
                                 uint64_t count, uint64_t offset,
                                 cache_extent_fn fn, void *opaque);

/* Counters, for statistics and tests.  Byte counts are of client
 * requests; blocks are cache blocks.
 */
struct cache_stats {
  uint64_t read_requests, read_bytes;
  uint64_t write_requests, write_bytes;
  uint64_t hits;                /* cache blocks found resident on read */
  uint64_t misses;              /* cache blocks read from the host */
  uint64_t readahead_blocks;    /* blocks read ahead */
  uint64_t readahead_hits;      /* read-ahead blocks later read by a client */
  uint64_t writebacks;          /* host writes issued by write-back */
  uint64_t writeback_bytes;
  uint64_t writeback_errors;
  uint64_t flushes;
  uint64_t flush_ns;            /* time spent in cache_flush, in total */
  uint64_t resident_blocks;     /* now */
  uint64_t dirty_blocks;        /* now */
  uint64_t revalidations_changed; /* host file changed behind our back */
  uint64_t tracked_dirty_bytes; /* cbt=: bytes dirty in the live bitmap */
};
extern void cache_export_stats (const struct cache_export *exp,
                                struct cache_stats *stats);

/* Whole-cache figures: bytes of memory in use (data and metadata),
 * and the bound (cache=).
 */
extern void cache_memory (uint64_t *in_use, uint64_t *limit);

/* Time, for delwri=, postpone= and rmvto=: milliseconds from an
 * arbitrary origin.  Tests install a fake clock and drive write-back
 * with cache_writeback_due instead of the flusher thread.
 */
typedef uint64_t (*cache_clock_fn) (void);
extern void cache_set_clock (cache_clock_fn now_ms);

/* Write back every block whose delwri/postpone deadline has passed
 * (what one pass of the flusher does), and wait for it.  Returns the
 * number of blocks written back, or -1 with errno if any failed.
 */
extern int cache_writeback_due (void);
/* When the earliest deadline of a block still dirty after the last
 * cache_writeback_due is (UINT64_MAX: none), in cache_set_clock's
 * milliseconds.  The flusher sleeps until then, so that delwri= and
 * postpone= are kept to the millisecond, not to the flusher's round.
 */
extern uint64_t cache_next_due (void);
/* What the flusher does when a shard's dirty blocks pass three
 * quarters of its share of the cache: write back the oldest, whatever
 * their deadline, down to half.  Returns the number of blocks written
 * back, or -1 if any failed.
 */
extern int cache_writeback_pressure (void);

/* The cache block size (bytes).  Exported for tests. */
#define CACHE_BLOCK_SIZE 4096

#endif /* NBDL_CACHE_H */
