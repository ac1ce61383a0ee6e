/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client: crash-consistency cycles and soak load, with
 * verification of every acknowledged write in the host file.
 *
 *   stress-client crash [OPTIONS] -- SERVER-COMMAND...
 *   stress-client soak  [OPTIONS] -- SERVER-COMMAND...
 *   stress-client load  [OPTIONS]
 *
 * The client starts the server itself (SERVER-COMMAND, which must
 * serve the --socket and write the --pidfile once ready; either front
 * end), so it can kill it at a random moment, reap it and read its
 * status.  In SERVER-COMMAND, @COMMIT@, @DELWRI@, @NIO@ and @CACHE@
 * are replaced by the values of the cycle (crash) or of the options
 * (soak).
 *
 * Workload: --conns libnbd connections (multi-conn), each a thread
 * with up to --depth requests in flight: writes of random runs of
 * 512-byte sectors at random offsets (aligned or not to the 4 KiB
 * cache block), some with FUA, WRITE_ZEROES (with and without
 * NO_HOLE), FLUSH, NBD_CMD_CACHE, and READs that are checked against
 * the newest acknowledged write of every sector, whichever connection
 * wrote it.  Two requests never overlap in flight, so writes to a
 * sector are ordered: version numbers (one counter for all
 * connections) increase along that order.
 *
 * Data: every 64-byte chunk written is self-describing: its position,
 * the write's version, the cycle's seed, pseudo-random words derived
 * from those, and a checksum.  So any chunk in the host file says
 * which write put it there, and a misplaced, stale or torn chunk is
 * recognised.
 *
 * crash: per cycle, a fresh (sparse, zero) host file, the server
 * started, the workload run, SIGKILL at a random moment (the server
 * must not have died before), and the host file checked: each chunk
 * must be zero only where that is legal, and otherwise hold a version
 * at least as new as the newest write that had to be durable:
 *   - every write acknowledged before an acknowledged FLUSH was sent
 *     (on any connection), at every commit level;
 *   - every acknowledged FUA write at commit=medium and high, and at
 *     commit=low too, whose FUA writes reach the host file before the
 *     reply (SPEC section 6: what kill -9 can check);
 *   - every acknowledged write at commit=high.
 * A later write (acknowledged or not) may legally have overwritten it.
 * With --journal (the server runs with tests/faultinject.c preloaded
 * and FAULTINJECT_JOURNAL set), the same check also runs on the image
 * a host power cut at the moment of the kill would have left: only
 * the host writes followed by a completed fdatasync (or made through
 * an O_SYNC fd).  There commit=low FUA writes need not survive, the
 * rest must: this checks that FLUSH, FUA and commit=high really sync.
 * Commit levels and the @DELWRI@/@NIO@/@CACHE@/@SYNC@ settings rotate
 * over the cycles.  A failure prints the seed and cycle to replay.
 *
 * soak: one server, the workload for --seconds with no error allowed,
 * the server's VmRSS sampled every 50 ms, then SIGTERM with requests
 * in flight: the server must exit 0 and the host file must hold every
 * acknowledged write (or a later one that was in flight).
 *
 * load: the soak workload against a server that is already running
 * (--socket; the host file must start zeroed and no one else may
 * write to the export): for --seconds, then a FLUSH, and the host
 * file must hold every acknowledged write.  No request may fail or
 * wait longer than --max-latency seconds.  For the hostile-client
 * tests: the well-behaved client next to the hostile ones.
 *
 * Figures are printed as "figures: ..." lines.  Exit 0 on success,
 * 1 on a failure (after printing why), 77 if something is missing.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#define SECTOR 512
#define CHUNK 64
#define CHUNKS_PER_SECTOR (SECTOR / CHUNK)
#define CHUNK_MAGIC UINT64_C(0x4e424c)     /* "NBL", above a 40-bit index */

enum commit { C_NONE, C_LOW, C_MEDIUM, C_HIGH, NR_COMMIT };
static const char *commit_names[] = { "none", "low", "medium", "high" };

/* ---- options ---- */

static const char *mode;
static bool crash_mode;
static const char *file_path, *sock_path, *pidfile_path, *journal_path;
static const char *export_name = "lo0";
static uint64_t size = 8 << 20;
static unsigned nconns = 4, depth = 8;
static uint64_t seed;
static unsigned cycles = 50, first_cycle;
static unsigned max_ms = 150;
static double seconds = 10;
static uint64_t max_growth;             /* bytes of VmHWM above the start */
static uint32_t max_len = 256 * 1024;
static unsigned commit_mask = 0xf;      /* levels to rotate over */
static const char *soak_delwri = "2", *soak_nio = "1", *soak_cache = "64m";
static bool verbose;
static char **server_argv;
static int server_argc;

/* ---- small helpers ---- */

static void __attribute__ ((format (printf, 1, 2)))
say (const char *fs, ...)
{
  va_list ap;

  fprintf (stderr, "stress-client %s: ", mode);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fs, ...)
{
  va_list ap;

  fprintf (stderr, "stress-client %s: FAIL: ", mode);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
  exit (1);
}

