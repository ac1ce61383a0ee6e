/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: any byte range through the cache.
 *
 * Reads and writes of every mix of size and alignment round-trip, and
 * a read returns the newest write whether it is still dirty, written
 * back, or evicted and read again (a 64 KiB cache evicts all the
 * time; a 4 MiB one almost never).  The export size is not a multiple
 * of the cache block, so the last block is partial.  Ranges outside
 * the export fail (EINVAL, ENOSPC for writes past the end) without
 * touching anything; a read-only export refuses writes with EPERM.
 * The memory and device exports work too.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "device.h"
#include "fake-backend.h"
#include "iothreads.h"

#define SIZE (1024 * 1024 + 3 * 512)    /* last cache block partial */
#define DELWRI_MS 2000

static uint8_t model[SIZE];
static uint8_t buf[SIZE];
static uint8_t data[SIZE];

static void
check_all (struct cache_export *exp, const char *when)
{
  assert (cache_read (exp, buf, SIZE, 0) == 0);
  check_bytes (when, buf, model, SIZE, 0);
}

static void
do_write (struct cache_export *exp, uint64_t offset, uint64_t count,
          uint32_t tag, unsigned flags)
{
  pattern_fill (data, count, offset, tag);
  if (cache_write (exp, data, count, offset, flags) == -1) {
    fprintf (stderr, "cache_write [%" PRIu64 ", +%" PRIu64 "): %m\n",
             offset, count);
    abort ();
  }
  memcpy (model + offset, data, count);
}

/* Read [offset, offset+count) and a margin around it; compare. */
static void
check_around (struct cache_export *exp, uint64_t offset, uint64_t count,
              const char *what)
{
  uint64_t lo = offset > 4097 ? offset - 4097 : 0;
  uint64_t hi = offset + count + 8194 < SIZE ? offset + count + 8194 : SIZE;

  memset (buf, 0xa5, count);
  assert (cache_read (exp, buf, count, offset) == 0);
  check_bytes (what, buf, model + offset, count, offset);
  assert (cache_read (exp, buf, hi - lo, lo) == 0);
  check_bytes (what, buf, model + lo, hi - lo, lo);
}

static void
write_back_due (void)
{
  fake_clock_advance (DELWRI_MS);
  assert (cache_writeback_due () >= 0);
}

/* Every size at every interesting offset. */
static void
test_size_offset_mix (const char *opts)
{
  static const uint64_t sizes[] = {
    1, 2, 511, 512, 513, 1000, 4095, 4096, 4097, 8191, 8192, 8193,
    12288 + 17, 65536, 65537, 200000,
  };
  static const uint64_t offsets[] = {
    0, 1, 511, 512, 4095, 4096, 4097, 6000, 8191, 65535, 3 * 65536 + 777,
    SIZE - 1, SIZE - 512, SIZE - 4096, SIZE - 4097,
  };
  struct fake_config fc = { .name = "basic", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  uint32_t tag = 100;
  unsigned n = 0;

  printf ("size/offset mix with %s\n", opts);
  pattern_fill (model, SIZE, 0, 1);
  fake_fill (fk, model, SIZE, 0);
  test_cache_init (opts, false);
  exp = test_open (fk);

  assert (strcmp (cache_export_name (exp), "basic") == 0);
  assert (cache_export_size (exp) == SIZE);
  assert (cache_export_blksz (exp) == 512);
  assert (!cache_export_readonly (exp));
  assert (cache_export_can_fua (exp));

  check_all (exp, "initial contents");
  for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++)
    for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
      uint64_t off = offsets[i], len = sizes[j];
      char what[128];

      if (off + len > SIZE)
        off = SIZE - len;       /* also covers "ends at the end" */
      snprintf (what, sizeof what, "write [%" PRIu64 ", +%" PRIu64 ")",
                off, len);
      do_write (exp, off, len, tag++, n % 5 == 4 ? CACHE_FUA : 0);
      check_around (exp, off, len, what);
      check_memory ();
      if (++n % 7 == 0) {
        write_back_due ();
        check_around (exp, off, len, "after write-back");
      }
    }
  check_all (exp, "after the mix");
  write_back_due ();
  check_all (exp, "after write-back");
  assert (cache_flush (exp) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  check_all (exp, "after flush");
  assert (test_stats (exp).dirty_blocks == 0);

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  fake_free (fk);
}

