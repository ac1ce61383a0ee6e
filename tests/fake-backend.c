/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: a fake device under the cache, and a fake clock.
 *
 * See fake-backend.h for what the fake records and why.  The host
 * image, the durable shadow, the allocation map, the log, the faults
 * and the gates of one fake are all guarded by its lock; data is
 * copied under it too (the fake is for correctness, not speed).
 * Extent callbacks run without it, since they call back into the
 * cache.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fake-backend.h"
#include "opts.h"

#define GRANULE 4096

struct fake {
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* a gate opened or an op arrived at one */
  struct fake_config config;
  char *name;
  uint8_t *image;               /* what the host file holds now */
  uint8_t *durable;             /* what survives a crash */
  uint8_t *allocated;           /* per granule */
  uint8_t *unsynced;            /* per granule: image may differ from durable */
  size_t granules;

  struct fake_op *log;
  size_t log_len, log_cap;
  uint64_t ops[FAKE_NR_KINDS];
  uint64_t bytes[FAKE_NR_KINDS];

  struct fake_fault fault[FAKE_NR_KINDS];
  uint64_t fault_seen[FAKE_NR_KINDS]; /* matching ops let through */
  bool gate_closed[FAKE_NR_KINDS];
  unsigned gate_waiting[FAKE_NR_KINDS];

  bool changed;                 /* next revalidate reports a change */
  unsigned closed;
};

static const char *const kind_names[FAKE_NR_KINDS] = {
  [FAKE_PREAD] = "pread", [FAKE_PWRITE] = "pwrite", [FAKE_FLUSH] = "flush",
  [FAKE_TRIM] = "trim", [FAKE_ZERO] = "zero", [FAKE_EXTENTS] = "extents",
  [FAKE_REVALIDATE] = "revalidate", [FAKE_CLOSE] = "close",
};

const char *
fake_kind_name (enum fake_op_kind kind)
{
  return kind < FAKE_NR_KINDS ? kind_names[kind] : "?";
}

/* --- Clocks --- */

static _Atomic uint64_t fake_now;

uint64_t
fake_clock_now (void)
{
  return atomic_load (&fake_now);
}

void
fake_clock_set (uint64_t ms)
{
  atomic_store (&fake_now, ms);
}

void
fake_clock_advance (uint64_t ms)
{
  atomic_fetch_add (&fake_now, ms);
}

uint64_t
real_clock_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- The fake --- */

struct fake *
fake_new (const struct fake_config *config)
{
  struct fake *fk = calloc (1, sizeof *fk);

  assert (fk);
  assert (config->size > 0);
  fk->config = *config;
  if (fk->config.blksz == 0)
    fk->config.blksz = 512;
  fk->name = strdup (config->name ? config->name : "fake");
  fk->config.name = fk->name;
  fk->granules = (config->size + GRANULE - 1) / GRANULE;
  fk->image = calloc (1, config->size);
  fk->durable = calloc (1, config->size);
  fk->allocated = calloc (1, fk->granules);
  fk->unsynced = calloc (1, fk->granules);
  assert (fk->name && fk->image && fk->durable && fk->allocated &&
          fk->unsynced);
  pthread_mutex_init (&fk->lock, NULL);
  pthread_cond_init (&fk->cond, NULL);
  return fk;
}

void
fake_free (struct fake *fk)
{
  if (fk == NULL)
    return;
  pthread_mutex_destroy (&fk->lock);
  pthread_cond_destroy (&fk->cond);
  free (fk->image);
  free (fk->durable);
  free (fk->allocated);
  free (fk->unsynced);
  free (fk->log);
  free (fk->name);
  free (fk);
}

static void
check_range (struct fake *fk, const char *what, uint64_t offset,
             uint64_t count)
{
  if (offset > fk->config.size || count > fk->config.size - offset) {
    fprintf (stderr, "fake %s: %s [%" PRIu64 ", +%" PRIu64 ") is outside "
             "the export (size %" PRIu64 "): cache bug\n",
             fk->name, what, offset, count, fk->config.size);
    abort ();
  }
}

