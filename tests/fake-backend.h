/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: a fake device under the cache, and a fake clock.
 *
 * The cache tests must see what reaches the "host" and when, and what
 * would survive a crash, without real files or sleeping.  A fake is an
 * in-memory image behind the struct cache_backend ops table.  It keeps:
 *
 * - the host image: what pwrite, zero and trim have left there (what a
 *   reader of the host file would see now);
 * - a durable shadow: updated only by flush (and by pwrite, zero and
 *   trim themselves when durable_writes is set, as with O_SYNC), so it
 *   is what would survive a power cut;
 * - an allocation map (4 KiB granules) for extents: pwrite allocates,
 *   trim and zero with may_trim punch;
 * - a log of every host operation with the fake clock's time, its
 *   range, priority and result;
 * - fault injection per operation kind, switchable at any time: fail
 *   the Nth, or every, operation (optionally only those touching a
 *   range) with an errno, optionally after transferring half the data
 *   (a short transfer);
 * - gates: operations of a kind can be held until released, to prove
 *   that nothing waits on host I/O it does not need.
 *
 * Everything is thread-safe (one mutex per fake).  A host operation
 * outside the image is a cache bug: the fake prints it and aborts.
 *
 * The second half is what every cache test needs besides the fake:
 * a blk_config from option text, seeds, data patterns, polling.
 */
#ifndef NBDL_TESTS_FAKE_BACKEND_H
#define NBDL_TESTS_FAKE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cache.h"
#include "configuration.h"

enum fake_op_kind {
  FAKE_PREAD,
  FAKE_PWRITE,
  FAKE_FLUSH,
  FAKE_TRIM,
  FAKE_ZERO,
  FAKE_EXTENTS,
  FAKE_REVALIDATE,
  FAKE_CLOSE,
  FAKE_NR_KINDS,
};

/* One logged host operation. */
struct fake_op {
  enum fake_op_kind kind;
  uint64_t offset;              /* byte range (0, 0 for flush, ...) */
  uint64_t count;
  enum io_priority prio;        /* pread and pwrite only */
  bool may_trim;                /* zero only */
  bool fast_only;               /* zero only */
  uint64_t time_ms;             /* fake clock when it started */
  int err;                      /* errno it failed with, 0 = success */
};

struct fake_config {
  const char *name;             /* default "fake" */
  uint64_t size;                /* export size in bytes */
  uint32_t blksz;               /* default 512 */
  bool readonly;
  bool durable_writes;          /* writes durable at once (O_SYNC) */
  bool can_revalidate;
  bool slow_zero;               /* no fast zero: fast_only zero fails
                                   with EOPNOTSUPP (like tmpfs) */
  bool no_log;                  /* count operations but keep no log */
  bool vectored;                /* offer preadv (logged as FAKE_PREAD) */
};

/* A fault: let skip matching operations succeed, then fail the next
 * times ones (-1: every one until cleared) with err.  partial: pread
 * and pwrite transfer the first half of the range before failing.
 * count > 0 restricts it to operations overlapping [offset,
 * offset+count).
 */
struct fake_fault {
  int err;
  bool partial;
  uint64_t skip;
  int64_t times;
  uint64_t offset;
  uint64_t count;
};

struct fake;

extern struct fake *fake_new (const struct fake_config *config);
extern void fake_free (struct fake *fk);

/* The ops table to hand to cache_export_open_backend. */
extern void fake_backend (struct fake *fk, struct cache_backend *out);

/* Host contents as if written and synced by someone else: the image,
 * the durable shadow and the allocation map, not logged.
 */
extern void fake_fill (struct fake *fk, const void *buf, uint64_t count,
                       uint64_t offset);
/* Make the next revalidate report a change (once). */
extern void fake_set_changed (struct fake *fk);

extern void fake_read_image (struct fake *fk, void *buf, uint64_t count,
                             uint64_t offset);
extern void fake_read_durable (struct fake *fk, void *buf, uint64_t count,
                               uint64_t offset);
/* Whether [offset, offset+count) of the image / durable shadow holds
 * exactly buf (or zeroes, buf NULL).
 */
extern bool fake_image_is (struct fake *fk, const void *buf, uint64_t count,
                           uint64_t offset);
extern bool fake_durable_is (struct fake *fk, const void *buf, uint64_t count,
                             uint64_t offset);
/* Whether the granule holding offset is allocated. */
extern bool fake_allocated (struct fake *fk, uint64_t offset);

