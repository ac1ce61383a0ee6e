/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client's workload: --conns libnbd connections, each a thread
 * with up to --depth requests in flight, and the shared state that
 * lets each completion check READs against the newest acknowledged
 * write of every sector and record what the crash checks need (see
 * the top of stress-client.c).  Two requests never overlap in flight:
 * run.busy[] claims their sectors.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "stress.h"

/* ---- the state of one run ---- */

enum op_type { OP_WRITE, OP_ZERO, OP_READ, OP_FLUSH, OP_CACHE };

struct op {
  struct thread *t;
  enum op_type type;
  uint64_t version;
  size_t rec;                   /* index into t->recs */
  uint32_t start, n;
  uint64_t flush_seq;
  uint64_t issued_us;
  bool fua;
  void *buf;
};

struct run run = { .lock = PTHREAD_MUTEX_INITIALIZER };
struct thread *threads;

static uint64_t
tick (void)
{
  return __atomic_add_fetch (&run.clock, 1, __ATOMIC_SEQ_CST);
}

void
state_alloc (void)
{
  run.nsect = size / SECTOR;
  run.busy = calloc (run.nsect, 1);
  run.last_acked = calloc (run.nsect, sizeof *run.last_acked);
  run.last_zero = calloc (run.nsect, 1);
  run.max_zero = calloc (run.nsect, sizeof *run.max_zero);
  if (!run.busy || !run.last_acked || !run.last_zero || !run.max_zero)
    die ("out of memory");
}

void
state_reset (uint64_t cseed, enum commit commit)
{
  memset (run.busy, 0, run.nsect);
  memset (run.last_acked, 0, run.nsect * sizeof *run.last_acked);
  memset (run.last_zero, 0, run.nsect);
  memset (run.max_zero, 0, run.nsect * sizeof *run.max_zero);
  run.cseed = cseed;
  run.commit = commit;
  run.next_version = 0;
  run.clock = 0;
  run.flushed_before = 0;
  run.stop = run.terminating = false;
  run.last_progress_ms = now_ms ();
  run.max_latency_us = 0;
}

/* Claim a free run of sectors (lock held). */
static bool
claim_locked (uint32_t start, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (run.busy[start + i])
      return false;
  memset (run.busy + start, 1, n);
  return true;
}

static uint32_t
pick_length (struct thread *t)
{
  uint64_t r = below (&t->rng, 100);
  uint32_t maxs = max_len / SECTOR;

  if (r < 70)
    return 1 + below (&t->rng, maxs < 16 ? maxs : 16);
  if (r < 95)
    return 1 + below (&t->rng, maxs < 128 ? maxs : 128);
  return 1 + below (&t->rng, maxs);
}

/* ---- completions (on the thread's own nbd_poll) ---- */

static void
record_ack (struct op *op, bool zero)
{
  pthread_mutex_lock (&run.lock);
  for (uint32_t i = 0; i < op->n; i++) {
    run.last_acked[op->start + i] = op->version;
    run.last_zero[op->start + i] = zero;
  }
  pthread_mutex_unlock (&run.lock);
}

static void
release (struct op *op)
{
  if (op->n == 0)
    return;
  pthread_mutex_lock (&run.lock);
  memset (run.busy + op->start, 0, op->n);
  pthread_mutex_unlock (&run.lock);
}

/* A READ of sectors nobody writes: each must hold its newest
 * acknowledged version (lock not needed: busy keeps writers out).
 */
static void
check_read (struct op *op)
{
  struct thread *t = op->t;
  const uint64_t *w = op->buf;
  char what[160];

  for (uint32_t i = 0; i < op->n; i++) {
    uint64_t s = op->start + i;
    uint64_t want = run.last_zero[s] ? 0 : run.last_acked[s];

    for (unsigned c = 0; c < CHUNKS_PER_SECTOR; c++) {
      uint64_t chunk = s * CHUNKS_PER_SECTOR + c;
      const uint64_t *cw = w + (i * CHUNKS_PER_SECTOR + c) * 8;
      uint64_t v = chunk_version (cw, run.cseed, chunk);

      if (v != want) {
        describe_chunk (cw, chunk, what, sizeof what);
        fail_at (t, "READ at byte %" PRIu64 " returned %s; the newest "
                 "acknowledged write there is %s %" PRIu64,
                 chunk * CHUNK, what, run.last_zero[s] ? "zero write"
                 : "version", run.last_acked[s]);
        return;
      }
    }
  }
  t->reads_checked++;
}

