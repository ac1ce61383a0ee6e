/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the nio= host I/O threads.
 *
 * One pool shared by every device.  Requests carry a priority: client
 * requests (a reader waiting for a cache miss, a FUA write) are always
 * taken before background work (delayed write-back, read-ahead), the
 * "client priority" order of devb-loopback.  With nio=0 there are no
 * threads: io_submit runs the request in the caller before returning.
 */
#ifndef NBDL_IOTHREADS_H
#define NBDL_IOTHREADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

enum io_priority {
  IO_PRIO_CLIENT,               /* someone is waiting for it */
  IO_PRIO_BACKGROUND,           /* write-back, read-ahead */
};

enum io_op {
  IO_OP_READ,
  IO_OP_WRITE,
  IO_OP_FLUSH,
  IO_OP_TRIM,
  IO_OP_ZERO,
  IO_OP_CALL,                   /* no host operation: done is the work */
};

struct io_request {
  /* Filled by the submitter. */
  enum io_op op;
  enum io_priority prio;
  struct device *dev;
  void *buf;                    /* READ destination, WRITE source */
  uint64_t offset;
  uint64_t count;
  bool may_trim;                /* ZERO only */
  /* Called once, on an I/O thread (or in the submitter with nio=0),
   * with 0 or an errno value.  The request belongs to the submitter
   * again from this call on.
   */
  void (*done) (struct io_request *req, int err);
  void *opaque;

  /* Private to iothreads.c. */
  struct io_request *next;
};

/* Start nio threads (0: none, requests run in the caller).  Returns -1
 * with errno set if a thread could not be created, or EBUSY if the
 * pool is already running.  The threads block every signal.
 */
extern int iothreads_start (unsigned nio);

/* Run every queued request, then stop and join the threads.  Call
 * from one thread at a time.  Afterwards requests run in the submitter
 * until iothreads_start is called again.
 */
extern void iothreads_stop (void);

/* Queue a request (or run it now with nio=0). */
extern void io_submit (struct io_request *req);

/* Run the request here, in the calling thread, and return 0 or -1
 * with errno set (req->done is not called).  For threads that may
 * block: crossing to an I/O thread only to wait for it would cost two
 * thread switches and buy nothing.
 */
extern int io_run (struct io_request *req);

/* Requests io_submit handed to an I/O thread so far (statistics, and
 * tests counting the handoffs of a request).
 */
extern uint64_t iothreads_handoffs (void);

#endif /* NBDL_IOTHREADS_H */