static void
log_op (struct fake *fk, const struct fake_op *op)
{
  fk->ops[op->kind]++;
  if (fk->config.no_log)
    return;
  if (fk->log_len == fk->log_cap) {
    fk->log_cap = fk->log_cap ? fk->log_cap * 2 : 256;
    fk->log = realloc (fk->log, fk->log_cap * sizeof *fk->log);
    assert (fk->log);
  }
  fk->log[fk->log_len++] = *op;
}

/* With the lock held: wait at the gate, then decide whether this op
 * fails.  Returns the errno to fail with, or 0.
 */
static int
enter (struct fake *fk, enum fake_op_kind kind, uint64_t offset,
       uint64_t count, bool *partial)
{
  struct fake_fault *f = &fk->fault[kind];

  while (fk->gate_closed[kind]) {
    fk->gate_waiting[kind]++;
    pthread_cond_broadcast (&fk->cond);
    pthread_cond_wait (&fk->cond, &fk->lock);
    fk->gate_waiting[kind]--;
  }
  *partial = false;
  if (f->err == 0 || f->times == 0)
    return 0;
  if (f->count > 0 &&
      (offset + count <= f->offset || offset >= f->offset + f->count))
    return 0;
  if (fk->fault_seen[kind] < f->skip) {
    fk->fault_seen[kind]++;
    return 0;
  }
  if (f->times > 0)
    f->times--;
  *partial = f->partial;
  return f->err;
}

static void
mark (uint8_t *map, uint64_t offset, uint64_t count, uint8_t v, bool whole)
{
  uint64_t first, end;

  if (count == 0)
    return;
  if (whole) {                  /* only granules entirely inside */
    first = (offset + GRANULE - 1) / GRANULE;
    end = (offset + count) / GRANULE;
  }
  else {
    first = offset / GRANULE;
    end = (offset + count + GRANULE - 1) / GRANULE;
  }
  for (uint64_t g = first; g < end; g++)
    map[g] = v;
}

/* With the lock held: the image changed in [offset, offset+count). */
static void
image_changed (struct fake *fk, uint64_t offset, uint64_t count)
{
  if (fk->config.durable_writes)
    memcpy (fk->durable + offset, fk->image + offset, count);
  else
    mark (fk->unsynced, offset, count, 1, false);
}

static int
fake_pread (void *handle, void *buf, size_t count, uint64_t offset,
            enum io_priority prio)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_PREAD, .offset = offset,
                        .count = count, .prio = prio,
                        .time_ms = fake_clock_now () };
  bool partial;

  check_range (fk, "pread", offset, count);
  op.err = enter (fk, FAKE_PREAD, offset, count, &partial);
  if (op.err == 0 || partial) {
    size_t n = op.err ? count / 2 : count;
    memcpy (buf, fk->image + offset, n);
    if (op.err == 0)
      fk->bytes[FAKE_PREAD] += n;
  }
  log_op (fk, &op);
  if (op.err) {
    errno = op.err;
    return -1;
  }
  return 0;
}

/* The same, into several buffers (fake_config.vectored), logged as a
 * pread: the cache reads the host straight into its blocks.
 */
static int
fake_preadv (void *handle, const struct iovec *iov, int iovcnt,
             uint64_t offset, enum io_priority prio)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_PREAD, .offset = offset,
                        .prio = prio, .time_ms = fake_clock_now () };
  bool partial;

  for (int i = 0; i < iovcnt; i++)
    op.count += iov[i].iov_len;
  check_range (fk, "preadv", offset, op.count);
  op.err = enter (fk, FAKE_PREAD, offset, op.count, &partial);
  if (op.err == 0 || partial) {
    uint64_t n = op.err ? op.count / 2 : op.count, at = offset;
    for (int i = 0; i < iovcnt && n > 0; i++) {
      size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;
      memcpy (iov[i].iov_base, fk->image + at, len);
      at += len;
      n -= len;
    }
    if (op.err == 0)
      fk->bytes[FAKE_PREAD] += op.count;
  }
  log_op (fk, &op);
  if (op.err) {
    errno = op.err;
    return -1;
  }
  return 0;
}

