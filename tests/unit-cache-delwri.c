/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: when delayed writes reach the host.
 *
 * With the fake clock and cache_writeback_due standing in for the
 * flusher, the deadline min(first dirtied + postpone, last dirtied +
 * delwri) is checked to the millisecond: a block is still dirty 1 ms
 * before it and in the host at it; re-dirtying postpones it, but never
 * past postpone; postpone defaults to delwri.  The clock starts at 0
 * (an arbitrary origin).  delwri=0 writes back at once, in the
 * background: the writer does not wait for the host write.  Adjacent
 * dirty blocks go out as one large host write, whatever order they
 * were written in.
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

#define SIZE (4 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static uint8_t model[SIZE];
static uint8_t data[SIZE];

static struct fake *
new_fake (const char *name)
{
  struct fake_config fc = { .name = name, .size = SIZE };
  struct fake *fk = fake_new (&fc);

  pattern_fill (model, SIZE, 0, 1);
  fake_fill (fk, model, SIZE, 0);
  return fk;
}

static void
write_block (struct cache_export *exp, uint64_t index, uint32_t tag)
{
  pattern_fill (data, BLK, index * BLK, tag);
  assert (cache_write (exp, data, BLK, index * BLK, 0) == 0);
  memcpy (model + index * BLK, data, BLK);
}

static bool
in_host (struct fake *fk, uint64_t index)
{
  return fake_image_is (fk, model + index * BLK, BLK, index * BLK);
}

/* Run one write-back pass at the current fake time; check whether the
 * block is (now) in the host.
 */
