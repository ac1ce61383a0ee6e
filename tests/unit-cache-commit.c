/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: commit levels and write classes (SPEC section 6).
 *
 * Each row of the table, checked in the fake's host image and durable
 * shadow the moment the call returns:
 *   high    every write durable;
 *   medium  FUA writes durable, plain writes not even in the host;
 *   low     FUA writes in the host but not synced, plain delayed;
 *   none    every write delayed (and FUA is not advertised).
 * Zeroes follow the class of their FUA flag.  Delayed writes reach the
 * host once delwri has passed.  On an O_SYNC (durable_writes) backend
 * no flush is needed for any of it.  cache_flush makes everything
 * durable at every level, including writes that already reached the
 * host unsynced, and covers writes made by other connections
 * (threads).
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (1024 * 1024)
#define DELWRI_MS 2000

static const char *const level_names[] = { "none", "low", "medium", "high" };

static uint8_t model[SIZE];
static uint8_t old[SIZE];
static uint8_t data[SIZE];

static void
write_pattern (struct cache_export *exp, uint64_t offset, uint64_t count,
               uint32_t tag, unsigned flags)
{
  pattern_fill (data, count, offset, tag);
  assert (cache_write (exp, data, count, offset, flags) == 0);
  memcpy (model + offset, data, count);
}

