/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: zero and trim against pending dirty blocks, and
 * extents.
 *
 * Data written (still dirty) and then zeroed must never come back:
 * not through reads, not in the host after write-back, not even when
 * its write-back is already under way as the zero arrives; data
 * written or read while a zero is under way must not bring the old
 * contents back either.  Trimmed
 * ranges are punched on the host and stay punched.  Zeroes at any
 * alignment are exact to the byte.  CACHE_FAST_ZERO on a host without
 * a fast zero fails with ENOTSUP; a plain zero there still works.
 * Extents merge host holes with the cache: a dirty block over a hole
 * is data.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (2 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE
#define DELWRI_MS 2000

static uint8_t model[SIZE];
static uint8_t buf[SIZE];
static uint8_t data[SIZE];

static struct fake *
new_fake (const char *name, bool slow_zero)
{
  struct fake_config fc = { .name = name, .size = SIZE,
                            .slow_zero = slow_zero };
  struct fake *fk = fake_new (&fc);

  pattern_fill (model, SIZE, 0, 1);
  fake_fill (fk, model, SIZE, 0);
  return fk;
}

static void
do_write (struct cache_export *exp, uint64_t offset, uint64_t count,
          uint32_t tag, unsigned flags)
{
  pattern_fill (data, count, offset, tag);
  assert (cache_write (exp, data, count, offset, flags) == 0);
  memcpy (model + offset, data, count);
}

static void
do_zero (struct cache_export *exp, uint64_t offset, uint64_t count,
         unsigned flags)
{
  if (cache_zero (exp, count, offset, flags) == -1) {
    fprintf (stderr, "cache_zero [%" PRIu64 ", +%" PRIu64 "): %m\n",
             offset, count);
    abort ();
  }
  memset (model + offset, 0, count);
}

static void
check_all (struct cache_export *exp, struct fake *fk, const char *what)
{
  assert (cache_read (exp, buf, SIZE, 0) == 0);
  check_bytes (what, buf, model, SIZE, 0);
  if (fk) {
    fake_read_image (fk, buf, SIZE, 0);
    check_bytes (what, buf, model, SIZE, 0);
  }
}

static void
write_back (void)
{
  fake_clock_advance (DELWRI_MS);
  assert (cache_writeback_due () >= 0);
}

static void
test_zero_dirty (unsigned zflags, const char *name)
{
  struct fake *fk = new_fake ("zero", false);
  struct cache_export *exp;
  const uint64_t a = 64 * BLK, alen = 16 * BLK;

  printf ("zero after dirty writes (%s)\n", name);
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);

  /* Dirty, never written back, then zeroed. */
  do_write (exp, a, alen, 2, 0);
  do_zero (exp, a, alen, zflags);
  check_all (exp, NULL, "zeroed dirty data, before write-back");
  write_back ();
  check_all (exp, fk, "zeroed dirty data, after write-back");

  /* Written back, rewritten (dirty), zeroed, partly written again. */
  do_write (exp, a + 100, alen, 3, 0);
  write_back ();
  do_write (exp, a + 5000, 20000, 4, 0);
  do_zero (exp, a, alen + 4096, zflags);
  do_write (exp, a + 9000, 3000, 5, 0);
  check_all (exp, NULL, "zero between writes");
  write_back ();
  check_all (exp, fk, "zero between writes, after write-back");
  assert (cache_flush (exp) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));

  /* Dirty, then zeroed, then a flush at once. */
  do_write (exp, 300 * BLK + 7, 5 * BLK, 6, 0);
  do_zero (exp, 300 * BLK, 6 * BLK, zflags);
  assert (cache_flush (exp) == 0);
  check_all (exp, fk, "zero then flush");
  assert (fake_durable_is (fk, model, SIZE, 0));

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* Exact to the byte, cached and dirty or not. */
static void
test_zero_exact (uint64_t seed)
{
  struct fake *fk = new_fake ("exact", false);
  struct cache_export *exp;
  uint64_t rs = seed;

  printf ("unaligned zeroes are exact\n");
  test_cache_init ("cache=256k,delwri=2,commit=medium", false);
  exp = test_open (fk);
  for (unsigned i = 0; i < 400; i++) {
    uint64_t len = 1 + test_rand_below (&rs, 3 * BLK);
    uint64_t off = test_rand_below (&rs, SIZE - len);
    unsigned flags = (i & 1 ? CACHE_MAY_TRIM : 0) | (i & 2 ? CACHE_FUA : 0);
    uint64_t lo, hi;

    switch (test_rand_below (&rs, 3)) {
    case 0: do_write (exp, off / 2, len * 2, 100 + i, 0); break;
    case 1: write_back (); break;
    default: break;
    }
    do_zero (exp, off, len, flags);
    lo = off > BLK ? off - BLK : 0;
    hi = off + len + BLK < SIZE ? off + len + BLK : SIZE;
    assert (cache_read (exp, buf, hi - lo, lo) == 0);
    check_bytes ("around an unaligned zero", buf, model + lo, hi - lo, lo);
  }
  check_all (exp, NULL, "after unaligned zeroes");
  assert (cache_flush (exp) == 0);
  check_all (exp, fk, "unaligned zeroes, flushed");
  assert (fake_durable_is (fk, model, SIZE, 0));
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* The write-back of a dirty block is already on its way to the host
 * when a zero of it arrives: the zero must win.
 */
struct job {
  struct cache_export *exp;
  int r;
};

static void *
flush_thread (void *arg)
{
  struct job *j = arg;

  j->r = cache_flush (j->exp);
  return NULL;
}

static void *
zero_thread (void *arg)
{
  struct job *j = arg;

  int r = cache_zero (j->exp, 8 * BLK, 80 * BLK, 0);

  __atomic_store_n (&j->r, r, __ATOMIC_SEQ_CST);
  return NULL;
}

struct zero_race {
  struct fake *fk;
  uint64_t ops;
  struct job *job;
};

static bool
zero_progressed (void *opaque)
{
  struct zero_race *z = opaque;

  return __atomic_load_n (&z->job->r, __ATOMIC_SEQ_CST) != 1 ||
    fake_ops (z->fk, FAKE_ZERO) + fake_ops (z->fk, FAKE_TRIM) > z->ops;
}

static void
test_zero_races_write_back (void)
{
  struct fake *fk = new_fake ("race", false);
  struct cache_export *exp;
  struct job jf, jz = { .r = 1 };
  struct zero_race zr;
  pthread_t tf, tz;
  uint64_t zero_ops;

  printf ("zero while the dirty block's write-back is in flight\n");
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  jf.exp = jz.exp = exp;

  do_write (exp, 80 * BLK, 8 * BLK, 7, 0);
  fake_gate (fk, FAKE_PWRITE, true);
  assert (pthread_create (&tf, NULL, flush_thread, &jf) == 0);
  assert (fake_gate_wait (fk, FAKE_PWRITE, 1, 10000) == 0);
  /* The old data is on its way; now zero it. */
  assert (pthread_create (&tz, NULL, zero_thread, &jz) == 0);
  /* Give the zero every chance to reach the host first: wait until it
   * did (or finished in the cache), or for a bounded race window if
   * the cache rightly holds it until the write-back is done.
   */
  zero_ops = fake_ops (fk, FAKE_ZERO) + fake_ops (fk, FAKE_TRIM);
  zr.fk = fk;
  zr.ops = zero_ops;
  zr.job = &jz;
  poll_until (zero_progressed, &zr, 300);
  fake_gate (fk, FAKE_PWRITE, false);
  assert (pthread_join (tf, NULL) == 0);
  assert (pthread_join (tz, NULL) == 0);
  assert (jf.r == 0 && jz.r == 0);
  memset (model + 80 * BLK, 0, 8 * BLK);
  check_all (exp, NULL, "zero racing a write-back");
  assert (cache_flush (exp) == 0);
  check_all (exp, fk, "zero racing a write-back, flushed");
  write_back ();
  check_all (exp, fk, "zero racing a write-back, later");

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* The other way round: a zero is on its way to the host when the range
 * is written again and flushed.  The new data must not be wiped by the
 * zero landing after its write-back.
 */
struct async_op {
  struct cache_export *exp;
  int kind;                     /* 0 zero, 1 write, 2 read, 3 flush */
  int r;                        /* 1 until done */
};

static void *
async_thread (void *arg)
{
  struct async_op *a = arg;
  int r;

  switch (a->kind) {
  case 0:
    r = cache_zero (a->exp, 8 * BLK, 160 * BLK, 0);
    break;
  case 1:
    pattern_fill (data, 3 * BLK, 162 * BLK + 100, 12);
    r = cache_write (a->exp, data, 3 * BLK, 162 * BLK + 100, 0);
    break;
  case 2: {
    /* May see the old data or zeroes: it is not checked. */
    static uint8_t tmp[2 * BLK];
    r = cache_read (a->exp, tmp, 2 * BLK, 166 * BLK);
    break;
  }
  default:
    r = cache_flush (a->exp);
    break;
  }
  __atomic_store_n (&a->r, r, __ATOMIC_SEQ_CST);
  return NULL;
}

static bool
async_done (void *opaque)
{
  struct async_op *a = opaque;

  return __atomic_load_n (&a->r, __ATOMIC_SEQ_CST) != 1;
}

static void
test_write_during_zero (void)
{
  struct fake *fk = new_fake ("zero-in-flight", false);
  struct cache_export *exp;
  struct async_op a[4];
  pthread_t th[4];

  printf ("write, read and flush while a zero of the range is in "
          "flight\n");
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  do_write (exp, 160 * BLK, 8 * BLK, 11, 0);
  assert (cache_flush (exp) == 0);

  fake_gate (fk, FAKE_ZERO, true);
  for (int i = 0; i < 4; i++) {
    a[i] = (struct async_op) { .exp = exp, .kind = i, .r = 1 };
    assert (pthread_create (&th[i], NULL, async_thread, &a[i]) == 0);
    if (i == 0)
      assert (fake_gate_wait (fk, FAKE_ZERO, 1, 10000) == 0);
    else
      /* It may finish, or rightly wait for the zero: a bounded window. */
      poll_until (async_done, &a[i], 300);
  }
  fake_gate (fk, FAKE_ZERO, false);
  for (int i = 0; i < 4; i++) {
    assert (pthread_join (th[i], NULL) == 0);
    assert (a[i].r == 0);
  }
  /* The zero and the write were in flight together, so either order
   * is a valid outcome, byte by byte: the new data or zeroes where the
   * write went, zeroes in the rest of the zeroed range (also where the
   * concurrent read went: what it read must not stay cached), nothing
   * else changed.  And the host must end up with what the cache shows.
   */
  assert (cache_read (exp, buf, SIZE, 0) == 0);
  pattern_fill (data, 3 * BLK, 162 * BLK + 100, 12);
  for (uint64_t o = 160 * BLK; o < 168 * BLK; o++) {
    bool in_write = o >= 162 * BLK + 100 && o < 165 * BLK + 100;
    if (buf[o] != 0 && !(in_write && buf[o] == data[o - 162 * BLK - 100])) {
      fprintf (stderr, "write during a zero: byte %" PRIu64 " is 0x%02x: "
               "neither zero nor the new data (stale data came back)\n",
               o, buf[o]);
      fake_log_print (fk, 0, stderr);
      abort ();
    }
  }
  check_bytes ("write during a zero, outside", buf, model, 160 * BLK, 0);
  check_bytes ("write during a zero, outside", buf + 168 * BLK,
               model + 168 * BLK, SIZE - 168 * BLK, 168 * BLK);
  assert (cache_flush (exp) == 0);
  if (!fake_durable_is (fk, buf, SIZE, 0)) {
    fprintf (stderr, "write during a zero: the host does not hold what the "
             "cache shows (the zero landed after the write-back):\n");
    fake_log_print (fk, 0, stderr);
    abort ();
  }
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
test_trim (void)
{
  struct fake *fk = new_fake ("trim", false);
  struct cache_export *exp;
  const uint64_t t = 128 * BLK, tlen = 16 * BLK;
  size_t log0;

  printf ("trim of dirty blocks: punched, and stays punched\n");
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);

  log0 = fake_log_len (fk);
  do_write (exp, t, tlen, 8, 0);
  assert (cache_trim (exp, tlen, t, 0) == 0);
  write_back ();
  assert (cache_flush (exp) == 0);
  write_back ();
  if (!fake_image_is (fk, NULL, tlen, t)) {
    fprintf (stderr, "trim of dirty blocks: the host range was not punched "
             "or the old data came back after it:\n");
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  /* Outside the range, nothing changed. */
  assert (fake_image_is (fk, model, t, 0));
  assert (fake_image_is (fk, model + t + tlen, SIZE - t - tlen, t + tlen));
  /* Written again after the trim: the new data lands. */
  do_write (exp, t + 4 * BLK, 100, 9, 0);
  write_back ();
  assert (fake_image_is (fk, model + t + 4 * BLK, 100, t + 4 * BLK));

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
test_fast_zero (void)
{
  struct fake *fk = new_fake ("fast", true);
  struct cache_export *exp;
  int r;

  printf ("CACHE_FAST_ZERO on a host without fast zero\n");
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);

  r = cache_zero (exp, 32 * BLK, 200 * BLK, CACHE_FAST_ZERO);
  if (r != -1 || errno != ENOTSUP) {
    fprintf (stderr, "fast zero on a slow host: returned %d (%s), expected "
             "ENOTSUP\n", r, r == -1 ? strerror (errno) : "no error");
    abort ();
  }
  r = cache_zero (exp, 10 * BLK + 5, 300 * BLK + 3,
                  CACHE_FAST_ZERO | CACHE_MAY_TRIM);
  assert (r == -1 && errno == ENOTSUP);
  /* A plain zero works there (writing zeroes). */
  do_zero (exp, 32 * BLK, 200 * BLK, 0);
  do_zero (exp, 10 * BLK + 5, 300 * BLK + 3, CACHE_MAY_TRIM);
  check_all (exp, NULL, "plain zero on a slow host");
  assert (cache_flush (exp) == 0);
  check_all (exp, fk, "plain zero on a slow host, flushed");
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);

  /* On a host with a fast zero, it works. */
  fk = new_fake ("fast-ok", false);
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  do_zero (exp, 32 * BLK, 200 * BLK, CACHE_FAST_ZERO);
  check_all (exp, NULL, "fast zero");
  assert (cache_flush (exp) == 0);
  check_all (exp, fk, "fast zero, flushed");
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* Extents: collect and check the shape. */
struct extent_list {
  uint64_t start, next;         /* requested start; where the next must begin */
  bool hole[SIZE / BLK];        /* per block, as reported */
  unsigned n;
};

static int
collect (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct extent_list *l = opaque;

  if (offset != l->next || length == 0 || offset + length > SIZE) {
    fprintf (stderr, "extents: [%" PRIu64 ", +%" PRIu64 ") does not follow "
             "on from %" PRIu64 " within the export\n", offset, length,
             l->next);
    abort ();
  }
  for (uint64_t b = offset / BLK; b * BLK < offset + length; b++)
    l->hole[b] = hole;
  l->next = offset + length;
  l->n++;
  return 0;
}

static void
get_extents (struct cache_export *exp, uint64_t offset, uint64_t count,
             struct extent_list *l)
{
  memset (l, 0, sizeof *l);
  for (size_t i = 0; i < SIZE / BLK; i++)
    l->hole[i] = true;
  l->start = l->next = offset;
  assert (cache_extents (exp, count, offset, collect, l) == 0);
  assert (l->n > 0);
  assert (l->next >= offset + count);
}

static void
test_extents (void)
{
  struct fake_config fc = { .name = "extents", .size = SIZE };
  struct fake *fk = fake_new (&fc);     /* all holes */
  struct cache_export *exp;
  static struct extent_list l;
  uint64_t data_blocks[] = { 10, 11, 20, 30, 31, 200 };

  printf ("extents: host holes merged with dirty blocks\n");
  memset (model, 0, SIZE);
  pattern_fill (data, 2 * BLK, 10 * BLK, 1);
  fake_fill (fk, data, 2 * BLK, 10 * BLK);      /* host data */
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  do_write (exp, 20 * BLK, BLK, 2, 0);          /* dirty over a hole */
  do_write (exp, 30 * BLK + 4000, 200, 3, 0);   /* straddles 30 and 31 */
  do_write (exp, 200 * BLK + 17, 1, 4, 0);      /* one byte */
  assert (!fake_allocated (fk, 20 * BLK));      /* still only in the cache */

  get_extents (exp, 0, SIZE, &l);
  for (uint64_t b = 0; b < SIZE / BLK; b++) {
    bool data_block = false;
    for (size_t i = 0; i < sizeof data_blocks / sizeof data_blocks[0]; i++)
      data_block |= data_blocks[i] == b;
    if (data_block && l.hole[b]) {
      fprintf (stderr, "extents: block %" PRIu64 " holds data but was "
               "reported as a hole\n", b);
      abort ();
    }
    if (!data_block && !l.hole[b]) {
      fprintf (stderr, "extents: block %" PRIu64 " is a hole but was "
               "reported as data\n", b);
      abort ();
    }
  }

  /* An unaligned request starts where asked and covers the range. */
  get_extents (exp, 5000, 100000, &l);
  assert (!l.hole[20]);

  /* Once written back, still data. */
  assert (cache_flush (exp) == 0);
  get_extents (exp, 0, SIZE, &l);
  for (size_t i = 0; i < sizeof data_blocks / sizeof data_blocks[0]; i++)
    assert (!l.hole[data_blocks[i]]);
  assert (l.hole[0] && l.hole[100]);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  uint64_t seed = test_seed ("unit-cache-zero", true, 0);

  test_watchdog (60);
  fake_clock_set (1000000);
  test_zero_dirty (0, "plain");
  test_zero_dirty (CACHE_MAY_TRIM, "may trim");
  test_zero_dirty (CACHE_FUA, "FUA");
  test_zero_exact (seed);
  test_zero_races_write_back ();
  test_write_during_zero ();
  test_trim ();
  test_fast_zero ();
  test_extents ();
  printf ("ok\n");
  return 0;
}