/* Newest write, step by step through its life. */
static void
test_newest (void)
{
  struct fake_config fc = { .name = "newest", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  const uint64_t off = 40000, len = 10000;

  printf ("newest write before and after write-back\n");
  pattern_fill (model, SIZE, 0, 2);
  fake_fill (fk, model, SIZE, 0);
  test_cache_init ("cache=64k,delwri=2,commit=medium,nora", false);
  exp = test_open (fk);

  do_write (exp, off, len, 10, 0);
  check_around (exp, off, len, "dirty");
  assert (!fake_image_is (fk, model + off, len, off));
  write_back_due ();
  assert (fake_image_is (fk, model + off, len, off));
  check_around (exp, off, len, "written back");
  do_write (exp, off + 3000, 100, 11, 0);
  check_around (exp, off, len, "rewritten in part");
  /* Push everything out of a 64 KiB cache, then read it again. */
  assert (cache_read (exp, buf, 512 * 1024, 400 * 1024) == 0);
  check_bytes ("streamed", buf, model + 400 * 1024, 512 * 1024, 400 * 1024);
  check_around (exp, off, len, "after eviction");
  write_back_due ();
  assert (cache_read (exp, buf, 512 * 1024, 400 * 1024) == 0);
  check_around (exp, off, len, "written back and evicted");
  check_all (exp, "newest: all");
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  fake_free (fk);
}

/* Random unaligned reads and writes against the model. */
static void
test_random (const char *opts, uint64_t seed, unsigned ops)
{
  struct fake_config fc = { .name = "random", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  uint64_t rs = seed;

  printf ("%u random operations with %s\n", ops, opts);
  pattern_fill (model, SIZE, 0, 3);
  fake_fill (fk, model, SIZE, 0);
  test_cache_init (opts, false);
  exp = test_open (fk);

  for (unsigned i = 0; i < ops; i++) {
    uint64_t r = test_rand_below (&rs, 100);
    uint64_t len = test_rand_below (&rs, 4) == 0
      ? 1 + test_rand_below (&rs, 70000) : 1 + test_rand_below (&rs, 9000);
    uint64_t off = test_rand_below (&rs, SIZE - len + 1);
    char what[128];

    snprintf (what, sizeof what, "op %u (seed %" PRIu64 ") [%" PRIu64
              ", +%" PRIu64 ")", i, seed, off, len);
    if (r < 45) {
      memset (buf, 0x5a, len);
      if (cache_read (exp, buf, len, off) == -1) {
        fprintf (stderr, "%s: cache_read: %m\n", what);
        abort ();
      }
      check_bytes (what, buf, model + off, len, off);
    }
    else if (r < 90)
      do_write (exp, off, len, 1000 + i, r < 50 ? CACHE_FUA : 0);
    else if (r < 97) {
      fake_clock_advance (test_rand_below (&rs, DELWRI_MS));
      assert (cache_writeback_due () >= 0);
    }
    else
      assert (cache_flush (exp) == 0);
    check_memory ();
  }
  check_all (exp, "random: all");
  assert (cache_flush (exp) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));
  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
expect_fail (int r, int err1, int err2, const char *what)
{
  if (r != -1 || (errno != err1 && errno != err2)) {
    fprintf (stderr, "%s: returned %d (%s), expected -1 with %s\n",
             what, r, r == -1 ? strerror (errno) : "no error",
             strerror (err1));
    abort ();
  }
}

static void
test_bounds (void)
{
  struct fake_config fc = { .name = "bounds", .size = SIZE };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;
  size_t log0;

  printf ("ranges outside the export\n");
  pattern_fill (model, SIZE, 0, 4);
  fake_fill (fk, model, SIZE, 0);
  test_cache_init ("cache=1m", false);
  exp = test_open (fk);

  expect_fail (cache_read (exp, buf, 1, SIZE), EINVAL, EINVAL,
               "read 1 byte at the end");
  expect_fail (cache_read (exp, buf, 2, SIZE - 1), EINVAL, EINVAL,
               "read across the end");
  expect_fail (cache_read (exp, buf, 4096, SIZE + 4096), EINVAL, EINVAL,
               "read past the end");
  expect_fail (cache_read (exp, buf, 16, UINT64_MAX - 8), EINVAL, EINVAL,
               "read with offset+count overflowing");
  expect_fail (cache_read_nowait (exp, buf, 2, SIZE - 1), EINVAL, EINVAL,
               "read_nowait across the end");
  expect_fail (cache_prefetch (exp, 8192, SIZE - 4096), EINVAL, EINVAL,
               "prefetch across the end");

  log0 = fake_log_len (fk);
  memset (data, 0xee, 8192);
  expect_fail (cache_write (exp, data, 1, SIZE, 0), ENOSPC, ENOSPC,
               "write 1 byte at the end");
  expect_fail (cache_write (exp, data, 2, SIZE - 1, 0), ENOSPC, ENOSPC,
               "write across the end");
  expect_fail (cache_write (exp, data, 8192, SIZE - 4096, CACHE_FUA),
               ENOSPC, ENOSPC, "FUA write across the end");
  expect_fail (cache_write (exp, data, 16, UINT64_MAX - 8, 0), ENOSPC,
               EINVAL, "write with offset+count overflowing");
  expect_fail (cache_zero (exp, 8192, SIZE - 4096, 0), ENOSPC, EINVAL,
               "zero across the end");
  expect_fail (cache_trim (exp, 8192, SIZE - 4096, 0), ENOSPC, EINVAL,
               "trim across the end");
  /* Nothing was written anywhere. */
  check_all (exp, "after failed writes");
  assert (cache_flush (exp) == 0);
  assert (fake_log_count (fk, FAKE_PWRITE, log0, 0, 0) == 0);
  assert (fake_log_count (fk, FAKE_ZERO, log0, 0, 0) == 0);
  assert (fake_log_count (fk, FAKE_TRIM, log0, 0, 0) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));

  /* The last byte itself is fine. */
  do_write (exp, SIZE - 1, 1, 5, 0);
  check_around (exp, SIZE - 1, 1, "last byte");
  assert (cache_flush (exp) == 0);
  assert (fake_durable_is (fk, model, SIZE, 0));

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

static void
test_readonly (void)
{
  struct fake_config fc = { .name = "ro", .size = SIZE, .readonly = true };
  struct fake *fk = fake_new (&fc);
  struct cache_export *exp;

  printf ("read-only export\n");
  pattern_fill (model, SIZE, 0, 6);
  fake_fill (fk, model, SIZE, 0);
  test_cache_init ("cache=1m", false);
  exp = test_open (fk);

  assert (cache_export_readonly (exp));
  memset (data, 0x11, 8192);
  expect_fail (cache_write (exp, data, 4096, 0, 0), EPERM, EPERM,
               "write to a read-only export");
  expect_fail (cache_write (exp, data, 100, 5000, CACHE_FUA), EPERM, EPERM,
               "FUA write to a read-only export");
  expect_fail (cache_zero (exp, 4096, 0, 0), EPERM, EPERM,
               "zero of a read-only export");
  expect_fail (cache_trim (exp, 4096, 0, 0), EPERM, EPERM,
               "trim of a read-only export");
  check_all (exp, "read-only contents");
  assert (fake_ops (fk, FAKE_PWRITE) == 0);   /* the fake aborts anyway */

  assert (cache_export_close (exp) == 0);
  assert (cache_shutdown () == 0);
  fake_free (fk);
}

/* The memory export (ramdisk=) and an export over a real device. */
static void
test_ram_and_device (void)
{
  struct cache_export *exp;
  const uint64_t size = 1024 * 1024;
  const char *tmpdir = getenv ("TMPDIR");
  char path[4096];
  struct export_config ec = {
    .name = "lo0", .path = path, .access = ACCESS_RW, .sync = SYNC_ASYNC,
    .deny = DENY_NO, .io = IO_PROBE, .blksz = 512, .blksz_min = 512,
    .blksz_max = 16384,
  };
  struct device *dev;
  int fd;

  printf ("memory and device exports\n");
  test_cache_init ("cache=256k,delwri=2", false);

  exp = cache_export_open_ram ("ram0", size, 512, false);
  assert (exp);
  assert (cache_export_size (exp) == size);
  assert (cache_read (exp, buf, size, 0) == 0);
  check_bytes ("ram export starts zeroed", buf, NULL, size, 0);
  memset (model, 0, size);
  do_write (exp, 777, 300000, 7, 0);
  do_write (exp, 500000, 4096, 8, CACHE_FUA);
  assert (cache_read (exp, buf, size, 0) == 0);
  check_bytes ("ram export", buf, model, size, 0);
  assert (cache_flush (exp) == 0);
  assert (cache_export_close (exp) == 0);

  snprintf (path, sizeof path, "%s/unit-cache-basic.XXXXXX",
            tmpdir && tmpdir[0] ? tmpdir : "/tmp");
  fd = mkstemp (path);
  assert (fd >= 0);
  pattern_fill (model, size, 0, 9);
  assert (pwrite (fd, model, size, 0) == (ssize_t) size);
  close (fd);
  assert (iothreads_start (2) == 0);
  dev = device_open (&ec);
  assert (dev);
  exp = cache_export_open (dev);
  assert (exp);
  assert (cache_export_size (exp) == size);
  assert (cache_read (exp, buf, size, 0) == 0);
  check_bytes ("device export", buf, model, size, 0);
  do_write (exp, 12345, 100000, 10, 0);
  do_write (exp, 700000, 5000, 11, CACHE_FUA);
  assert (cache_flush (exp) == 0);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  assert (fd >= 0);
  assert (pread (fd, buf, size, 0) == (ssize_t) size);
  close (fd);
  check_bytes ("device file after flush", buf, model, size, 0);
  do_write (exp, 300000, 9000, 12, 0);
  assert (cache_export_close (exp) == 0);
  device_close (dev);
  iothreads_stop ();
  fd = open (path, O_RDONLY | O_CLOEXEC);
  assert (fd >= 0);
  assert (pread (fd, buf, size, 0) == (ssize_t) size);
  close (fd);
  check_bytes ("device file after close", buf, model, size, 0);
  unlink (path);

  assert (cache_shutdown () == 0);
}

int
main (void)
{
  uint64_t fixed = test_seed ("unit-cache-basic (fixed)", false, 20240601);
  uint64_t random = test_seed ("unit-cache-basic (random)", true, 0);
  unsigned ops = test_sanitized () ? 4000 : 20000;

  test_watchdog (120);
  fake_clock_set (1000000);
  test_size_offset_mix ("cache=64k,delwri=2,commit=medium,nora");
  test_size_offset_mix ("cache=4m,delwri=2,commit=medium");
  test_newest ();
  test_random ("cache=64k,delwri=2,commit=medium", fixed, ops);
  test_random ("cache=256k,delwri=2,commit=low", random, ops);
  test_random ("cache=4m,delwri=2,commit=high,protect=0", random ^ 1, ops / 4);
  test_bounds ();
  test_readonly ();
  test_ram_and_device ();
  printf ("ok\n");
  return 0;
}
