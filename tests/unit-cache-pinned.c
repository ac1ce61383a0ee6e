/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: cache_read_pinned, the zero-copy read.
 *
 * A pinned read describes the bytes where they lie in the cache, so
 * the blocks behind its iovecs must keep their memory until
 * cache_unpin: streaming four times the cache through must not evict
 * them, nor a zero of the range hand their memory to other data (the
 * blocks become orphans, freed by the last unpin; none may leak).
 * Blocks allocated in order share one iovec.  Misses and an exhausted
 * pin budget are refused with nothing pinned.  Then three threads race
 * pins, zeroes and a stream for a while, checking every byte.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (8 * 1024 * 1024)
#define BLK CACHE_BLOCK_SIZE
#define MAX_PINS 512

static uint8_t buf[SIZE], expect[SIZE];

/* The bytes behind iov, gathered. */
static void
gather (const struct iovec *iov, size_t niov, uint8_t *out)
{
  for (size_t i = 0; i < niov; i++) {
    memcpy (out, iov[i].iov_base, iov[i].iov_len);
    out += iov[i].iov_len;
  }
}

static void
stream (struct cache_export *exp, uint64_t from, uint64_t to)
{
  for (uint64_t pos = from; pos < to; pos += 64 * 1024)
    assert (cache_read (exp, buf, 64 * 1024, pos) == 0);
}