/* Nothing of [offset, offset+count) has been written to the host. */
static void
check_delayed (struct fake *fk, size_t log0, uint64_t offset, uint64_t count,
               const char *what)
{
  if (fake_log_count (fk, FAKE_PWRITE, log0, offset, count) != 0 ||
      !fake_image_is (fk, old + offset, count, offset)) {
    fprintf (stderr, "%s: should be delayed, but reached the host:\n", what);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
}

static void
check_durable (struct fake *fk, size_t log0, uint64_t offset, uint64_t count,
               const char *what)
{
  if (!fake_durable_is (fk, model + offset, count, offset)) {
    fprintf (stderr, "%s: should be durable, but is not; host ops:\n", what);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
}

static void
check_in_host_not_durable (struct fake *fk, size_t log0, uint64_t offset,
                           uint64_t count, bool durable_writes,
                           const char *what)
{
  if (!fake_image_is (fk, model + offset, count, offset)) {
    fprintf (stderr, "%s: should be in the host file, but is not:\n", what);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  if (!durable_writes && fake_durable_is (fk, model + offset, count, offset)) {
    fprintf (stderr, "%s: should not be synced (ASYNC), but was:\n", what);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
}

static void
test_level (enum commit_level level, bool durable_writes)
{
  struct fake_config fc = { .name = "commit", .size = SIZE,
                            .durable_writes = durable_writes };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  char opts[128], what[128];
  const char *name = level_names[level];
  /* Plain write A, FUA write B, zeroes C (plain) and D (FUA). */
  const uint64_t a_off = 4096, a_len = 8192;
  const uint64_t b_off = 65536 + 50, b_len = 4096 + 100;
  const uint64_t c_off = 200000 + 7, c_len = 10000;
  const uint64_t d_off = 300000 + 3, d_len = 9000;
  size_t log0;
  bool delayed_plain = level != COMMIT_HIGH;

  printf ("commit=%s%s\n", name, durable_writes ? " on an O_SYNC backend"
          : "");
  pattern_fill (old, SIZE, 0, 1);
  memcpy (model, old, SIZE);
  fake_fill (fk, old, SIZE, 0);
  snprintf (opts, sizeof opts, "cache=4m,delwri=2,commit=%s,nora", name);
  fake_clock_set (1000000);
  test_cache_init (opts, false);
  exp = test_open (fk);
  assert (cache_export_can_fua (exp) == (level != COMMIT_NONE));

  log0 = fake_log_len (fk);
  write_pattern (exp, a_off, a_len, 2, 0);
  snprintf (what, sizeof what, "commit=%s plain write", name);
  if (delayed_plain)
    check_delayed (fk, log0, a_off, a_len, what);
  else
    check_durable (fk, log0, a_off, a_len, what);

  write_pattern (exp, b_off, b_len, 3, CACHE_FUA);
  snprintf (what, sizeof what, "commit=%s FUA write", name);
  switch (level) {
  case COMMIT_HIGH: case COMMIT_MEDIUM:
    check_durable (fk, log0, b_off, b_len, what);
    break;
  case COMMIT_LOW:
    check_in_host_not_durable (fk, log0, b_off, b_len, durable_writes, what);
    break;
  case COMMIT_NONE:
    check_delayed (fk, log0, b_off, b_len, what);
    break;
  }

  /* O_SYNC writes need no fdatasync (zeroes may: fallocate is not
   * covered by O_SYNC everywhere).
   */
  if (durable_writes && level >= COMMIT_MEDIUM &&
      fake_log_count (fk, FAKE_FLUSH, log0, 0, 0) != 0) {
    fprintf (stderr, "commit=%s on an O_SYNC backend: flush issued although "
             "every write is durable at once\n", name);
    fake_log_print (fk, log0, stderr);
    abort ();
  }

  memset (model + c_off, 0, c_len);
  assert (cache_zero (exp, c_len, c_off, 0) == 0);
  if (!delayed_plain) {
    snprintf (what, sizeof what, "commit=%s plain zero", name);
    check_durable (fk, log0, c_off, c_len, what);
  }
  memset (model + d_off, 0, d_len);
  assert (cache_zero (exp, d_len, d_off, CACHE_FUA) == 0);
  snprintf (what, sizeof what, "commit=%s FUA zero", name);
  if (level >= COMMIT_MEDIUM)
    check_durable (fk, log0, d_off, d_len, what);
  else if (level == COMMIT_LOW &&
           !fake_image_is (fk, NULL, d_len, d_off)) {
    fprintf (stderr, "%s: should be in the host file, but is not\n", what);
    fake_log_print (fk, log0, stderr);
    abort ();
  }

  /* Reads see everything at once, whatever reached the host. */
  assert (cache_read (exp, data, SIZE, 0) == 0);
  check_bytes (what, data, model, SIZE, 0);

  /* Delayed writes: not yet at delwri - 1 ms, in the host at delwri. */
  fake_clock_advance (DELWRI_MS - 1);
  assert (cache_writeback_due () >= 0);
  if (delayed_plain) {
    snprintf (what, sizeof what, "commit=%s plain write at delwri-1", name);
    check_delayed (fk, log0, a_off, a_len, what);
    if (level == COMMIT_NONE)
      check_delayed (fk, log0, b_off, b_len, what);
    assert (test_stats (exp).dirty_blocks > 0);
  }
  fake_clock_advance (1);
  assert (cache_writeback_due () >= 0);
  if (!fake_image_is (fk, model, SIZE, 0)) {
    fprintf (stderr, "commit=%s: not in the host after delwri\n", name);
    fake_log_print (fk, log0, stderr);
    abort ();
  }
  assert (test_stats (exp).dirty_blocks == 0);

  /* Nothing is dirty now, but what reached the host unsynced must
   * still be made durable by a flush.
   */
  log0 = fake_log_len (fk);
  assert (cache_flush (exp) == 0);
  snprintf (what, sizeof what, "commit=%s flush with nothing dirty", name);
  check_durable (fk, log0, 0, SIZE, what);

  /* And a flush right after writes of every class. */
  write_pattern (exp, a_off + 100, 5000, 4, 0);
  if (level != COMMIT_NONE)
    write_pattern (exp, b_off + 1000, 3000, 5, CACHE_FUA);
  assert (cache_zero (exp, 1000, c_off, 0) == 0);
  memset (model + c_off, 0, 1000);
  log0 = fake_log_len (fk);
  assert (cache_flush (exp) == 0);
  snprintf (what, sizeof what, "commit=%s flush", name);
  check_durable (fk, log0, 0, SIZE, what);
  assert (test_stats (exp).dirty_blocks == 0);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* Two "connections" write, a third flushes. */
struct writer {
  struct cache_export *exp;
  uint64_t offset, count;
  uint32_t tag;
};

static void *
writer_thread (void *arg)
{
  struct writer *w = arg;
  uint64_t pos = w->offset, end = w->offset + w->count;
  uint8_t *buf = malloc (w->count);

  assert (buf);
  pattern_fill (buf, w->count, w->offset, w->tag);
  /* Pieces of varying, unaligned sizes. */
  while (pos < end) {
    uint64_t n = 1000 + (pos * 7) % 9000;
    if (n > end - pos)
      n = end - pos;
    assert (cache_write (w->exp, buf + (pos - w->offset), n, pos, 0) == 0);
    pos += n;
  }
  free (buf);
  return NULL;
}

static void
test_flush_all_connections (bool durable_writes)
{
  struct fake_config fc = { .name = "multiconn", .size = SIZE,
                            .durable_writes = durable_writes };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  struct writer w[2] = {
    { .offset = 1000, .count = 300000, .tag = 20 },
    { .offset = 500000, .count = 400000 + 123, .tag = 21 },
  };
  pthread_t th[2];
  size_t log0;

  printf ("flush covers writes of every connection%s\n",
          durable_writes ? " (O_SYNC backend)" : "");
  pattern_fill (old, SIZE, 0, 1);
  memcpy (model, old, SIZE);
  fake_fill (fk, old, SIZE, 0);
  test_cache_init ("cache=4m,delwri=2,commit=medium", false);
  exp = test_open (fk);

  log0 = fake_log_len (fk);
  for (int i = 0; i < 2; i++) {
    w[i].exp = exp;
    assert (pthread_create (&th[i], NULL, writer_thread, &w[i]) == 0);
  }
  for (int i = 0; i < 2; i++) {
    assert (pthread_join (th[i], NULL) == 0);
    pattern_fill (model + w[i].offset, w[i].count, w[i].offset, w[i].tag);
  }
  check_delayed (fk, log0, w[0].offset, w[0].count, "connection 1");
  check_delayed (fk, log0, w[1].offset, w[1].count, "connection 2");
  assert (test_stats (exp).dirty_blocks > 0);

  assert (cache_flush (exp) == 0);
  check_durable (fk, log0, 0, SIZE, "flush of two connections' writes");
  assert (test_stats (exp).dirty_blocks == 0);
  assert (test_stats (exp).flushes >= 1);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  test_watchdog (60);
  for (int dw = 0; dw < 2; dw++) {
    test_level (COMMIT_HIGH, dw);
    test_level (COMMIT_MEDIUM, dw);
    test_level (COMMIT_LOW, dw);
    test_level (COMMIT_NONE, dw);
    test_flush_all_connections (dw);
  }
  printf ("ok\n");
  return 0;
}