static int
completed (void *opaque, int *error)
{
  struct op *op = opaque;
  struct thread *t = op->t;
  bool ok = *error == 0;

  t->inflight--;
  {
    uint64_t lat = now_s () * 1e6 - op->issued_us;
    uint64_t cur = __atomic_load_n (&run.max_latency_us, __ATOMIC_RELAXED);
    while (cur < lat
           && !__atomic_compare_exchange_n (&run.max_latency_us, &cur, lat,
                                            false, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED))
      ;
  }
  if (ok)
    __atomic_store_n (&run.last_progress_ms, now_ms (), __ATOMIC_RELAXED);
  else if (!__atomic_load_n (&run.stop, __ATOMIC_SEQ_CST)
           && !__atomic_load_n (&run.terminating, __ATOMIC_SEQ_CST)
           && t->error == 0) {
    t->error = *error;
    fail_at (t, "request type %d at sector %" PRIu32 " failed: %s",
             op->type, op->start, strerror (*error));
  }
  switch (op->type) {
  case OP_WRITE:
  case OP_ZERO:
    if (ok) {
      uint64_t seq = tick ();
      if (crash_mode)
        t->recs[op->rec].ack_seq = seq;
      t->writes_acked++;
      if (op->fua)
        t->fua_acked++;
      record_ack (op, op->type == OP_ZERO);
    }
    break;
  case OP_READ:
    if (ok)
      check_read (op);
    break;
  case OP_FLUSH:
    if (ok) {
      uint64_t cur = __atomic_load_n (&run.flushed_before, __ATOMIC_SEQ_CST);
      while (cur < op->flush_seq
             && !__atomic_compare_exchange_n (&run.flushed_before, &cur,
                                              op->flush_seq, false,
                                              __ATOMIC_SEQ_CST,
                                              __ATOMIC_SEQ_CST))
        ;
      t->flushes_acked++;
    }
    break;
  case OP_CACHE:
    break;
  }
  release (op);
  free (op->buf);
  free (op);
  return 1;
}

/* ---- issuing ---- */

static struct op *
new_op (struct thread *t, enum op_type type)
{
  struct op *op = calloc (1, sizeof *op);

  if (op == NULL)
    die ("out of memory");
  op->t = t;
  op->type = type;
  op->issued_us = now_s () * 1e6;
  return op;
}

static size_t
add_rec (struct thread *t, const struct wrec *r)
{
  if (t->nr_recs == t->cap_recs) {
    size_t cap = t->cap_recs ? t->cap_recs * 2 : 1024;
    struct wrec *p = realloc (t->recs, cap * sizeof *p);
    if (p == NULL)
      die ("out of memory");
    t->recs = p;
    t->cap_recs = cap;
  }
  t->recs[t->nr_recs] = *r;
  return t->nr_recs++;
}

/* Pick a run of free sectors and claim it; false if none was found. */
static bool
pick_range (struct thread *t, uint32_t *start, uint32_t *n)
{
  for (int tries = 0; tries < 8; tries++) {
    uint32_t len = pick_length (t);
    uint32_t s;
    bool ok;

    if (len > run.nsect)
      len = run.nsect;
    /* Mostly anywhere; sometimes on a 4 KiB boundary. */
    s = below (&t->rng, run.nsect - len + 1);
    if (below (&t->rng, 4) == 0)
      s &= ~UINT32_C(7);
    pthread_mutex_lock (&run.lock);
    ok = claim_locked (s, len);
    pthread_mutex_unlock (&run.lock);
    if (ok) {
      *start = s;
      *n = len;
      return true;
    }
  }
  return false;
}

/* Issue one request.  Returns 0 if it was issued, 1 if there was
 * nothing free to work on, -1 if the connection is gone.
 */