static int
fake_pwrite (void *handle, const void *buf, size_t count, uint64_t offset,
             enum io_priority prio)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_PWRITE, .offset = offset,
                        .count = count, .prio = prio,
                        .time_ms = fake_clock_now () };
  bool partial;

  check_range (fk, "pwrite", offset, count);
  if (fk->config.readonly) {
    fprintf (stderr, "fake %s: pwrite to a read-only export: cache bug\n",
             fk->name);
    abort ();
  }
  op.err = enter (fk, FAKE_PWRITE, offset, count, &partial);
  if (op.err == 0 || partial) {
    size_t n = op.err ? count / 2 : count;
    memcpy (fk->image + offset, buf, n);
    mark (fk->allocated, offset, n, 1, false);
    image_changed (fk, offset, n);
    if (op.err == 0)
      fk->bytes[FAKE_PWRITE] += n;
  }
  log_op (fk, &op);
  if (op.err) {
    errno = op.err;
    return -1;
  }
  return 0;
}

static int
fake_flush (void *handle)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_FLUSH, .time_ms = fake_clock_now () };
  bool partial;

  op.err = enter (fk, FAKE_FLUSH, 0, 0, &partial);
  if (op.err == 0)
    for (size_t g = 0; g < fk->granules; g++)
      if (fk->unsynced[g]) {
        uint64_t off = (uint64_t) g * GRANULE;
        uint64_t n = fk->config.size - off < GRANULE
          ? fk->config.size - off : GRANULE;
        memcpy (fk->durable + off, fk->image + off, n);
        fk->unsynced[g] = 0;
      }
  log_op (fk, &op);
  if (op.err) {
    errno = op.err;
    return -1;
  }
  return 0;
}

static int
fake_trim (void *handle, uint64_t offset, uint64_t count)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_TRIM, .offset = offset, .count = count,
                        .time_ms = fake_clock_now () };
  bool partial;

  check_range (fk, "trim", offset, count);
  if (fk->config.readonly) {
    fprintf (stderr, "fake %s: trim of a read-only export: cache bug\n",
             fk->name);
    abort ();
  }
  op.err = enter (fk, FAKE_TRIM, offset, count, &partial);
  if (op.err == 0) {
    /* A punched hole reads as zeroes. */
    memset (fk->image + offset, 0, count);
    mark (fk->allocated, offset, count, 0, true);
    image_changed (fk, offset, count);
  }
  log_op (fk, &op);
  if (op.err) {
    errno = op.err;
    return -1;
  }
  return 0;
}

static int
fake_zero (void *handle, uint64_t offset, uint64_t count, bool may_trim,
           bool fast_only)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_ZERO, .offset = offset, .count = count,
                        .may_trim = may_trim, .fast_only = fast_only,
                        .time_ms = fake_clock_now () };
  bool partial;

  check_range (fk, "zero", offset, count);
  if (fk->config.readonly) {
    fprintf (stderr, "fake %s: zero of a read-only export: cache bug\n",
             fk->name);
    abort ();
  }
  op.err = enter (fk, FAKE_ZERO, offset, count, &partial);
  if (op.err == 0 && fast_only && fk->config.slow_zero)
    op.err = EOPNOTSUPP;
  if (op.err == 0) {
    memset (fk->image + offset, 0, count);
    if (may_trim)
      mark (fk->allocated, offset, count, 0, true);
    else
      mark (fk->allocated, offset, count, 1, false);
    image_changed (fk, offset, count);
  }
  log_op (fk, &op);
  if (op.err) {
    errno = op.err;
    return -1;
  }
  return 0;
}

struct run {
  uint64_t offset, length;
  bool hole;
};

static int
fake_extents (void *handle, uint64_t offset, uint64_t count,
              device_extent_fn fn, void *opaque)
{
  struct fake *fk = handle;
  struct run *runs = NULL;
  size_t nr = 0, cap = 0;
  int err;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
    struct fake_op op = { .kind = FAKE_EXTENTS, .offset = offset,
                          .count = count, .time_ms = fake_clock_now () };
    bool partial;
    uint64_t pos = offset, end = offset + count;

    check_range (fk, "extents", offset, count);
    err = op.err = enter (fk, FAKE_EXTENTS, offset, count, &partial);
    log_op (fk, &op);
    while (err == 0 && pos < end) {
      bool hole = !fk->allocated[pos / GRANULE];
      uint64_t next = (pos / GRANULE + 1) * GRANULE;

      while (next < end && !fk->allocated[next / GRANULE] == hole)
        next += GRANULE;
      if (next > end)
        next = end;
      if (nr == cap) {
        cap = cap ? cap * 2 : 16;
        runs = realloc (runs, cap * sizeof *runs);
        assert (runs);
      }
      runs[nr++] = (struct run) { pos, next - pos, hole };
      pos = next;
    }
  }
  if (err) {
    free (runs);
    errno = err;
    return -1;
  }
  for (size_t i = 0; i < nr; i++)
    if (fn (opaque, runs[i].offset, runs[i].length, runs[i].hole) == -1) {
      free (runs);
      return -1;
    }
  free (runs);
  return 0;
}