static void
due_expect (struct fake *fk, struct cache_export *exp, uint64_t index,
            bool expect_written, const char *what)
{
  size_t log0 = fake_log_len (fk);
  int r = cache_writeback_due ();

  assert (r >= 0);
  if (in_host (fk, index) != expect_written) {
    fprintf (stderr, "%s at t=%" PRIu64 ": block %" PRIu64 " %s\n", what,
             fake_clock_now (), index,
             expect_written ? "was not written back by its deadline"
             : "was written back before its deadline");
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  (void) exp;
}

static void
test_delwri (void)
{
  struct fake *fk = new_fake ("delwri");
  struct cache_export *exp;
  size_t log0;

  printf ("delwri=2: written back at first dirtied + 2 s exactly\n");
  fake_clock_set (0);
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);

  log0 = fake_log_len (fk);
  /* The flusher sleeps until the earliest deadline: none yet. */
  assert (cache_writeback_due () == 0);
  assert (cache_next_due () == UINT64_MAX);
  write_block (exp, 10, 2);                     /* t = 0 */
  assert (cache_next_due () == 2000);           /* announced by the write */
  fake_clock_set (1000);
  write_block (exp, 20, 3);                     /* t = 1000 */
  assert (cache_next_due () == 2000);
  fake_clock_set (1999);
  due_expect (fk, exp, 10, false, "delwri=2, block 10");
  assert (cache_next_due () == 2000);           /* found by the walk */
  assert (test_stats (exp).dirty_blocks == 2);
  fake_clock_set (2000);
  due_expect (fk, exp, 10, true, "delwri=2, block 10");
  due_expect (fk, exp, 20, false, "delwri=2, block 20");
  assert (test_stats (exp).dirty_blocks == 1);
  /* Written by a write-back pass, in the background. */
  assert (fake_log_count (fk, FAKE_PWRITE, log0, 10 * BLK, BLK) == 1);
  for (size_t i = log0; i < fake_log_len (fk); i++) {
    struct fake_op op = fake_log_at (fk, i);
    if (op.kind == FAKE_PWRITE)
      assert (op.prio == IO_PRIO_BACKGROUND && op.time_ms == 2000);
  }
  assert (cache_next_due () == 3000);           /* block 20 is next */
  fake_clock_set (2999);
  due_expect (fk, exp, 20, false, "delwri=2, block 20");
  fake_clock_set (3000);
  log0 = fake_log_len (fk);
  assert (cache_writeback_due () == 1);
  assert (in_host (fk, 20));
  assert (test_stats (exp).dirty_blocks == 0);
  assert (cache_next_due () == UINT64_MAX);
  /* Nothing left to do: nothing more is written. */
  fake_clock_set (100000);
  assert (cache_writeback_due () == 0);
  assert (fake_log_count (fk, FAKE_PWRITE, log0, 0, 0) == 1);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* Re-dirty a block every second from t0 until it is written back;
 * return when it was.
 */
static uint64_t
redirty_until_written (struct fake *fk, struct cache_export *exp,
                       uint64_t index, uint64_t t0, uint64_t limit,
                       uint32_t *tag)
{
  for (uint64_t t = t0;; t += 1000) {
    fake_clock_set (t);
    if (t > t0) {
      assert (cache_writeback_due () >= 0);
      if (in_host (fk, index))
        return t;
      if (t - t0 > limit) {
        fprintf (stderr, "block re-dirtied every second since %" PRIu64
                 " not written back by %" PRIu64 "\n", t0, t);
        abort ();
      }
    }
    write_block (exp, index, (*tag)++);
  }
}

static void
test_postpone (void)
{
  struct fake *fk = new_fake ("postpone");
  struct cache_export *exp;
  uint32_t tag = 100;
  uint64_t t;

  printf ("delwri=2,postpone=5: re-dirtying postpones up to 5 s\n");
  fake_clock_set (0);
  test_cache_init ("cache=4m,delwri=2,postpone=5,commit=medium,nora", false);
  exp = test_open (fk);

  /* Dirtied at 0, 1, 2, 3, 4: due at min (0 + 5, 4 + 2) = 5. */
  t = redirty_until_written (fk, exp, 7, 0, 5000, &tag);
  if (t != 5000) {
    fprintf (stderr, "postpone: re-dirtied block written at %" PRIu64
             ", expected 5000\n", t);
    abort ();
  }
  /* The block is clean again: a new first-dirtied time. */
  t = redirty_until_written (fk, exp, 7, 6000, 5000, &tag);
  if (t != 11000) {
    fprintf (stderr, "postpone: second round written at %" PRIu64
             ", expected 11000\n", t);
    abort ();
  }

  /* Dirtied at 20000 and 21000 only: due at min (25000, 23000). */
  fake_clock_set (20000);
  write_block (exp, 30, 200);
  fake_clock_set (21000);
  write_block (exp, 30, 201);
  fake_clock_set (22000);
  due_expect (fk, exp, 30, false, "delwri=2,postpone=5, last dirtied + 1 s");
  assert (cache_next_due () == 23000);
  fake_clock_set (22999);
  due_expect (fk, exp, 30, false, "delwri=2,postpone=5");
  fake_clock_set (23000);
  due_expect (fk, exp, 30, true, "delwri=2,postpone=5, last dirtied + 2 s");

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);

  printf ("delwri=2: postpone defaults to delwri\n");
  fk = new_fake ("postpone-default");
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  t = redirty_until_written (fk, exp, 3, 50000, 2000, &tag);
  if (t != 52000) {
    fprintf (stderr, "default postpone: written at %" PRIu64
             ", expected 52000\n", t);
    abort ();
  }
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

struct write_job {
  struct cache_export *exp;
  uint64_t offset;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int r;
};

static void *
write_job_thread (void *arg)
{
  struct write_job *j = arg;
  int r;

  pattern_fill (data, BLK, j->offset, 50);
  r = cache_write (j->exp, data, BLK, j->offset, 0);
  pthread_mutex_lock (&j->lock);
  j->r = r;
  j->done = true;
  pthread_cond_broadcast (&j->cond);
  pthread_mutex_unlock (&j->lock);
  return NULL;
}

struct cond_arg {
  struct fake *fk;
  struct cache_export *exp;
  uint64_t offset;
};

static bool
written_and_clean (void *opaque)
{
  struct cond_arg *c = opaque;

  return test_stats (c->exp).dirty_blocks == 0 &&
    fake_image_is (c->fk, model + c->offset, BLK, c->offset);
}

static void
test_delwri_zero (void)
{
  struct fake *fk = new_fake ("delwri0");
  struct cache_export *exp;
  struct write_job j = { .offset = 40 * BLK,
                         .lock = PTHREAD_MUTEX_INITIALIZER,
                         .cond = PTHREAD_COND_INITIALIZER };
  struct cond_arg c = { .fk = fk, .offset = 40 * BLK };
  struct timespec ts;
  pthread_t th;
  size_t log0;
  bool found = false;

  printf ("delwri=0: written back at once, in the background\n");
  fake_clock_set (70000);
  test_cache_init ("cache=4m,delwri=0,commit=medium,nora", true);
  exp = test_open (fk);
  j.exp = c.exp = exp;

  /* Hold host writes: the writer must return all the same. */
  log0 = fake_log_len (fk);
  fake_gate (fk, FAKE_PWRITE, true);
  assert (pthread_create (&th, NULL, write_job_thread, &j) == 0);
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += test_sanitized () ? 50 : 10;
  pthread_mutex_lock (&j.lock);
  while (!j.done)
    if (pthread_cond_timedwait (&j.cond, &j.lock, &ts) != 0) {
      fprintf (stderr, "delwri=0: cache_write waited for the host write "
                       "(write-back is not in the background)\n");
      abort ();
    }
  pthread_mutex_unlock (&j.lock);
  assert (pthread_join (th, NULL) == 0);
  assert (j.r == 0);
  pattern_fill (model + j.offset, BLK, j.offset, 50);

  /* The flusher gets to the host write without the clock moving. */
  if (fake_gate_wait (fk, FAKE_PWRITE, 1, 10000) == -1) {
    fprintf (stderr, "delwri=0: no write-back started within 10 s\n");
    abort ();
  }
  fake_gate (fk, FAKE_PWRITE, false);
  if (!poll_until (written_and_clean, &c, 10000)) {
    fprintf (stderr, "delwri=0: block not written back within 10 s\n");
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  for (size_t i = log0; i < fake_log_len (fk); i++) {
    struct fake_op op = fake_log_at (fk, i);
    if (op.kind == FAKE_PWRITE && op.offset <= j.offset &&
        op.offset + op.count >= j.offset + BLK) {
      assert (op.prio == IO_PRIO_BACKGROUND);
      found = true;
    }
  }
  assert (found);

  /* Again, with nothing held. */
  c.offset = 41 * BLK;
  write_block (exp, 41, 51);
  if (!poll_until (written_and_clean, &c, 10000)) {
    fprintf (stderr, "delwri=0: second block not written back within 10 s\n");
    abort ();
  }

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* Blocks [first, first+n) dirtied in a scrambled order (or by a few
 * unaligned writes) go out as one host write.
 */
static void
check_one_write (uint64_t first, unsigned n, bool unaligned_writes)
{
  struct fake *fk = new_fake ("cluster");
  struct cache_export *exp;
  uint64_t base = first * BLK, len = (uint64_t) n * BLK;
  size_t log0;
  unsigned nw = 0;
  int r;

  printf ("%u adjacent dirty blocks from block %" PRIu64 " (%s): one host "
          "write\n", n, first, unaligned_writes ? "unaligned writes"
          : "scrambled order");
  fake_clock_set (90000);
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);

  pattern_fill (data, len, base, 60);
  if (unaligned_writes) {
    uint64_t cut1 = len / 3 + 123, cut2 = 2 * len / 3 + 17;
    assert (cache_write (exp, data + cut1, cut2 - cut1, base + cut1, 0) == 0);
    assert (cache_write (exp, data, cut1, base, 0) == 0);
    assert (cache_write (exp, data + cut2, len - cut2, base + cut2, 0) == 0);
  }
  else
    for (unsigned i = 0; i < n; i++) {
      unsigned k = (i * 7 + 3) % n;     /* n is a power of 2 */
      assert (cache_write (exp, data + (uint64_t) k * BLK, BLK,
                           base + (uint64_t) k * BLK, 0) == 0);
    }
  memcpy (model + base, data, len);
  assert (test_stats (exp).dirty_blocks == n);

  log0 = fake_log_len (fk);
  fake_clock_advance (2000);
  r = cache_writeback_due ();
  if (r != (int) n)
    fprintf (stderr, "cache_writeback_due returned %d, expected %u\n", r, n);
  for (size_t i = log0; i < fake_log_len (fk); i++)
    if (fake_log_at (fk, i).kind == FAKE_PWRITE) {
      struct fake_op op = fake_log_at (fk, i);
      if (op.offset == base && op.count == len && op.err == 0)
        nw++;
      else
        nw += 100;
    }
  if (nw != 1) {
    fprintf (stderr, "%u adjacent dirty blocks at %" PRIu64 " should go out "
             "as one host write of %" PRIu64 " bytes; host ops:\n",
             n, base, len);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  assert (r == (int) n);
  assert (fake_image_is (fk, model, SIZE, 0));
  assert (test_stats (exp).writebacks == 1);
  assert (test_stats (exp).writeback_bytes == len);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
test_two_runs (void)
{
  struct fake *fk = new_fake ("two-runs");
  struct cache_export *exp;
  size_t log0;

  printf ("two runs with a gap: two host writes\n");
  fake_clock_set (95000);
  test_cache_init ("cache=4m,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);
  for (uint64_t i = 100; i < 104; i++)
    write_block (exp, i, 70);
  for (uint64_t i = 105; i < 109; i++)
    write_block (exp, i, 71);
  log0 = fake_log_len (fk);
  fake_clock_advance (2000);
  assert (cache_writeback_due () == 8);
  if (fake_log_count (fk, FAKE_PWRITE, log0, 0, 0) != 2 ||
      fake_log_count (fk, FAKE_PWRITE, log0, 100 * BLK, 4 * BLK) != 1 ||
      fake_log_count (fk, FAKE_PWRITE, log0, 105 * BLK, 4 * BLK) != 1 ||
      fake_log_count (fk, FAKE_PWRITE, log0, 104 * BLK, BLK) != 0) {
    fprintf (stderr, "two runs of 4 blocks: expected two host writes:\n");
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  assert (fake_image_is (fk, model, SIZE, 0));
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  test_watchdog (60);
  test_delwri ();
  test_postpone ();
  test_delwri_zero ();
  check_one_write (256, 16, false);     /* 1 MiB, 64 KiB aligned */
  check_one_write (256 + 5, 16, false); /* not aligned */
  check_one_write (512 + 3, 64, false); /* 256 KiB */
  check_one_write (768 + 9, 32, true);
  test_two_runs ();
  printf ("ok\n");
  return 0;
}
