/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: misses and durable writes in one hop.
 *
 * cache_read_start does the resident part of a read on the calling
 * thread (an event loop) and leaves the host reads, straight into the
 * missing blocks, to whoever runs the cache_io: an I/O thread, reached
 * with exactly one handoff, which does the host transfer itself (one
 * per run of neighbouring blocks) with no further queueing.  A loop
 * with io_uring does the reads itself (cache_io_reads and
 * cache_io_finish).  While a fill is pending its blocks belong to it:
 * another read gives up rather than wait, a delayed write refuses,
 * and a blocking write waits, so the fill never overwrites newer
 * data.  cache_write_start puts a durable write in the cache and
 * leaves the write-back and sync to the I/O thread.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "cache.h"
#include "fake-backend.h"
#include "iothreads.h"

#define SIZE (4 * 1024 * 1024 + 1536)   /* the last block is partial */
#define BLK CACHE_BLOCK_SIZE

static uint8_t image[SIZE], buf[SIZE], back[SIZE];

/* Run a cache_io on an I/O thread, as the daemon does, and wait. */
struct hop {
  struct io_request req;
  struct cache_io *io;
  pthread_t ran_on;
  int r, err;
  bool done;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

static void
hop_done (struct io_request *req, int unused)
{
  struct hop *h = req->opaque;
  int r = cache_io_run (h->io);
  int err = errno;

  (void) unused;
  pthread_mutex_lock (&h->lock);
  h->ran_on = pthread_self ();
  h->r = r;
  h->err = err;
  h->done = true;
  pthread_cond_signal (&h->cond);
  pthread_mutex_unlock (&h->lock);
}

static int
run_on_iothread (struct cache_io *io, bool *other_thread)
{
  struct hop h = { .io = io };

  pthread_mutex_init (&h.lock, NULL);
  pthread_cond_init (&h.cond, NULL);
  h.req = (struct io_request) {
    .op = IO_OP_CALL, .prio = IO_PRIO_CLIENT, .done = hop_done, .opaque = &h,
  };
  io_submit (&h.req);
  pthread_mutex_lock (&h.lock);
  while (!h.done)
    pthread_cond_wait (&h.cond, &h.lock);
  pthread_mutex_unlock (&h.lock);
  pthread_cond_destroy (&h.cond);
  pthread_mutex_destroy (&h.lock);
  if (other_thread)
    *other_thread = !pthread_equal (h.ran_on, pthread_self ());
  errno = h.err;
  return h.r;
}

static struct fake *
new_fake (bool vectored)
{
  struct fake_config fc = { .name = "async", .size = SIZE,
                            .vectored = vectored };
  struct fake *fk = fake_new (&fc);

  for (size_t i = 0; i < SIZE; i++)
    image[i] = (uint8_t) (i * 7 + i / 4096);
  fake_fill (fk, image, SIZE, 0);
  return fk;
}

/* A miss: one handoff, one host read for a run, on the I/O thread. */
static void
test_one_hop (bool vectored)
{
  struct fake *fk = new_fake (vectored);
  struct cache_export *exp;
  struct cache_io *io;
  uint64_t handoffs;
  size_t ops;
  bool other;

  printf ("one hop (%s)\n", vectored ? "preadv" : "bounce");
  test_cache_init ("cache=1m,commit=medium,nora", false);
  assert (iothreads_start (1) == 0);
  exp = test_open (fk);

  /* Block 3 resident, 2 and 4..6 not: the read is 2..6 and unaligned. */
  assert (cache_read (exp, back, BLK, 3 * BLK) == 0);
  ops = fake_ops (fk, FAKE_PREAD);
  memset (back, 0, sizeof back);
  assert (cache_read_start (exp, back, 4 * BLK + 100, 2 * BLK + 50, &io) == 2);
  /* Nothing read from the host yet; the resident block copied already. */
  assert (fake_ops (fk, FAKE_PREAD) == ops);
  assert (memcmp (back + BLK - 50, image + 3 * BLK, BLK) == 0);

  handoffs = iothreads_handoffs ();
  assert (run_on_iothread (io, &other) == 0);
  assert (other);
  assert (iothreads_handoffs () == handoffs + 1);
  assert (memcmp (back, image + 2 * BLK + 50, 4 * BLK + 100) == 0);
  /* Blocks 2 and 4..6: two runs, one host read each. */
  assert (fake_ops (fk, FAKE_PREAD) == ops + 2);
  {
    struct cache_stats st;
    cache_export_stats (exp, &st);
    assert (st.misses == 1 + 4);
  }

  /* Now resident: served at once, no cache_io. */
  assert (cache_read_start (exp, back, 4 * BLK, 2 * BLK, &io) == 1);
  assert (io == NULL);
  assert (memcmp (back, image + 2 * BLK, 4 * BLK) == 0);

  /* The partial last block. */
  assert (cache_read_start (exp, back, 1536, SIZE - 1536, &io) == 2);
  assert (run_on_iothread (io, NULL) == 0);
  assert (memcmp (back, image + SIZE - 1536, 1536) == 0);

  /* io_run, from any thread, makes no handoff at all. */
  handoffs = iothreads_handoffs ();
  assert (cache_read (exp, back, 8 * BLK, 100 * BLK) == 0);
  assert (memcmp (back, image + 100 * BLK, 8 * BLK) == 0);
  assert (iothreads_handoffs () == handoffs);

  cache_export_close (exp);
  cache_shutdown ();
  iothreads_stop ();
  fake_free (fk);
}

/* A pending fill owns its blocks. */
struct writer {
  struct cache_export *exp;
  uint64_t offset;
  bool done;
};

static void *
write_thread (void *arg)
{
  struct writer *w = arg;
  uint8_t data[BLK];

  memset (data, 0xee, sizeof data);
  assert (cache_write (w->exp, data, BLK, w->offset, 0) == 0);
  __atomic_store_n (&w->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}

static void
test_busy (void)
{
  struct fake *fk = new_fake (true);
  struct cache_export *exp;
  struct cache_io *io, *io2;
  struct writer w;
  pthread_t t;
  uint8_t data[BLK];

  printf ("a pending fill owns its blocks\n");
  test_cache_init ("cache=1m,commit=medium,nora", false);
  assert (iothreads_start (1) == 0);
  exp = test_open (fk);

  assert (cache_read_start (exp, buf, 2 * BLK, 10 * BLK, &io) == 2);
  /* Another read of block 11 gives up, holding nothing. */
  assert (cache_read_start (exp, back, BLK, 11 * BLK, &io2) == 0);
  assert (io2 == NULL);
  assert (cache_read_start (exp, back, BLK, 12 * BLK, &io2) == 2);
  cache_io_cancel (io2);
  assert (test_stats (exp).resident_blocks == 2);
  /* A delayed write refuses the block rather than wait. */
  memset (data, 0xdd, sizeof data);
  assert (cache_write_nowait (exp, data, BLK, 11 * BLK, 0) == 0);
  /* A blocking write waits for the fill: the fill cannot overwrite it. */
  w = (struct writer) { .exp = exp, .offset = 10 * BLK };
  assert (pthread_create (&t, NULL, write_thread, &w) == 0);
  usleep (50000);
  assert (!__atomic_load_n (&w.done, __ATOMIC_SEQ_CST));
  assert (run_on_iothread (io, NULL) == 0);
  assert (memcmp (buf, image + 10 * BLK, 2 * BLK) == 0);
  pthread_join (t, NULL);
  assert (w.done);
  assert (cache_read (exp, back, BLK, 10 * BLK) == 0);
  memset (data, 0xee, sizeof data);
  assert (memcmp (back, data, BLK) == 0);

  cache_export_close (exp);
  cache_shutdown ();
  iothreads_stop ();
  fake_free (fk);
}

/* A failed fill: the error, and the blocks given back. */
static void
test_error (void)
{
  struct fake *fk = new_fake (true);
  struct cache_export *exp;
  struct cache_io *io;
  struct cache_host_read hr[4];

  printf ("host read errors\n");
  test_cache_init ("cache=1m,commit=medium,nora", false);
  assert (iothreads_start (1) == 0);
  exp = test_open (fk);

  fake_set_fault (fk, FAKE_PREAD, &(struct fake_fault) {
      .err = EIO, .times = 1 });
  assert (cache_read_start (exp, buf, 3 * BLK, 20 * BLK, &io) == 2);
  errno = 0;
  assert (run_on_iothread (io, NULL) == -1 && errno == EIO);
  assert (test_stats (exp).resident_blocks == 0);
  /* The next read tries again. */
  assert (cache_read (exp, buf, 3 * BLK, 20 * BLK) == 0);
  assert (memcmp (buf, image + 20 * BLK, 3 * BLK) == 0);

  /* Reads done by the caller (io_uring): described, then finished. */
  assert (cache_read_start (exp, buf, 2 * BLK + 10, 40 * BLK, &io) == 2);
  assert (cache_io_reads (io, hr, 4) == 1);
  assert (hr[0].offset == 40 * BLK && hr[0].niov == 3);
  for (unsigned i = 0; i < hr[0].niov; i++)
    memcpy (hr[0].iov[i].iov_base, image + 40 * BLK + i * BLK,
            hr[0].iov[i].iov_len);
  assert (cache_io_finish (io, 0) == 0);
  assert (memcmp (buf, image + 40 * BLK, 2 * BLK + 10) == 0);
  /* ... and failed: nothing kept. */
  assert (cache_read_start (exp, buf, BLK, 50 * BLK, &io) == 2);
  assert (cache_io_reads (io, hr, 4) == 1);
  errno = 0;
  assert (cache_io_finish (io, ENOSPC) == -1 && errno == ENOSPC);
  assert (cache_read_start (exp, buf, BLK, 50 * BLK, &io) == 2);
  assert (run_on_iothread (io, NULL) == 0);
  assert (memcmp (buf, image + 50 * BLK, BLK) == 0);

  cache_export_close (exp);
  cache_shutdown ();
  iothreads_stop ();
  fake_free (fk);
}

/* Large reads are sent from the blocks: pinned, filled, never copied. */
static void
test_pinned (void)
{
  struct fake *fk = new_fake (true);
  struct cache_export *exp;
  struct cache_io *io, *io2;
  struct iovec iov[40];
  struct cache_pin *pins[40], *pins2[40];
  size_t niov, npins, niov2, npins2, got;

  printf ("pinned\n");
  test_cache_init ("cache=1m,commit=medium,nora", false);
  assert (iothreads_start (1) == 0);
  exp = test_open (fk);

  /* Block 5 resident; 4..11 read, from byte 100 of block 4. */
  assert (cache_read (exp, back, BLK, 5 * BLK) == 0);
  assert (cache_read_start_pinned (exp, 8 * BLK - 100, 4 * BLK + 100, iov,
                                   40, &niov, pins, &npins, &io) == 2);
  assert (npins == 8);
  /* A pending fill's blocks: another pinned read gives up, pinning
   * nothing.
   */
  assert (cache_read_start_pinned (exp, BLK, 6 * BLK, iov + 20, 20, &niov2,
                                   pins2, &npins2, &io2) == 0);
  assert (npins2 == 0 && io2 == NULL);
  assert (run_on_iothread (io, NULL) == 0);
  got = 0;
  for (size_t i = 0; i < niov; i++) {
    assert (memcmp (iov[i].iov_base, image + 4 * BLK + 100 + got,
                    iov[i].iov_len) == 0);
    got += iov[i].iov_len;
  }
  assert (got == 8 * BLK - 100);
  cache_unpin (pins, npins);
  assert (test_stats (exp).resident_blocks == 8);

  /* A failed fill: the reply is an error; the unpin frees the blocks. */
  fake_set_fault (fk, FAKE_PREAD, &(struct fake_fault) {
      .err = EIO, .times = 1 });
  assert (cache_read_start_pinned (exp, 4 * BLK, 60 * BLK, iov, 40, &niov,
                                   pins, &npins, &io) == 2);
  errno = 0;
  assert (run_on_iothread (io, NULL) == -1 && errno == EIO);
  cache_unpin (pins, npins);
  assert (test_stats (exp).resident_blocks == 8);
  /* ... and the next read succeeds. */
  assert (cache_read_start_pinned (exp, 4 * BLK, 60 * BLK, iov, 40, &niov,
                                   pins, &npins, &io) == 2);
  assert (run_on_iothread (io, NULL) == 0);
  assert (niov >= 1 && memcmp (iov[0].iov_base, image + 60 * BLK,
                               iov[0].iov_len) == 0);
  cache_unpin (pins, npins);

  cache_export_close (exp);
  cache_shutdown ();
  iothreads_stop ();
  fake_free (fk);
}

/* Durable writes: in the cache on the caller, durable on the thread. */
static void
test_durable (void)
{
  struct fake *fk = new_fake (true);
  struct cache_export *exp;
  struct cache_io *io;
  size_t ops;

  printf ("durable writes\n");
  test_cache_init ("cache=1m,commit=high,nora", false);
  assert (iothreads_start (1) == 0);
  exp = test_open (fk);

  memset (buf, 0x5a, 3 * BLK);
  ops = fake_log_len (fk);
  assert (cache_write_start (exp, buf, 3 * BLK, 7 * BLK, 0, &io) == 2);
  assert (fake_log_len (fk) == ops);      /* no host I/O yet */
  assert (cache_read (exp, back, 3 * BLK, 7 * BLK) == 0);
  assert (memcmp (back, buf, 3 * BLK) == 0);
  assert (!fake_durable_is (fk, buf, 3 * BLK, 7 * BLK));
  assert (run_on_iothread (io, NULL) == 0);
  assert (fake_durable_is (fk, buf, 3 * BLK, 7 * BLK));
  assert (fake_ops (fk, FAKE_FLUSH) >= 1);

  /* A failed write-back reaches the durable write. */
  fake_set_fault (fk, FAKE_PWRITE, &(struct fake_fault) {
      .err = ENOSPC, .times = -1 });
  assert (cache_write_start (exp, buf, BLK, 30 * BLK, CACHE_FUA, &io) == 2);
  errno = 0;
  assert (run_on_iothread (io, NULL) == -1 && errno == ENOSPC);
  fake_clear_faults (fk);
  assert (cache_flush (exp) == 0);
  assert (fake_durable_is (fk, buf, BLK, 30 * BLK));

  cache_export_close (exp);
  cache_shutdown ();

  /* At medium a plain write is delayed: nothing to run. */
  test_cache_init ("cache=1m,commit=medium,nora", false);
  exp = test_open (fk);
  assert (cache_write_start (exp, buf, BLK, 0, 0, &io) == 1 && io == NULL);
  assert (cache_write_start (exp, buf, BLK, 0, CACHE_FUA, &io) == 2);
  assert (run_on_iothread (io, NULL) == 0);
  assert (fake_durable_is (fk, buf, BLK, 0));
  cache_export_close (exp);
  cache_shutdown ();
  iothreads_stop ();
  fake_free (fk);
}

int
main (void)
{
  test_one_hop (true);
  test_one_hop (false);
  test_busy ();
  test_error ();
  test_pinned ();
  test_durable ();
  printf ("ok\n");
  return 0;
}