static int
fake_revalidate (void *handle)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_REVALIDATE,
                        .time_ms = fake_clock_now () };
  bool partial;
  int r;

  op.err = enter (fk, FAKE_REVALIDATE, 0, 0, &partial);
  log_op (fk, &op);
  if (op.err) {
    errno = op.err;
    return -1;
  }
  r = fk->changed;
  fk->changed = false;
  return r;
}

static void
fake_close (void *handle)
{
  struct fake *fk = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct fake_op op = { .kind = FAKE_CLOSE, .time_ms = fake_clock_now () };

  fk->closed++;
  log_op (fk, &op);
}

void
fake_backend (struct fake *fk, struct cache_backend *out)
{
  *out = (struct cache_backend) {
    .name = fk->name,
    .size = fk->config.size,
    .blksz = fk->config.blksz,
    .readonly = fk->config.readonly,
    .durable_writes = fk->config.durable_writes,
    .can_revalidate = fk->config.can_revalidate,
    .handle = fk,
    .pread = fake_pread,
    .preadv = fk->config.vectored ? fake_preadv : NULL,
    .pwrite = fake_pwrite,
    .flush = fake_flush,
    .trim = fake_trim,
    .zero = fake_zero,
    .extents = fake_extents,
    .revalidate = fake_revalidate,
    .close = fake_close,
  };
}

/* --- Inspecting and steering the fake --- */

void
fake_fill (struct fake *fk, const void *buf, uint64_t count, uint64_t offset)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);

  check_range (fk, "fill", offset, count);
  if (buf) {
    memcpy (fk->image + offset, buf, count);
    memcpy (fk->durable + offset, buf, count);
  }
  else {
    memset (fk->image + offset, 0, count);
    memset (fk->durable + offset, 0, count);
  }
  mark (fk->allocated, offset, count, 1, false);
}

void
fake_set_changed (struct fake *fk)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  fk->changed = true;
}

void
fake_read_image (struct fake *fk, void *buf, uint64_t count, uint64_t offset)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  check_range (fk, "read_image", offset, count);
  memcpy (buf, fk->image + offset, count);
}

void
fake_read_durable (struct fake *fk, void *buf, uint64_t count,
                   uint64_t offset)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  check_range (fk, "read_durable", offset, count);
  memcpy (buf, fk->durable + offset, count);
}

static bool
range_is (const uint8_t *p, const void *buf, uint64_t count)
{
  if (buf)
    return memcmp (p, buf, count) == 0;
  for (uint64_t i = 0; i < count; i++)
    if (p[i])
      return false;
  return true;
}

bool
fake_image_is (struct fake *fk, const void *buf, uint64_t count,
               uint64_t offset)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  check_range (fk, "image_is", offset, count);
  return range_is (fk->image + offset, buf, count);
}

bool
fake_durable_is (struct fake *fk, const void *buf, uint64_t count,
                 uint64_t offset)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  check_range (fk, "durable_is", offset, count);
  return range_is (fk->durable + offset, buf, count);
}

bool
fake_allocated (struct fake *fk, uint64_t offset)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  check_range (fk, "allocated", offset, 1);
  return fk->allocated[offset / GRANULE];
}

void
fake_set_fault (struct fake *fk, enum fake_op_kind kind,
                const struct fake_fault *fault)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  assert (kind < FAKE_NR_KINDS);
  fk->fault[kind] = *fault;
  fk->fault_seen[kind] = 0;
}

void
fake_clear_faults (struct fake *fk)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  memset (fk->fault, 0, sizeof fk->fault);
  memset (fk->fault_seen, 0, sizeof fk->fault_seen);
}

