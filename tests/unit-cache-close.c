/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: closing an export and shutting the cache down
 * lose nothing.
 *
 * cache_export_close writes back every dirty block durably (at every
 * commit level, with or without the flusher), then calls the backend's
 * close callback once, after its last host operation; closing one
 * export leaves the others' data alone.  If the final write-back
 * fails, close returns the error and still frees the export and calls
 * close.  cache_shutdown then returns 0, and the cache can be set up
 * again in the same process.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fake-backend.h"

#define SIZE (1024 * 1024)

static uint8_t model[2][SIZE];
static uint8_t data[SIZE];

static struct fake *
new_fake (const char *name, int i)
{
  struct fake_config fc = { .name = name, .size = SIZE };
  struct fake *fk = fake_new (&fc);

  pattern_fill (model[i], SIZE, 0, 1 + i);
  fake_fill (fk, model[i], SIZE, 0);
  return fk;
}

static void
scribble (struct cache_export *exp, int i, uint32_t tag)
{
  for (uint64_t off = 1000 + i * 7; off + 9000 < SIZE; off += 50000) {
    pattern_fill (data, 9000, off, tag);
    assert (cache_write (exp, data, 9000, off, off % 3 == 0 ? CACHE_FUA : 0)
            == 0);
    memcpy (model[i] + off, data, 9000);
  }
}

/* Close is the last thing the fake sees. */
static void
check_closed_last (struct fake *fk, const char *what)
{
  size_t n = fake_log_len (fk);

  if (fake_closed (fk) != 1 || n == 0 ||
      fake_log_at (fk, n - 1).kind != FAKE_CLOSE) {
    fprintf (stderr, "%s: close callback not called exactly once, after "
             "everything else:\n", what);
    fake_log_print (fk, 0, stderr);
    abort ();
  }
}

static void
test_close (const char *opts, bool flusher)
{
  struct fake *fa = new_fake ("a", 0), *fb = new_fake ("b", 1);
  struct cache_export *a, *b;

  printf ("close writes back everything (%s%s)\n", opts,
          flusher ? ", flusher running" : "");
  test_cache_init (opts, flusher);
  a = test_open (fa);
  b = test_open (fb);
  scribble (a, 0, 10);
  scribble (b, 1, 11);

  assert (cache_export_close (a) == 0);
  check_closed_last (fa, "close");
  if (!fake_durable_is (fa, model[0], SIZE, 0)) {
    fprintf (stderr, "close (%s): not everything is durable\n", opts);
    fake_log_print (fa, 0, stderr);
    abort ();
  }
  /* b is untouched by a's close and still works. */
  assert (fake_closed (fb) == 0);
  assert (cache_read (b, data, SIZE, 0) == 0);
  check_bytes ("the other export", data, model[1], SIZE, 0);
  scribble (b, 1, 12);
  assert (cache_export_close (b) == 0);
  check_closed_last (fb, "close");
  assert (fake_durable_is (fb, model[1], SIZE, 0));

  assert (cache_shutdown () == 0);
  fake_free (fa);
  fake_free (fb);
}

static void
test_close_fails (void)
{
  struct fake *fk = new_fake ("failing", 0);
  struct fake_fault f = { .err = EIO, .times = -1 };
  struct cache_export *exp;
  int r;

  printf ("close with a failing host\n");
  test_cache_init ("cache=1m,delwri=1h,commit=medium", false);
  exp = test_open (fk);
  scribble (exp, 0, 20);
  fake_set_fault (fk, FAKE_PWRITE, &f);
  r = cache_export_close (exp);
  if (r != -1 || errno != EIO) {
    fprintf (stderr, "close with a failing host returned %d (%s), expected "
             "EIO\n", r, r == -1 ? strerror (errno) : "no error");
    abort ();
  }
  check_closed_last (fk, "failed close");
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

int
main (void)
{
  test_watchdog (60);
  fake_clock_set (1000000);
  test_close ("cache=4m,delwri=1h,commit=medium", false);
  test_close ("cache=4m,delwri=1h,commit=none", true);
  test_close ("cache=64k,delwri=2,commit=low", false);
  test_close ("cache=4m,delwri=2,commit=high", true);
  test_close_fails ();
  /* And once more after a failure, to be sure the cache comes back. */
  test_close ("cache=4m,delwri=1h,commit=medium", true);
  printf ("ok\n");
  return 0;
}