/* Faults: set replaces the kind's fault; err 0 clears it. */
extern void fake_set_fault (struct fake *fk, enum fake_op_kind kind,
                            const struct fake_fault *fault);
extern void fake_clear_faults (struct fake *fk);

/* Gates: while closed, operations of the kind wait at entry. */
extern void fake_gate (struct fake *fk, enum fake_op_kind kind, bool closed);
/* Wait until at least n operations of the kind are held at its gate;
 * -1 after timeout_ms of real time.
 */
extern int fake_gate_wait (struct fake *fk, enum fake_op_kind kind,
                           unsigned n, unsigned timeout_ms);

/* The log.  Indexes are stable until fake_log_clear. */
extern size_t fake_log_len (struct fake *fk);
extern struct fake_op fake_log_at (struct fake *fk, size_t i);
extern void fake_log_clear (struct fake *fk);
extern void fake_log_print (struct fake *fk, size_t from, FILE *fp);
/* Operations of a kind logged since index from, overlapping [offset,
 * offset+count) when count > 0, successful or not.
 */
extern size_t fake_log_count (struct fake *fk, enum fake_op_kind kind,
                              size_t from, uint64_t offset, uint64_t count);
/* Operations of a kind since the fake was made (kept with no_log). */
extern uint64_t fake_ops (struct fake *fk, enum fake_op_kind kind);
/* Bytes pread / pwritten (successfully) since the fake was made. */
extern uint64_t fake_bytes (struct fake *fk, enum fake_op_kind kind);
/* How many times the close callback ran. */
extern unsigned fake_closed (struct fake *fk);
extern const char *fake_kind_name (enum fake_op_kind kind);

/* The fake clock (milliseconds), for cache_set_clock and the log. */
extern uint64_t fake_clock_now (void);
extern void fake_clock_set (uint64_t ms);
extern void fake_clock_advance (uint64_t ms);
/* CLOCK_MONOTONIC in milliseconds, for tests that want real time. */
extern uint64_t real_clock_ms (void);

/* --- Test harness --- */

/* The blk group from option text, through the real parser (aborts on
 * a parse error).  Percentages resolve against 8 GiB.
 */
extern struct blk_config test_blk_config (const char *text);

/* cache_init with the fake clock installed (start_flusher as given);
 * returns the configuration used.
 */
extern struct blk_config test_cache_init (const char *text,
                                          bool start_flusher);
/* An export over the fake (asserts). */
extern struct cache_export *test_open (struct fake *fk);

/* The seed for randomized tests: $CACHE_TEST_SEED if set, else
 * fixed if random is false, else from the time and pid.  Printed
 * with what it is for, so a failure can be replayed.
 */
extern uint64_t test_seed (const char *what, bool random, uint64_t fixed);
/* xorshift64*: the state must not be 0. */
extern uint64_t test_rand (uint64_t *state);
/* Uniform in [0, n). */
extern uint64_t test_rand_below (uint64_t *state, uint64_t n);

/* A byte pattern that depends on the offset and a tag, so that data
 * from the wrong place or the wrong write is recognized.
 */
extern uint8_t pattern_byte (uint64_t offset, uint32_t tag);
extern void pattern_fill (void *buf, uint64_t count, uint64_t offset,
                          uint32_t tag);

/* Assert that count bytes equal expected (NULL: zeroes), naming the
 * first difference and what was being checked.
 */
extern void check_bytes (const char *what, const void *got,
                         const void *expected, uint64_t count,
                         uint64_t offset);

/* Poll cond(opaque) every millisecond of real time for up to
 * timeout_ms; returns whether it became true.  For background work
 * (delwri=0, read-ahead, prefetch): no fixed sleeps.
 */
extern bool poll_until (bool (*cond) (void *opaque), void *opaque,
                        unsigned timeout_ms);

/* Kill the test if it has not finished in seconds of real time (a
 * hang is a failure, not a CI timeout).  Scaled up under sanitizers.
 * Also makes stdout line-buffered, so progress survives an abort.
 */
extern void test_watchdog (unsigned seconds);

/* Whether this is a sanitizer build (slower: scale work down). */
extern bool test_sanitized (void);

/* Stats of an export, and whole-cache memory within the limit. */
extern struct cache_stats test_stats (struct cache_export *exp);
extern void check_memory (void);

#endif /* NBDL_TESTS_FAKE_BACKEND_H */