void
fake_gate (struct fake *fk, enum fake_op_kind kind, bool closed)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  fk->gate_closed[kind] = closed;
  pthread_cond_broadcast (&fk->cond);
}

int
fake_gate_wait (struct fake *fk, enum fake_op_kind kind, unsigned n,
                unsigned timeout_ms)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long) (timeout_ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  while (fk->gate_waiting[kind] < n)
    if (pthread_cond_timedwait (&fk->cond, &fk->lock, &ts) == ETIMEDOUT)
      return fk->gate_waiting[kind] >= n ? 0 : -1;
  return 0;
}

size_t
fake_log_len (struct fake *fk)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  return fk->log_len;
}

struct fake_op
fake_log_at (struct fake *fk, size_t i)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  assert (i < fk->log_len);
  return fk->log[i];
}

void
fake_log_clear (struct fake *fk)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  fk->log_len = 0;
}

void
fake_log_print (struct fake *fk, size_t from, FILE *fp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);

  for (size_t i = from; i < fk->log_len; i++) {
    const struct fake_op *op = &fk->log[i];
    fprintf (fp, "  [%zu] t=%" PRIu64 " %s", i, op->time_ms,
             kind_names[op->kind]);
    if (op->kind == FAKE_PREAD || op->kind == FAKE_PWRITE ||
        op->kind == FAKE_TRIM || op->kind == FAKE_ZERO ||
        op->kind == FAKE_EXTENTS)
      fprintf (fp, " [%" PRIu64 ", +%" PRIu64 ")", op->offset, op->count);
    if (op->kind == FAKE_PREAD || op->kind == FAKE_PWRITE)
      fprintf (fp, " %s", op->prio == IO_PRIO_CLIENT ? "client"
               : "background");
    if (op->kind == FAKE_ZERO && op->may_trim)
      fprintf (fp, " may_trim");
    if (op->kind == FAKE_ZERO && op->fast_only)
      fprintf (fp, " fast_only");
    if (op->err)
      fprintf (fp, " -> %s", strerror (op->err));
    fputc ('\n', fp);
  }
}

size_t
fake_log_count (struct fake *fk, enum fake_op_kind kind, size_t from,
                uint64_t offset, uint64_t count)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  size_t n = 0;

  for (size_t i = from; i < fk->log_len; i++) {
    const struct fake_op *op = &fk->log[i];
    if (op->kind != kind)
      continue;
    if (count > 0 &&
        (op->offset + op->count <= offset || op->offset >= offset + count))
      continue;
    n++;
  }
  return n;
}

uint64_t
fake_ops (struct fake *fk, enum fake_op_kind kind)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  return fk->ops[kind];
}

uint64_t
fake_bytes (struct fake *fk, enum fake_op_kind kind)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  return fk->bytes[kind];
}

unsigned
fake_closed (struct fake *fk)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fk->lock);
  return fk->closed;
}

/* --- Test harness --- */

struct blk_config
test_blk_config (const char *text)
{
  struct opts *o = opts_new ();
  struct config *cfg;
  struct blk_config blk;
  char *err = NULL;

  assert (o);
  opts_set_physical_memory (o, 8ULL << 30);
  if (text && text[0] &&
      opts_parse_group (o, OPTS_GROUP_BLK, text, &err) == -1) {
    fprintf (stderr, "blk options \"%s\": %s\n", text, err);
    abort ();
  }
  if (opts_parse_group (o, OPTS_GROUP_LOOPBACK, "fd=/unused", &err) == -1) {
    fprintf (stderr, "loopback options: %s\n", err);
    abort ();
  }
  cfg = opts_finish (o, &err);
  if (cfg == NULL) {
    fprintf (stderr, "blk options \"%s\": %s\n", text, err);
    abort ();
  }
  opts_free (o);
  blk = cfg->blk;
  blk.verbose_flags = NULL;     /* freed with cfg */
  config_free (cfg);
  return blk;
}

struct blk_config
test_cache_init (const char *text, bool start_flusher)
{
  struct blk_config blk = test_blk_config (text);

  cache_set_clock (fake_clock_now);
  if (cache_init (&blk, start_flusher) == -1) {
    fprintf (stderr, "cache_init (%s): %m\n", text);
    abort ();
  }
  cache_set_clock (fake_clock_now);
  return blk;
}