static void
test_pins (void)
{
  struct fake_config fc = { .name = "pinned", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  struct iovec iov[MAX_PINS];
  struct cache_pin *pins[MAX_PINS], *pins2[MAX_PINS];
  size_t niov, npins, niov2, npins2;
  uint64_t full, off = 1000, count = 100 * 1024 + 300;
  static uint8_t got[SIZE];

  printf ("pins\n");
  pattern_fill (expect, SIZE, 0, 1);
  fake_fill (fk, expect, SIZE, 0);
  test_cache_init ("cache=1m,nora", false);
  exp = test_open (fk);

  /* What the cache holds when nothing is pinned. */
  stream (exp, 2 * 1024 * 1024, SIZE);
  full = test_stats (exp).resident_blocks;
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);

  /* A fresh cache: blocks come from the arena in order. */
  test_cache_init ("cache=1m,nora", false);
  exp = test_open (fk);

  /* A miss: refused, nothing pinned. */
  assert (cache_read_pinned (exp, count, off, iov, MAX_PINS, &niov,
                             pins, &npins) == 0);
  assert (npins == 0);

  stream (exp, 0, 128 * 1024);
  assert (cache_read_pinned (exp, count, off, iov, MAX_PINS, &niov,
                             pins, &npins) == 1);
  assert (npins == CACHE_PINS_FOR (count, off));
  printf ("  %zu pins, %zu iovec(s)\n", npins, niov);
  assert (niov == 1);           /* neighbours in memory share one */
  gather (iov, niov, got);
  check_bytes ("pinned read", got, expect + off, count, off);

  /* The budget: a quarter of the cache at most may be pinned. */
  assert (cache_read_pinned (exp, 200 * 1024, 0, iov + niov,
                             MAX_PINS - niov, &niov2, pins2, &npins2) == 0);
  assert (npins2 == 0);

  /* Four caches' worth streamed through: the pinned blocks stay. */
  stream (exp, 2 * 1024 * 1024, SIZE);
  stream (exp, 2 * 1024 * 1024, SIZE);
  gather (iov, niov, got);
  check_bytes ("pinned read after a stream", got, expect + off, count, off);

  /* Zeroed while pinned: readers see zeroes, the pinned memory is not
   * given to anything else.
   */
  assert (cache_zero (exp, 128 * 1024, 0, CACHE_MAY_TRIM) == 0);
  assert (cache_read (exp, buf, count, off) == 0);
  check_bytes ("read after zero", buf, NULL, count, off);
  stream (exp, 2 * 1024 * 1024, SIZE);
  stream (exp, 2 * 1024 * 1024, SIZE);
  gather (iov, niov, got);
  check_bytes ("pinned read after zero and a stream", got, expect + off,
               count, off);

  /* Unpinned: the orphans go back, the cache holds as much as ever. */
  cache_unpin (pins, npins);
  stream (exp, 2 * 1024 * 1024, SIZE);
  stream (exp, 2 * 1024 * 1024, SIZE);
  printf ("  resident %llu, %llu when nothing was ever pinned\n",
          (unsigned long long) test_stats (exp).resident_blocks,
          (unsigned long long) full);
  assert (test_stats (exp).resident_blocks == full);
  /* And the budget is whole again. */
  stream (exp, 0, 256 * 1024);
  assert (cache_read_pinned (exp, 200 * 1024, 0, iov, MAX_PINS, &niov,
                             pins, &npins) == 1);
  cache_unpin (pins, npins);
  check_memory ();

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* Threads: a pinner over [0, ZONE) (zeroes), a zeroer of that zone, a
 * streamer over the rest (pattern).  Memory wrongly freed while pinned
 * would be reused by the streamer: the pinner would see its pattern,
 * or the streamer zeroes.
 */
#define ZONE (256 * 1024)

static struct cache_export *race_exp;
static volatile int race_stop;

static void *
pinner (void *arg)
{
  uint64_t state = 0x9e3779b97f4a7c15ULL, n = 0;
  static uint8_t got[ZONE];
  struct iovec iov[MAX_PINS];
  struct cache_pin *pins[MAX_PINS];
  size_t niov, npins;

  while (!race_stop) {
    uint64_t count = 1 + test_rand_below (&state, 64 * 1024);
    uint64_t off = test_rand_below (&state, ZONE - count);
    uint8_t tmp[64 * 1024];

    assert (cache_read (race_exp, tmp, count, off) == 0);
    check_bytes ("pinner's read", tmp, NULL, count, off);
    if (cache_read_pinned (race_exp, count, off, iov, MAX_PINS, &niov,
                           pins, &npins) != 1)
      continue;                 /* zeroed in between: a miss */
    for (int k = 0; k < 3; k++) {
      sched_yield ();
      gather (iov, niov, got);
      check_bytes ("pinned zone", got, NULL, count, off);
    }
    cache_unpin (pins, npins);
    n++;
  }
  *(uint64_t *) arg = n;
  return NULL;
}

static void *
zeroer (void *arg)
{
  uint64_t state = 0xdeadbeefcafeULL, n = 0;

  while (!race_stop) {
    uint64_t blocks = 1 + test_rand_below (&state, 16);
    uint64_t first = test_rand_below (&state, ZONE / BLK - blocks);
    assert (cache_zero (race_exp, blocks * BLK, first * BLK,
                        test_rand_below (&state, 2) ? CACHE_MAY_TRIM : 0)
            == 0);
    n++;
  }
  *(uint64_t *) arg = n;
  return NULL;
}

static void *
streamer (void *arg)
{
  static uint8_t got[64 * 1024];
  uint64_t n = 0;

  while (!race_stop) {
    for (uint64_t pos = ZONE; pos < SIZE && !race_stop; pos += 64 * 1024) {
      assert (cache_read (race_exp, got, 64 * 1024, pos) == 0);
      check_bytes ("streamed", got, expect + pos, 64 * 1024, pos);
      n++;
    }
  }
  *(uint64_t *) arg = n;
  return NULL;
}

static void
test_race (void)
{
  struct fake_config fc = { .name = "race", .size = SIZE, .no_log = true };
  struct fake *fk = fake_new (&fc);
  pthread_t t[3];
  uint64_t n[3];
  uint64_t seconds = getenv ("LONG") ? 20 : 2;
  uint64_t full;

  printf ("race for %llu s\n", (unsigned long long) seconds);
  pattern_fill (expect, SIZE, 0, 2);
  memset (expect, 0, ZONE);
  fake_fill (fk, expect, SIZE, 0);
  test_cache_init ("cache=1m,nora", false);
  race_exp = test_open (fk);
  stream (race_exp, ZONE, SIZE);
  full = test_stats (race_exp).resident_blocks;

  race_stop = 0;
  assert (pthread_create (&t[0], NULL, pinner, &n[0]) == 0);
  assert (pthread_create (&t[1], NULL, zeroer, &n[1]) == 0);
  assert (pthread_create (&t[2], NULL, streamer, &n[2]) == 0);
  for (uint64_t t0 = real_clock_ms (); real_clock_ms () - t0 < seconds * 1000; )
    usleep (10000);
  race_stop = 1;
  for (int i = 0; i < 3; i++)
    assert (pthread_join (t[i], NULL) == 0);
  printf ("  %llu pinned reads, %llu zeroes, %llu streamed reads\n",
          (unsigned long long) n[0], (unsigned long long) n[1],
          (unsigned long long) n[2]);
  assert (n[0] > 0 && n[1] > 0 && n[2] > 0);

  /* No orphan leaked. */
  stream (race_exp, ZONE, SIZE);
  stream (race_exp, ZONE, SIZE);
  assert (test_stats (race_exp).resident_blocks == full);
  check_memory ();
  assert (cache_export_close (race_exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  test_pins ();
  test_race ();
  printf ("ok\n");
  return 0;
}