static int
issue (struct thread *t)
{
  nbd_completion_callback cb = { .callback = completed };
  uint64_t r = below (&t->rng, 100);
  struct op *op;
  int64_t cookie;

  if (r < 8) {                                  /* FLUSH */
    op = new_op (t, OP_FLUSH);
    cb.user_data = op;
    op->flush_seq = tick ();
    t->flushes++;
    cookie = nbd_aio_flush (t->nbd, cb, 0);
  }
  else if (r < 10 && t->can_cache) {            /* NBD_CMD_CACHE */
    uint32_t n = 1 + below (&t->rng, 256);
    uint32_t s = below (&t->rng, run.nsect - n + 1);
    op = new_op (t, OP_CACHE);
    cb.user_data = op;
    t->caches++;
    cookie = nbd_aio_cache (t->nbd, (uint64_t) n * SECTOR,
                            (uint64_t) s * SECTOR, cb, 0);
  }
  else {
    uint32_t s, n;
    struct wrec rec = { 0 };
    uint32_t flags = 0;

    if (!pick_range (t, &s, &n))
      return 1;                 /* everything picked was busy: later */
    if (r < 35) {                                /* READ */
      op = new_op (t, OP_READ);
      op->start = s;
      op->n = n;
      op->buf = malloc ((size_t) n * SECTOR);
      if (op->buf == NULL)
        die ("out of memory");
      cb.user_data = op;
      cookie = nbd_aio_pread (t->nbd, op->buf, (size_t) n * SECTOR,
                              (uint64_t) s * SECTOR, cb, 0);
      t->bytes += (uint64_t) n * SECTOR;
    }
    else {                                       /* WRITE or ZERO */
      bool zero = r < 40;

      op = new_op (t, zero ? OP_ZERO : OP_WRITE);
      op->start = s;
      op->n = n;
      rec.fua = op->fua = t->can_fua && below (&t->rng, 5) == 0;
      rec.zero = zero;
      if (rec.fua)
        flags |= LIBNBD_CMD_FLAG_FUA;
      if (zero && below (&t->rng, 2))
        flags |= LIBNBD_CMD_FLAG_NO_HOLE;
      /* The version is taken with the sectors claimed, so versions
       * increase along each sector's writes.
       */
      op->version = __atomic_add_fetch (&run.next_version, 1,
                                        __ATOMIC_SEQ_CST);
      rec.version = op->version;
      rec.start = s;
      rec.n = n;
      if (zero) {
        pthread_mutex_lock (&run.lock);
        for (uint32_t i = 0; i < n; i++)
          run.max_zero[s + i] = op->version;
        pthread_mutex_unlock (&run.lock);
      }
      if (crash_mode)
        op->rec = add_rec (t, &rec);
      cb.user_data = op;
      if (zero) {
        t->zeroes++;
        cookie = nbd_aio_zero (t->nbd, (uint64_t) n * SECTOR,
                               (uint64_t) s * SECTOR, cb, flags);
      }
      else {
        op->buf = malloc ((size_t) n * SECTOR);
        if (op->buf == NULL)
          die ("out of memory");
        fill_sectors (op->buf, run.cseed, s, n, op->version);
        t->writes++;
        t->bytes += (uint64_t) n * SECTOR;
        cookie = nbd_aio_pwrite (t->nbd, op->buf, (size_t) n * SECTOR,
                                 (uint64_t) s * SECTOR, cb, flags);
      }
    }
  }
  if (cookie == -1) {
    /* Not issued: no callback will come. */
    if (!__atomic_load_n (&run.stop, __ATOMIC_SEQ_CST)
        && !__atomic_load_n (&run.terminating, __ATOMIC_SEQ_CST)
        && t->error == 0) {
      t->error = nbd_get_errno () ? nbd_get_errno () : EIO;
      fail_at (t, "issuing a request: %s", nbd_get_error ());
    }
    release (op);
    free (op->buf);
    free (op);
    return -1;
  }
  t->inflight++;
  t->ops++;
  return 0;
}

static void *
thread_main (void *arg)
{
  struct thread *t = arg;

  for (;;) {
    bool stopping = __atomic_load_n (&run.stop, __ATOMIC_SEQ_CST)
      || __atomic_load_n (&run.terminating, __ATOMIC_SEQ_CST);

    while (!stopping && t->inflight < depth
           && !__atomic_load_n (&run.failed, __ATOMIC_RELAXED)) {
      int r = issue (t);
      if (r == -1)
        return NULL;
      if (r == 1)
        break;
    }
    if (__atomic_load_n (&run.failed, __ATOMIC_RELAXED) && !stopping)
      return NULL;
    if (stopping && t->inflight == 0) {
      /* After SIGTERM, disconnect like a client that is done: nbdkit
       * waits for its clients to go (the daemon closes idle ones).
       */
      if (__atomic_load_n (&run.terminating, __ATOMIC_SEQ_CST))
        nbd_shutdown (t->nbd, 0);
      return NULL;
    }
    if (t->inflight == 0) {
      sleep_ms (0.2);           /* all busy elsewhere: let others go on */
      continue;
    }
    if (nbd_poll (t->nbd, 200) == -1)
      return NULL;              /* the connection is gone */
    if (nbd_aio_is_dead (t->nbd) || nbd_aio_is_closed (t->nbd))
      return NULL;
  }
}

/* ---- connections ---- */

void
connect_all (uint64_t cseed)
{
  threads = calloc (nconns, sizeof *threads);
  if (threads == NULL)
    die ("out of memory");
  for (unsigned i = 0; i < nconns; i++) {
    struct thread *t = &threads[i];

    t->index = i;
    t->rng = mix64 (cseed ^ mix64 (i + 1));
    t->nbd = nbd_create ();
    if (t->nbd == NULL
        || nbd_set_export_name (t->nbd, export_name) == -1
        || nbd_connect_unix (t->nbd, sock_path) == -1)
      die ("connection %u: %s", i, nbd_get_error ());
    if (nbd_can_multi_conn (t->nbd) != 1)
      die ("the server does not offer multi-conn");
    t->can_fua = nbd_can_fua (t->nbd) == 1;
    t->can_cache = nbd_can_cache (t->nbd) == 1;
    if (nbd_get_size (t->nbd) < (int64_t) size)
      die ("the export is smaller than --size");
  }
}

void
start_threads (void)
{
  for (unsigned i = 0; i < nconns; i++) {
    int err = pthread_create (&threads[i].tid, NULL, thread_main,
                              &threads[i]);
    if (err)
      die ("pthread_create: %s", strerror (err));
  }
}

void
join_threads (void)
{
  for (unsigned i = 0; i < nconns; i++)
    pthread_join (threads[i].tid, NULL);
}

void
close_all (void)
{
  for (unsigned i = 0; i < nconns; i++) {
    nbd_close (threads[i].nbd);
    free (threads[i].recs);
  }
  free (threads);
  threads = NULL;
}