static uint64_t
mix64 (uint64_t z)
{
  z += UINT64_C(0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t
rnd (uint64_t *state)
{
  *state += UINT64_C(0x9e3779b97f4a7c15);
  return mix64 (*state);
}

/* Uniform in [0, n). */
static uint64_t
below (uint64_t *state, uint64_t n)
{
  return n ? rnd (state) % n : 0;
}

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
now_ms (void)
{
  return now_s () * 1000;
}

static void
sleep_ms (double ms)
{
  struct timespec ts = { .tv_sec = ms / 1000,
                         .tv_nsec = (long) (ms * 1e6) % 1000000000 };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

static uint64_t
parse_size (const char *s)
{
  char *end;
  uint64_t n;

  errno = 0;
  n = strtoull (s, &end, 0);
  if (errno || end == s)
    die ("not a number: '%s'", s);
  switch (*end) {
  case 'k': case 'K': n <<= 10; end++; break;
  case 'm': case 'M': n <<= 20; end++; break;
  case 'g': case 'G': n <<= 30; end++; break;
  }
  if (*end)
    die ("not a number: '%s'", s);
  return n;
}

/* ---- chunks ---- */

static void
make_chunk (uint64_t *w, uint64_t cseed, uint64_t chunk, uint64_t version)
{
  uint64_t h = mix64 (cseed ^ mix64 (version ^ mix64 (chunk)));

  w[0] = (CHUNK_MAGIC << 40) | chunk;
  w[1] = version;
  w[2] = cseed;
  w[3] = h;
  w[4] = mix64 (h + 1);
  w[5] = mix64 (h + 2);
  w[6] = mix64 (h + 3);
  w[7] = mix64 (w[0] ^ mix64 (w[1] ^ mix64 (w[2] ^ h)));
}

static void
fill_sectors (void *buf, uint64_t cseed, uint64_t sector, uint32_t n,
              uint64_t version)
{
  uint64_t *w = buf;

  for (uint64_t c = 0; c < (uint64_t) n * CHUNKS_PER_SECTOR; c++)
    make_chunk (w + c * 8, cseed, sector * CHUNKS_PER_SECTOR + c, version);
}

static bool
chunk_is_zero (const uint64_t *w)
{
  for (int i = 0; i < 8; i++)
    if (w[i])
      return false;
  return true;
}

/* The version a chunk holds: 0 for zeroes, UINT64_MAX if it is not a
 * well-formed chunk of this position and seed.
 */
static uint64_t
chunk_version (const uint64_t *w, uint64_t cseed, uint64_t chunk)
{
  uint64_t want[8];

  if (chunk_is_zero (w))
    return 0;
  if (w[0] != ((CHUNK_MAGIC << 40) | chunk) || w[2] != cseed || w[1] == 0)
    return UINT64_MAX;
  make_chunk (want, cseed, chunk, w[1]);
  return memcmp (w, want, CHUNK) == 0 ? w[1] : UINT64_MAX;
}

static uint64_t current_seed (void);

static void
describe_chunk (const uint64_t *w, uint64_t chunk, char *out, size_t len)
{
  if (chunk_is_zero (w))
    snprintf (out, len, "zeroes");
  else if ((w[0] >> 40) != CHUNK_MAGIC)
    snprintf (out, len, "garbage (%016" PRIx64 " %016" PRIx64 ")",
              w[0], w[1]);
  else if ((w[0] & ((UINT64_C(1) << 40) - 1)) != chunk)
    snprintf (out, len, "the chunk of byte offset %" PRIu64 " (misplaced), "
              "version %" PRIu64,
              (w[0] & ((UINT64_C(1) << 40) - 1)) * CHUNK, w[1]);
  else
    snprintf (out, len, "version %" PRIu64 "%s", w[1],
              chunk_version (w, current_seed (), chunk) == UINT64_MAX
              ? " (corrupt, torn inside the chunk, or another seed's)" : "");
}

/* ---- shared state of one run ---- */

enum op_type { OP_WRITE, OP_ZERO, OP_READ, OP_FLUSH, OP_CACHE };

struct wrec {                   /* one write or zero, for the checks */
  uint64_t version;
  uint64_t ack_seq;             /* 0: not acknowledged */
  uint32_t start, n;            /* sectors */
  bool fua, zero;
};

struct thread {
  unsigned index;
  pthread_t tid;
  struct nbd_handle *nbd;
  uint64_t rng;
  unsigned inflight;
  bool can_fua, can_cache;
  struct wrec *recs;            /* crash mode only */
  size_t nr_recs, cap_recs;
  /* counters */
  uint64_t ops, writes, writes_acked, zeroes, fua_acked, reads_checked;
  uint64_t flushes, flushes_acked, caches, bytes;
  int error;                    /* first unexpected errno */
};

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

static struct {
  uint64_t nsect;
  uint64_t cseed;
  enum commit commit;
  pthread_mutex_t lock;         /* guards busy[] and the arrays below */
  uint8_t *busy;
  uint64_t *last_acked;         /* version */
  uint8_t *last_zero;           /* last_acked was a zero write */
  uint64_t *max_zero;           /* newest zero write issued */
  uint64_t next_version;        /* atomic */
  uint64_t clock;               /* atomic: ack and flush sequence */
  uint64_t flushed_before;      /* atomic max: acked flush issue seq */
  bool stop;                    /* atomic */
  bool terminating;             /* atomic: errors expected from now */
  bool failed;                  /* atomic */
  uint64_t last_progress_ms;    /* atomic: a request completed */
  uint64_t max_latency_us;      /* atomic max */
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t
current_seed (void)
{
  return g.cseed;
}

static void __attribute__ ((format (printf, 2, 3)))
fail_at (struct thread *t, const char *fs, ...)
{
  va_list ap;

  __atomic_store_n (&g.failed, true, __ATOMIC_SEQ_CST);
  if (t)
    fprintf (stderr, "stress-client %s: FAIL (conn %u): ", mode, t->index);
  else
    fprintf (stderr, "stress-client %s: FAIL: ", mode);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

static uint64_t
tick (void)
{
  return __atomic_add_fetch (&g.clock, 1, __ATOMIC_SEQ_CST);
}

static void
state_alloc (void)
{
  g.nsect = size / SECTOR;
  g.busy = calloc (g.nsect, 1);
  g.last_acked = calloc (g.nsect, sizeof *g.last_acked);
  g.last_zero = calloc (g.nsect, 1);
  g.max_zero = calloc (g.nsect, sizeof *g.max_zero);
  if (!g.busy || !g.last_acked || !g.last_zero || !g.max_zero)
    die ("out of memory");
}

static void
state_reset (uint64_t cseed, enum commit commit)
{
  memset (g.busy, 0, g.nsect);
  memset (g.last_acked, 0, g.nsect * sizeof *g.last_acked);
  memset (g.last_zero, 0, g.nsect);
  memset (g.max_zero, 0, g.nsect * sizeof *g.max_zero);
  g.cseed = cseed;
  g.commit = commit;
  g.next_version = 0;
  g.clock = 0;
  g.flushed_before = 0;
  g.stop = g.terminating = false;
  g.last_progress_ms = now_ms ();
  g.max_latency_us = 0;
}

/* Claim a free run of sectors (lock held). */
static bool
claim_locked (uint32_t start, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (g.busy[start + i])
      return false;
  memset (g.busy + start, 1, n);
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
  pthread_mutex_lock (&g.lock);
  for (uint32_t i = 0; i < op->n; i++) {
    g.last_acked[op->start + i] = op->version;
    g.last_zero[op->start + i] = zero;
  }
  pthread_mutex_unlock (&g.lock);
}

static void
release (struct op *op)
{
  if (op->n == 0)
    return;
  pthread_mutex_lock (&g.lock);
  memset (g.busy + op->start, 0, op->n);
  pthread_mutex_unlock (&g.lock);
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
    uint64_t want = g.last_zero[s] ? 0 : g.last_acked[s];

    for (unsigned c = 0; c < CHUNKS_PER_SECTOR; c++) {
      uint64_t chunk = s * CHUNKS_PER_SECTOR + c;
      const uint64_t *cw = w + (i * CHUNKS_PER_SECTOR + c) * 8;
      uint64_t v = chunk_version (cw, g.cseed, chunk);

      if (v != want) {
        describe_chunk (cw, chunk, what, sizeof what);
        fail_at (t, "READ at byte %" PRIu64 " returned %s; the newest "
                 "acknowledged write there is %s %" PRIu64,
                 chunk * CHUNK, what, g.last_zero[s] ? "zero write"
                 : "version", g.last_acked[s]);
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
    uint64_t cur = __atomic_load_n (&g.max_latency_us, __ATOMIC_RELAXED);
    while (cur < lat
           && !__atomic_compare_exchange_n (&g.max_latency_us, &cur, lat,
                                            false, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED))
      ;
  }
  if (ok)
    __atomic_store_n (&g.last_progress_ms, now_ms (), __ATOMIC_RELAXED);
  else if (!__atomic_load_n (&g.stop, __ATOMIC_SEQ_CST)
           && !__atomic_load_n (&g.terminating, __ATOMIC_SEQ_CST)
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
      uint64_t cur = __atomic_load_n (&g.flushed_before, __ATOMIC_SEQ_CST);
      while (cur < op->flush_seq
             && !__atomic_compare_exchange_n (&g.flushed_before, &cur,
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

    if (len > g.nsect)
      len = g.nsect;
    /* Mostly anywhere; sometimes on a 4 KiB boundary. */
    s = below (&t->rng, g.nsect - len + 1);
    if (below (&t->rng, 4) == 0)
      s &= ~UINT32_C(7);
    pthread_mutex_lock (&g.lock);
    ok = claim_locked (s, len);
    pthread_mutex_unlock (&g.lock);
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
    uint32_t s = below (&t->rng, g.nsect - n + 1);
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
      op->version = __atomic_add_fetch (&g.next_version, 1,
                                        __ATOMIC_SEQ_CST);
      rec.version = op->version;
      rec.start = s;
      rec.n = n;
      if (zero) {
        pthread_mutex_lock (&g.lock);
        for (uint32_t i = 0; i < n; i++)
          g.max_zero[s + i] = op->version;
        pthread_mutex_unlock (&g.lock);
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
        fill_sectors (op->buf, g.cseed, s, n, op->version);
        t->writes++;
        t->bytes += (uint64_t) n * SECTOR;
        cookie = nbd_aio_pwrite (t->nbd, op->buf, (size_t) n * SECTOR,
                                 (uint64_t) s * SECTOR, cb, flags);
      }
    }
  }
  if (cookie == -1) {
    /* Not issued: no callback will come. */
    if (!__atomic_load_n (&g.stop, __ATOMIC_SEQ_CST)
        && !__atomic_load_n (&g.terminating, __ATOMIC_SEQ_CST)
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
    bool stopping = __atomic_load_n (&g.stop, __ATOMIC_SEQ_CST)
      || __atomic_load_n (&g.terminating, __ATOMIC_SEQ_CST);

    while (!stopping && t->inflight < depth
           && !__atomic_load_n (&g.failed, __ATOMIC_RELAXED)) {
      int r = issue (t);
      if (r == -1)
        return NULL;
      if (r == 1)
        break;
    }
    if (__atomic_load_n (&g.failed, __ATOMIC_RELAXED) && !stopping)
      return NULL;
    if (stopping && t->inflight == 0) {
      /* After SIGTERM, disconnect like a client that is done: nbdkit
       * waits for its clients to go (the daemon closes idle ones).
       */
      if (__atomic_load_n (&g.terminating, __ATOMIC_SEQ_CST))
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

/* ---- the server ---- */

static pid_t server_pid;

static const char *sync_word = "async";

static char *
substitute (const char *word, const char *commit, const char *delwri,
            const char *nio, const char *cache)
{
  static const char *keys[] = { "@COMMIT@", "@DELWRI@", "@NIO@", "@CACHE@",
                                "@SYNC@" };
  const char *vals[] = { commit, delwri, nio, cache, sync_word };
  char *out = strdup (word);

  for (int k = 0; k < 5 && out; k++) {
    char *p;
    while ((p = strstr (out, keys[k])) != NULL) {
      char *n;
      if (asprintf (&n, "%.*s%s%s", (int) (p - out), out, vals[k],
                    p + strlen (keys[k])) == -1)
        die ("out of memory");
      free (out);
      out = n;
    }
  }
  if (out == NULL)
    die ("out of memory");
  return out;
}

static void
start_server (const char *commit, const char *delwri, const char *nio,
              const char *cache)
{
  char **argv = calloc (server_argc + 1, sizeof *argv);
  double deadline;

  if (argv == NULL)
    die ("out of memory");
  for (int i = 0; i < server_argc; i++)
    argv[i] = substitute (server_argv[i], commit, delwri, nio, cache);
  unlink (pidfile_path);
  unlink (sock_path);
  fflush (NULL);
  server_pid = fork ();
  if (server_pid == -1)
    die ("fork: %m");
  if (server_pid == 0) {
    /* If this client dies, so does its server. */
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    execvp (argv[0], argv);
    fprintf (stderr, "exec %s: %m\n", argv[0]);
    _exit (127);
  }
  for (int i = 0; i < server_argc; i++)
    free (argv[i]);
  free (argv);

  /* Ready once the pidfile names it (both servers write it last). */
  deadline = now_s () + 30;
  for (;;) {
    FILE *fp = fopen (pidfile_path, "r");
    long pid = 0;
    int status;

    if (fp) {
      if (fscanf (fp, "%ld", &pid) != 1)
        pid = 0;
      fclose (fp);
      if (pid == server_pid)
        return;
    }
    if (waitpid (server_pid, &status, WNOHANG) == server_pid)
      die ("the server exited instead of starting (status 0x%x)", status);
    if (now_s () > deadline)
      die ("the server did not write %s within 30 s", pidfile_path);
    sleep_ms (2);
  }
}

/* Reap the server; returns its wait status. */
static int
reap_server (double timeout)
{
  double deadline = now_s () + timeout;
  int status;

  for (;;) {
    pid_t r = waitpid (server_pid, &status, WNOHANG);
    if (r == server_pid)
      return status;
    if (r == -1)
      die ("waitpid: %m");
    if (now_s () > deadline) {
      kill (server_pid, SIGKILL);
      waitpid (server_pid, &status, 0);
      die ("the server did not exit within %g s", timeout);
    }
    sleep_ms (2);
  }
}

struct mem {
  uint64_t rss, hwm;            /* bytes */
};

static bool
server_memory (struct mem *m)
{
  char path[64], line[256];
  FILE *fp;

  snprintf (path, sizeof path, "/proc/%ld/status", (long) server_pid);
  fp = fopen (path, "r");
  if (fp == NULL)
    return false;
  m->rss = m->hwm = 0;
  while (fgets (line, sizeof line, fp)) {
    unsigned long long kb;
    if (sscanf (line, "VmRSS: %llu kB", &kb) == 1)
      m->rss = kb * 1024;
    else if (sscanf (line, "VmHWM: %llu kB", &kb) == 1)
      m->hwm = kb * 1024;
  }
  fclose (fp);
  return m->rss > 0;
}

/* ---- connections ---- */

static struct thread *threads;

static void
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

static void
start_threads (void)
{
  for (unsigned i = 0; i < nconns; i++) {
    int err = pthread_create (&threads[i].tid, NULL, thread_main,
                              &threads[i]);
    if (err)
      die ("pthread_create: %s", strerror (err));
  }
}

static void
join_threads (void)
{
  for (unsigned i = 0; i < nconns; i++)
    pthread_join (threads[i].tid, NULL);
}

static void
close_all (void)
{
  for (unsigned i = 0; i < nconns; i++) {
    nbd_close (threads[i].nbd);
    free (threads[i].recs);
  }
  free (threads);
  threads = NULL;
}

/* ---- checking the host file ---- */

struct check {
  uint64_t durable_writes;      /* writes whose data had to be there */
  uint64_t sectors_required;    /* sectors with a required version */
  uint64_t chunks;              /* chunks checked */
  uint64_t newer;               /* sectors overwritten by a later write */
  uint64_t torn;                /* sectors holding two versions */
};

/* The host file's contents (malloc'd). */
static uint64_t *
read_file (void)
{
  uint64_t *buf = malloc (size);
  ssize_t r;
  int fd;

  if (buf == NULL)
    die ("out of memory");
  fd = open (file_path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    die ("%s: %m", file_path);
  r = pread (fd, buf, size, 0);
  if (r != (ssize_t) size)
    die ("%s: short read (%zd bytes)", file_path, r);
  close (fd);
  return buf;
}

/* The journal's records (tests/faultinject.c). */
struct jrec {
  uint32_t magic;
  uint32_t type;
  uint64_t offset, count;
  uint64_t mode;
};
#define JREC_MAGIC 0x4a524543
#define FALLOC_PUNCH_HOLE 0x02
#define FALLOC_ZERO_RANGE 0x10

/* What a power cut at the kill would have left: starting from the
 * zeroed file, the writes and fallocates followed by a sync (malloc'd).
 * Sets *records and *synced for the figures.
 */
static uint64_t *
power_cut_image (uint64_t *records, uint64_t *synced)
{
  char *img = calloc (1, size), *j;
  size_t len = 0, cap = 1 << 20, pos = 0, *pending = NULL;
  size_t npending = 0, cap_pending = 0;
  FILE *fp;
  size_t n;

  *records = *synced = 0;
  j = malloc (cap);
  fp = fopen (journal_path, "r");
  if (img == NULL || j == NULL)
    die ("out of memory");
  if (fp == NULL)
    die ("%s: %m (is the shim preloaded into the server?)", journal_path);
  while ((n = fread (j + len, 1, cap - len, fp)) > 0) {
    len += n;
    if (len == cap && (j = realloc (j, cap *= 2)) == NULL)
      die ("out of memory");
  }
  fclose (fp);
  while (pos + sizeof (struct jrec) <= len) {
    struct jrec r;

    memcpy (&r, j + pos, sizeof r);
    if (r.magic != JREC_MAGIC)
      die ("%s: bad record at byte %zu", journal_path, pos);
    if (r.type == 'W' && pos + sizeof r + r.count > len)
      break;                    /* cut short by the kill */
    (*records)++;
    if (r.type == 'S') {
      for (size_t i = 0; i < npending; i++) {
        struct jrec p;
        memcpy (&p, j + pending[i], sizeof p);
        if (p.offset > size || p.count > size - p.offset)
          continue;
        if (p.type == 'W')
          memcpy (img + p.offset, j + pending[i] + sizeof p, p.count);
        else if (p.mode & (FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE))
          memset (img + p.offset, 0, p.count);
        (*synced)++;
      }
      npending = 0;
    }
    else {
      if (npending == cap_pending) {
        cap_pending = cap_pending ? 2 * cap_pending : 1024;
        pending = realloc (pending, cap_pending * sizeof *pending);
        if (pending == NULL)
          die ("out of memory");
      }
      pending[npending++] = pos;
    }
    pos += sizeof r + (r.type == 'W' ? r.count : 0);
  }
  free (pending);
  free (j);
  return (uint64_t *) img;
}

/* required[s]: the version that had to survive (0: none); buf: the
 * image to check (freed).
 */
static bool
check_file (const uint64_t *required, struct check *ck, const char *what,
            uint64_t *buf)
{
  uint64_t maxv = __atomic_load_n (&g.next_version, __ATOMIC_SEQ_CST);
  unsigned bad = 0;

  for (uint64_t s = 0; s < g.nsect; s++) {
    uint64_t first = UINT64_MAX;
    bool torn = false, newer = false;

    if (required[s])
      ck->sectors_required++;
    for (unsigned c = 0; c < CHUNKS_PER_SECTOR; c++) {
      uint64_t chunk = s * CHUNKS_PER_SECTOR + c;
      const uint64_t *w = buf + chunk * 8;
      uint64_t v = chunk_version (w, g.cseed, chunk);
      bool ok;
      char desc[160];

      ck->chunks++;
      if (v == 0)
        /* Zeroes: the initial content, or a zero write no older
         * than what had to survive.
         */
        ok = required[s] == 0 || g.max_zero[s] >= required[s];
      else
        ok = v != UINT64_MAX && v <= maxv && v >= required[s];
      if (ok && first != UINT64_MAX && v != first)
        torn = true;
      if (first == UINT64_MAX)
        first = v;
      if (ok && v > required[s] && required[s])
        newer = true;
      if (!ok && bad++ < 10) {
        describe_chunk (w, chunk, desc, sizeof desc);
        fail_at (NULL, "%s: byte %" PRIu64 " (sector %" PRIu64
                 ") holds %s, but version %" PRIu64 " had to survive "
                 "(newest zero write issued there: %" PRIu64 ", newest "
                 "version issued: %" PRIu64 ")", what, chunk * CHUNK, s,
                 desc, required[s], g.max_zero[s], maxv);
      }
    }
    if (torn)
      ck->torn++;
    if (newer)
      ck->newer++;
  }
  free (buf);
  return bad == 0;
}

/* ---- crash mode ---- */

struct level_figures {
  unsigned cycles;
  uint64_t issued, acked, fua_acked, flushes_acked, reads_checked;
  struct check ck;              /* the host file after kill -9 */
  struct check pc;              /* the power-cut image (--journal) */
  uint64_t records, synced;     /* journal records, and those synced */
};

static bool durable (const struct wrec *w, enum commit c,
                     uint64_t flushed_before, bool power_cut);

/* The versions that had to survive, by sector. */
static void
compute_required (uint64_t *required, enum commit c, bool power_cut,
                  uint64_t *durable_writes)
{
  memset (required, 0, g.nsect * sizeof *required);
  *durable_writes = 0;
  for (unsigned i = 0; i < nconns; i++) {
    struct thread *t = &threads[i];
    for (size_t k = 0; k < t->nr_recs; k++) {
      const struct wrec *w = &t->recs[k];
      if (!durable (w, c, g.flushed_before, power_cut))
        continue;
      (*durable_writes)++;
      for (uint32_t j = 0; j < w->n; j++)
        if (required[w->start + j] < w->version)
          required[w->start + j] = w->version;
    }
  }
}

static const char *delwri_choices[] = { "0", "0.02", "0.3", "60" };
static const char *nio_choices[] = { "0", "1", "2" };
static const char *cache_choices[] = { "512k", "4m", "64m" };

/* Did this write have to survive a kill -9 (power_cut false) or a
 * power cut (true)?  commit=low FUA writes reach the host file before
 * the reply, unsynced: they survive only the kill.
 */
static bool
durable (const struct wrec *w, enum commit c, uint64_t flushed_before,
         bool power_cut)
{
  if (w->ack_seq == 0)
    return false;
  if (w->ack_seq < flushed_before)
    return true;
  if (c == C_HIGH)
    return true;
  if (power_cut && c == C_LOW)
    return false;
  return w->fua && c != C_NONE;
}

static int
run_crash (void)
{
  struct level_figures fig[NR_COMMIT] = { { 0 } };
  uint64_t *required = malloc (size / SECTOR * sizeof *required);
  unsigned levels[NR_COMMIT], nlevels = 0;
  double t0 = now_s ();

  if (required == NULL)
    die ("out of memory");
  for (int c = 0; c < NR_COMMIT; c++)
    if (commit_mask & (1u << c))
      levels[nlevels++] = c;
  state_alloc ();

  for (unsigned cycle = first_cycle; cycle < first_cycle + cycles; cycle++) {
    uint64_t cseed = mix64 (seed ^ mix64 (cycle));
    uint64_t rng = cseed;
    enum commit c = levels[cycle % nlevels];
    const char *delwri = delwri_choices[below (&rng, 4)];
    const char *nio = nio_choices[below (&rng, 3)];
    const char *cache = cache_choices[below (&rng, 3)];
    double delay;
    int status, fd;
    struct level_figures *f = &fig[c];
    struct check ck = { 0 }, pc = { 0 };
    uint64_t records = 0, synced = 0;
    char what[200], what_pc[220];
    bool ok;

    sync_word = below (&rng, 4) == 0 ? "sync" : "async";
    if (journal_path) {
      fd = open (journal_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd == -1)
        die ("%s: %m", journal_path);
      close (fd);
    }

    /* A fresh sparse host file. */
    fd = open (file_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1 || ftruncate (fd, 0) == -1
        || ftruncate (fd, size) == -1)
      die ("%s: %m", file_path);
    close (fd);

    state_reset (cseed, c);
    start_server (commit_names[c], delwri, nio, cache);
    connect_all (cseed);
    /* Kill within a few ms, or at a random later moment. */
    delay = below (&rng, 10) == 0 ? below (&rng, 5000) / 1000.0
      : 5 + below (&rng, (max_ms > 5 ? max_ms - 5 : 1) * 1000) / 1000.0;
    start_threads ();
    sleep_ms (delay);
    __atomic_store_n (&g.stop, true, __ATOMIC_SEQ_CST);
    kill (server_pid, SIGKILL);
    join_threads ();
    status = reap_server (60);
    if (!WIFSIGNALED (status) || WTERMSIG (status) != SIGKILL)
      die ("seed %" PRIu64 " cycle %u: the server died on its own before "
           "the kill (wait status 0x%x): see its output above",
           seed, cycle, status);

    for (unsigned i = 0; i < nconns; i++) {
      struct thread *t = &threads[i];
      f->issued += t->writes + t->zeroes;
      f->acked += t->writes_acked;
      f->fua_acked += t->fua_acked;
      f->flushes_acked += t->flushes_acked;
      f->reads_checked += t->reads_checked;
    }
    snprintf (what, sizeof what, "seed %" PRIu64 " cycle %u (commit=%s "
              "delwri=%s nio=%s cache=%s %s, killed after %.1f ms)", seed,
              cycle, commit_names[c], delwri, nio, cache, sync_word, delay);
    /* The host file after kill -9. */
    compute_required (required, c, false, &ck.durable_writes);
    ok = check_file (required, &ck, what, read_file ());
    /* The image a power cut would have left. */
    if (ok && journal_path) {
      snprintf (what_pc, sizeof what_pc, "%s, power-cut image", what);
      compute_required (required, c, true, &pc.durable_writes);
      ok = check_file (required, &pc, what_pc,
                       power_cut_image (&records, &synced));
    }
    if (!ok || g.failed) {
      say ("replay this cycle: stress-client crash --seed %" PRIu64
           " --first-cycle %u --cycles 1 (same other options)", seed, cycle);
      close_all ();
      return 1;
    }
    if (verbose)
      say ("%s: %" PRIu64 " writes had to survive: ok", what,
           ck.durable_writes);
    f->cycles++;
    f->ck.durable_writes += ck.durable_writes;
    f->ck.sectors_required += ck.sectors_required;
    f->ck.chunks += ck.chunks;
    f->ck.newer += ck.newer;
    f->ck.torn += ck.torn;
    f->pc.durable_writes += pc.durable_writes;
    f->pc.sectors_required += pc.sectors_required;
    f->pc.newer += pc.newer;
    f->records += records;
    f->synced += synced;
    close_all ();
  }

  for (int c = 0; c < NR_COMMIT; c++) {
    struct level_figures *f = &fig[c];
    if (f->cycles == 0)
      continue;
    printf ("figures: crash commit=%-6s %4u kill cycles, %7" PRIu64
            " writes issued, %7" PRIu64 " acknowledged (%" PRIu64 " FUA), %6"
            PRIu64 " flushes acknowledged, %7" PRIu64 " writes had to "
            "survive and did (%" PRIu64 " sectors; %" PRIu64 " overwritten "
            "by a later write, %" PRIu64 " sectors torn between two legal "
            "versions), %" PRIu64 " reads verified\n",
            commit_names[c], f->cycles, f->issued, f->acked, f->fua_acked,
            f->flushes_acked, f->ck.durable_writes, f->ck.sectors_required,
            f->ck.newer, f->ck.torn, f->reads_checked);
    if (journal_path)
      printf ("figures: crash commit=%-6s power-cut images: %7" PRIu64
              " writes had to survive a power cut and did (%" PRIu64
              " sectors; %" PRIu64 " host writes/fallocates journalled, %"
              PRIu64 " of them synced before the kill)\n",
              commit_names[c], f->pc.durable_writes, f->pc.sectors_required,
              f->records, f->synced);
  }
  printf ("figures: crash total %u cycles in %.1f s, seed %" PRIu64 "\n",
          cycles, now_s () - t0, seed);
  free (required);
  return 0;
}

/* ---- soak mode ---- */

static int
run_soak (void)
{
  uint64_t cseed = mix64 (seed);
  uint64_t *required;
  struct mem base, m, peak = { 0 };
  struct check ck = { 0 };
  double t0, t1, stall = 0;
  uint64_t ops = 0, bytes = 0, acked = 0, reads = 0, flushes = 0;
  int fd, status;

  fd = open (file_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1 || ftruncate (fd, 0) == -1 || ftruncate (fd, size) == -1)
    die ("%s: %m", file_path);
  close (fd);
  state_alloc ();
  state_reset (cseed, C_MEDIUM);
  start_server ("medium", soak_delwri, soak_nio, soak_cache);
  if (!server_memory (&base))
    die ("cannot read the server's /proc/PID/status");
  connect_all (cseed);
  t0 = now_s ();
  start_threads ();
  while (now_s () - t0 < seconds && !g.failed) {
    sleep_ms (50);
    if (server_memory (&m)) {
      if (m.rss > peak.rss)
        peak.rss = m.rss;
      if (m.hwm > peak.hwm)
        peak.hwm = m.hwm;
    }
    {
      double idle = (now_ms () - __atomic_load_n (&g.last_progress_ms,
                                                  __ATOMIC_RELAXED)) / 1e3;
      if (idle > stall)
        stall = idle;
    }
    if (stall > 30) {
      fail_at (NULL, "no request completed for 30 s: the server hangs");
      break;
    }
  }
  t1 = now_s ();
  /* SIGTERM with requests in flight: they are answered or cut off;
   * whatever was acknowledged must be written back.
   */
  __atomic_store_n (&g.terminating, true, __ATOMIC_SEQ_CST);
  kill (server_pid, SIGTERM);
  join_threads ();
  status = reap_server (60);
  for (unsigned i = 0; i < nconns; i++) {
    ops += threads[i].ops;
    bytes += threads[i].bytes;
    acked += threads[i].writes_acked;
    reads += threads[i].reads_checked;
    flushes += threads[i].flushes_acked;
  }
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    fail_at (NULL, "the server did not exit 0 after SIGTERM (wait status "
             "0x%x)", status);

  required = malloc (g.nsect * sizeof *required);
  if (required == NULL)
    die ("out of memory");
  for (uint64_t s = 0; s < g.nsect; s++)
    required[s] = g.last_acked[s];
  ck.durable_writes = acked;
  check_file (required, &ck, "after SIGTERM", read_file ());

  printf ("figures: soak %u connections x depth %u for %.1f s: %" PRIu64
          " requests (%.0f ops/s, %.1f MiB/s), %" PRIu64 " writes "
          "acknowledged and found in the host file, %" PRIu64
          " reads verified, %" PRIu64 " flushes, longest stall %.2f s\n",
          nconns, depth, t1 - t0, ops, ops / (t1 - t0),
          bytes / (t1 - t0) / 1048576.0, acked, reads, flushes, stall);
  printf ("figures: soak server memory: VmRSS at start %.1f MiB, peak "
          "VmRSS %.1f MiB, VmHWM %.1f MiB (growth %.1f MiB); allowed growth "
          "%.1f MiB (cache=%s plus the per-connection bound)\n",
          base.rss / 1048576.0, peak.rss / 1048576.0,
          peak.hwm / 1048576.0, (peak.hwm - base.rss) / 1048576.0,
          max_growth / 1048576.0, soak_cache);
  if (max_growth && peak.hwm > base.rss + max_growth)
    fail_at (NULL, "the server's resident memory grew by %.1f MiB, "
             "more than the %.1f MiB allowed",
             (peak.hwm - base.rss) / 1048576.0, max_growth / 1048576.0);
  free (required);
  close_all ();
  if (g.failed)
    say ("seed %" PRIu64, seed);
  return g.failed ? 1 : 0;
}

/* ---- load mode ---- */

static double max_latency = 10;

static int
run_load (void)
{
  uint64_t cseed = mix64 (seed);
  uint64_t *required;
  struct check ck = { 0 };
  struct nbd_handle *nbd;
  double t0, t1;
  uint64_t ops = 0, bytes = 0, acked = 0, reads = 0;

  state_alloc ();
  state_reset (cseed, C_MEDIUM);
  connect_all (cseed);
  t0 = now_s ();
  start_threads ();
  while (now_s () - t0 < seconds && !g.failed)
    sleep_ms (50);
  t1 = now_s ();
  /* Stop issuing, let what is in flight finish, then one FLUSH. */
  __atomic_store_n (&g.terminating, true, __ATOMIC_SEQ_CST);
  join_threads ();
  for (unsigned i = 0; i < nconns; i++) {
    ops += threads[i].ops;
    bytes += threads[i].bytes;
    acked += threads[i].writes_acked;
    reads += threads[i].reads_checked;
  }
  nbd = nbd_create ();
  if (nbd == NULL || nbd_set_export_name (nbd, export_name) == -1
      || nbd_connect_unix (nbd, sock_path) == -1 || nbd_flush (nbd, 0) == -1)
    fail_at (NULL, "the final FLUSH: %s", nbd_get_error ());
  nbd_close (nbd);

  required = malloc (g.nsect * sizeof *required);
  if (required == NULL)
    die ("out of memory");
  for (uint64_t s = 0; s < g.nsect; s++)
    required[s] = g.last_acked[s];
  check_file (required, &ck, "after the final FLUSH", read_file ());
  printf ("figures: well-behaved client: %u connections x depth %u for "
          "%.1f s: %" PRIu64 " requests (%.0f ops/s, %.1f MiB/s), %" PRIu64
          " writes acknowledged and found in the host file, %" PRIu64
          " reads verified, longest request %.2f s\n", nconns, depth,
          t1 - t0, ops, ops / (t1 - t0), bytes / (t1 - t0) / 1048576.0,
          acked, reads, g.max_latency_us / 1e6);
  if (g.max_latency_us / 1e6 > max_latency)
    fail_at (NULL, "a request took %.2f s (at most %g s allowed)",
             g.max_latency_us / 1e6, max_latency);
  free (required);
  close_all ();
  if (g.failed)
    say ("seed %" PRIu64, seed);
  return g.failed ? 1 : 0;
}

/* ---- main ---- */

static void
usage (FILE *fp)
{
  fprintf (fp,
           "usage: stress-client crash|soak --file PATH --socket PATH "
           "--pidfile PATH [OPTIONS] -- SERVER-COMMAND...\n"
           "       stress-client load --file PATH --socket PATH "
           "[OPTIONS]\n"
           "(see the top of stress-client.c)\n");
}

int
main (int argc, char *argv[])
{
  static const struct option longopts[] = {
    { "file", required_argument, NULL, 'f' },
    { "socket", required_argument, NULL, 's' },
    { "pidfile", required_argument, NULL, 'P' },
    { "export", required_argument, NULL, 'e' },
    { "size", required_argument, NULL, 'S' },
    { "conns", required_argument, NULL, 'c' },
    { "depth", required_argument, NULL, 'd' },
    { "seed", required_argument, NULL, 'r' },
    { "cycles", required_argument, NULL, 'n' },
    { "first-cycle", required_argument, NULL, 'F' },
    { "max-ms", required_argument, NULL, 'm' },
    { "commit", required_argument, NULL, 'C' },
    { "seconds", required_argument, NULL, 't' },
    { "max-growth", required_argument, NULL, 'R' },
    { "max-len", required_argument, NULL, 'L' },
    { "delwri", required_argument, NULL, 'D' },
    { "nio", required_argument, NULL, 'N' },
    { "cache", required_argument, NULL, 'K' },
    { "verbose", no_argument, NULL, 'v' },
    { "journal", required_argument, NULL, 'J' },
    { "max-latency", required_argument, NULL, 'M' },
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  int c;

  if (argc >= 2 && strcmp (argv[1], "--help") == 0) {
    usage (stdout);
    return 0;
  }
  if (argc < 2 || (strcmp (argv[1], "crash") && strcmp (argv[1], "soak")
                    && strcmp (argv[1], "load"))) {
    usage (stderr);
    return 1;
  }
  mode = argv[1];
  crash_mode = strcmp (mode, "crash") == 0;
  argv++;
  argc--;
  seed = (uint64_t) time (NULL) ^ ((uint64_t) getpid () << 20);
  while ((c = getopt_long (argc, argv, "+v", longopts, NULL)) != -1) {
    switch (c) {
    case 'f': file_path = optarg; break;
    case 's': sock_path = optarg; break;
    case 'P': pidfile_path = optarg; break;
    case 'e': export_name = optarg; break;
    case 'S': size = parse_size (optarg); break;
    case 'c': nconns = parse_size (optarg); break;
    case 'd': depth = parse_size (optarg); break;
    case 'r': seed = parse_size (optarg); break;
    case 'n': cycles = parse_size (optarg); break;
    case 'F': first_cycle = parse_size (optarg); break;
    case 'm': max_ms = parse_size (optarg); break;
    case 't': seconds = strtod (optarg, NULL); break;
    case 'R': max_growth = parse_size (optarg); break;
    case 'L': max_len = parse_size (optarg); break;
    case 'D': soak_delwri = optarg; break;
    case 'N': soak_nio = optarg; break;
    case 'K': soak_cache = optarg; break;
    case 'v': verbose = true; break;
    case 'J': journal_path = optarg; break;
    case 'M': max_latency = strtod (optarg, NULL); break;
    case 'C': {
      char *copy = strdup (optarg), *save = NULL;
      commit_mask = 0;
      for (char *w = strtok_r (copy, ",", &save); w;
           w = strtok_r (NULL, ",", &save)) {
        int k;
        for (k = 0; k < NR_COMMIT; k++)
          if (strcmp (w, commit_names[k]) == 0)
            break;
        if (k == NR_COMMIT)
          die ("--commit: unknown level '%s'", w);
        commit_mask |= 1u << k;
      }
      free (copy);
      break;
    }
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 1;
    }
  }
  if (!file_path || !sock_path
      || (strcmp (mode, "load") != 0 && (!pidfile_path || optind >= argc))
      || commit_mask == 0 || size < 1 << 20 || size % 4096
      || nconns == 0 || depth == 0 || max_len < SECTOR) {
    usage (stderr);
    return 1;
  }
  server_argv = &argv[optind];
  server_argc = argc - optind;
  setvbuf (stdout, NULL, _IOLBF, 0);
  say ("seed %" PRIu64 " (--seed to replay)", seed);
  if (strcmp (mode, "load") == 0)
    return run_load ();
  return crash_mode ? run_crash () : run_soak ();
}