struct cache_export *
test_open (struct fake *fk)
{
  struct cache_backend be;
  struct cache_export *exp;

  fake_backend (fk, &be);
  exp = cache_export_open_backend (&be);
  if (exp == NULL) {
    fprintf (stderr, "cache_export_open_backend (%s): %m\n", fk->name);
    abort ();
  }
  return exp;
}

uint64_t
test_seed (const char *what, bool random, uint64_t fixed)
{
  const char *env = getenv ("CACHE_TEST_SEED");
  uint64_t seed = fixed;

  if (env && env[0])
    seed = strtoull (env, NULL, 0);
  else if (random) {
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    seed = ((uint64_t) ts.tv_sec * 1000000007ULL) ^ (uint64_t) ts.tv_nsec
      ^ ((uint64_t) getpid () << 32);
  }
  if (seed == 0)
    seed = 1;
  printf ("%s: seed %" PRIu64 " (%s; replay with CACHE_TEST_SEED=%" PRIu64
          ")\n", what, seed, env && env[0] ? "from CACHE_TEST_SEED"
          : random ? "random" : "fixed", seed);
  fflush (stdout);
  return seed;
}

uint64_t
test_rand (uint64_t *state)
{
  uint64_t x = *state;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

uint64_t
test_rand_below (uint64_t *state, uint64_t n)
{
  assert (n > 0);
  return test_rand (state) % n;
}

uint8_t
pattern_byte (uint64_t offset, uint32_t tag)
{
  uint64_t x = (offset + 1) * 0x9E3779B97F4A7C15ULL
    ^ ((uint64_t) tag + 1) * 0xC2B2AE3D27D4EB4FULL;

  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 29;
  return x >> 56;
}

void
pattern_fill (void *buf, uint64_t count, uint64_t offset, uint32_t tag)
{
  uint8_t *p = buf;

  for (uint64_t i = 0; i < count; i++)
    p[i] = pattern_byte (offset + i, tag);
}

void
check_bytes (const char *what, const void *got, const void *expected,
             uint64_t count, uint64_t offset)
{
  const uint8_t *g = got, *e = expected;

  for (uint64_t i = 0; i < count; i++) {
    uint8_t want = e ? e[i] : 0;
    if (g[i] != want) {
      fprintf (stderr, "%s: byte at offset %" PRIu64 " is 0x%02x, expected "
               "0x%02x (range [%" PRIu64 ", +%" PRIu64 "))\n",
               what, offset + i, g[i], want, offset, count);
      abort ();
    }
  }
}

bool
poll_until (bool (*cond) (void *opaque), void *opaque, unsigned timeout_ms)
{
  uint64_t end = real_clock_ms () + timeout_ms;
  const struct timespec ms = { 0, 1000000 };

  for (;;) {
    if (cond (opaque))
      return true;
    if (real_clock_ms () >= end)
      return false;
    nanosleep (&ms, NULL);
  }
}

bool
test_sanitized (void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

static void
watchdog_fired (int sig)
{
  static const char msg[] = "cache test: watchdog: the test hung "
    "(deadlock, or waiting on host I/O it should not need)\n";

  (void) sig;
  if (write (STDERR_FILENO, msg, sizeof msg - 1) < 0)
    abort ();
  abort ();
}

void
test_watchdog (unsigned seconds)
{
  /* Progress lines must not be lost in a buffer when a check aborts. */
  setvbuf (stdout, NULL, _IOLBF, 0);
  signal (SIGALRM, watchdog_fired);
  alarm (test_sanitized () ? seconds * 5 : seconds);
}

struct cache_stats
test_stats (struct cache_export *exp)
{
  struct cache_stats st;

  memset (&st, 0, sizeof st);
  cache_export_stats (exp, &st);
  return st;
}

void
check_memory (void)
{
  uint64_t in_use = 0, limit = 0;

  cache_memory (&in_use, &limit);
  if (in_use > limit) {
    fprintf (stderr, "cache_memory: %" PRIu64 " bytes in use, above the "
             "limit of %" PRIu64 "\n", in_use, limit);
    abort ();
  }
}
