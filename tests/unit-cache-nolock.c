/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: no cache lock is held across host I/O.
 *
 * The fake holds a host write (a flush's write-back), a host read (a
 * miss) or an fdatasync at its gate.  Meanwhile other threads must be
 * able to read resident blocks, write other blocks, miss on other
 * blocks, flush another export, and read statistics; each of those
 * must finish within a deadline.  Then the gate opens and the held
 * operation completes normally.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (4 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE

static struct fake *fk, *other_fk;
static struct cache_export *ex, *other;
static uint8_t model[SIZE];

/* Run fn in a thread; fail if it does not return within the deadline. */
struct bounded {
  void (*fn) (void);
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
};

static void *
bounded_thread (void *arg)
{
  struct bounded *b = arg;

  b->fn ();
  pthread_mutex_lock (&b->lock);
  b->done = true;
  pthread_cond_broadcast (&b->cond);
  pthread_mutex_unlock (&b->lock);
  return NULL;
}

static void
run_bounded (void (*fn) (void), const char *what, const char *held)
{
  struct bounded b = { .fn = fn, .lock = PTHREAD_MUTEX_INITIALIZER,
                       .cond = PTHREAD_COND_INITIALIZER };
  struct timespec ts;
  pthread_t th;

  assert (pthread_create (&th, NULL, bounded_thread, &b) == 0);
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += test_sanitized () ? 50 : 10;
  pthread_mutex_lock (&b.lock);
  while (!b.done)
    if (pthread_cond_timedwait (&b.cond, &b.lock, &ts) == ETIMEDOUT) {
      fprintf (stderr, "%s did not finish while a %s was held: a lock is "
               "held across host I/O\n", what, held);
      abort ();
    }
  pthread_mutex_unlock (&b.lock);
  assert (pthread_join (th, NULL) == 0);
}

static void
read_resident (void)
{
  uint8_t buf[BLK];

  assert (cache_read (ex, buf, BLK, 200 * BLK) == 0);
  check_bytes ("resident block", buf, model + 200 * BLK, BLK, 200 * BLK);
  assert (cache_read_nowait (ex, buf, BLK, 200 * BLK) == 1);
}

static void
write_other (void)
{
  uint8_t buf[BLK];

  pattern_fill (buf, BLK, 300 * BLK, 3);
  assert (cache_write (ex, buf, BLK, 300 * BLK, 0) == 0);
  memcpy (model + 300 * BLK, buf, BLK);
}

static void
miss_other_export (void)
{
  uint8_t buf[BLK];

  assert (cache_read (other, buf, BLK, 500 * BLK) == 0);
}

static void
flush_other_export (void)
{
  uint8_t buf[BLK];

  memset (buf, 7, BLK);
  assert (cache_write (other, buf, BLK, 10 * BLK, 0) == 0);
  assert (cache_flush (other) == 0);
}

static void
look_at_stats (void)
{
  uint64_t in_use, limit;

  test_stats (ex);
  cache_memory (&in_use, &limit);
}

/* The held operation. */
static void *
flush_thread (void *arg)
{
  (void) arg;
  assert (cache_flush (ex) == 0);
  return NULL;
}

static void *
miss_thread (void *arg)
{
  uint8_t buf[BLK];

  (void) arg;
  assert (cache_read (ex, buf, BLK, 400 * BLK) == 0);
  check_bytes ("held miss", buf, model + 400 * BLK, BLK, 400 * BLK);
  return NULL;
}

static void
hold (enum fake_op_kind kind, void *(*fn) (void *), const char *held)
{
  struct fake_config fc = { .name = "held", .size = SIZE };
  struct fake_config oc = { .name = "other", .size = SIZE };
  uint8_t buf[BLK];
  pthread_t th;

  printf ("while a %s is held\n", held);
  fk = fake_new (&fc);
  other_fk = fake_new (&oc);
  pattern_fill (model, SIZE, 0, 1);
  fake_fill (fk, model, SIZE, 0);
  test_cache_init ("cache=4m,delwri=1h,commit=medium,nora", false);
  ex = test_open (fk);
  other = test_open (other_fk);

  assert (cache_read (ex, buf, BLK, 200 * BLK) == 0);   /* resident */
  pattern_fill (buf, BLK, 100 * BLK, 2);                 /* dirty */
  assert (cache_write (ex, buf, BLK, 100 * BLK, 0) == 0);
  memcpy (model + 100 * BLK, buf, BLK);

  fake_gate (fk, kind, true);
  assert (pthread_create (&th, NULL, fn, NULL) == 0);
  if (fake_gate_wait (fk, kind, 1, 10000) == -1) {
    fprintf (stderr, "the %s never reached the host\n", held);
    abort ();
  }
  run_bounded (read_resident, "a read of a resident block", held);
  run_bounded (write_other, "a write of another block", held);
  run_bounded (miss_other_export, "a miss on another export", held);
  run_bounded (flush_other_export, "a flush of another export", held);
  run_bounded (look_at_stats, "reading statistics", held);
  fake_gate (fk, kind, false);
  assert (pthread_join (th, NULL) == 0);

  assert (cache_flush (ex) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  assert (cache_export_close (ex) == 0);
  assert (cache_export_close (other) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
  fake_free (other_fk);
}

int
main (void)
{
  test_watchdog (120);
  fake_clock_set (1000000);
  hold (FAKE_PWRITE, flush_thread, "write-back host write");
  hold (FAKE_PREAD, miss_thread, "host read of a miss");
  hold (FAKE_FLUSH, flush_thread, "fdatasync");
  printf ("ok\n");
  return 0;
}
