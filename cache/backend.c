/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: what exports read from and write back to.
 *
 * The device backend runs every host operation on the nio= I/O
 * threads (or in the calling thread with nio=0), with the priority the
 * cache asks for, so client reads overtake background write-back and
 * read-ahead.  The memory backend is blk ramdisk=: a zeroed buffer,
 * durable as soon as it is written (there is nothing behind it).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

static int
run_io (struct device *dev, enum io_op op, enum io_priority prio, void *buf,
        uint64_t count, uint64_t offset, bool may_trim)
{
  struct io_request req = {
    .op = op, .prio = prio, .dev = dev, .buf = buf,
    .offset = offset, .count = count, .may_trim = may_trim,
  };
  return io_run (&req);
}

static int
dev_pread (void *h, void *buf, size_t count, uint64_t offset,
           enum io_priority prio)
{
  return run_io (h, IO_OP_READ, prio, buf, count, offset, false);
}

/* Vectored reads are only ever asked for by threads that may block
 * (io_run would run them here too).
 */
static int
dev_preadv (void *h, const struct iovec *iov, int iovcnt, uint64_t offset,
            enum io_priority prio)
{
  (void) prio;
  return device_preadv (h, iov, iovcnt, offset);
}

static int
dev_pwrite (void *h, const void *buf, size_t count, uint64_t offset,
            enum io_priority prio)
{
  return run_io (h, IO_OP_WRITE, prio, (void *) buf, count, offset, false);
}

static int
dev_flush (void *h)
{
  return run_io (h, IO_OP_FLUSH, IO_PRIO_CLIENT, NULL, 0, 0, false);
}

static int
dev_trim (void *h, uint64_t offset, uint64_t count)
{
  return run_io (h, IO_OP_TRIM, IO_PRIO_CLIENT, NULL, count, offset, false);
}

static int
dev_zero (void *h, uint64_t offset, uint64_t count, bool may_trim,
          bool fast_only)
{
  if (fast_only && !device_can_zero_fast (h)) {
    errno = ENOTSUP;
    return -1;
  }
  return run_io (h, IO_OP_ZERO, IO_PRIO_CLIENT, NULL, count, offset,
                 may_trim);
}

static int
dev_extents (void *h, uint64_t offset, uint64_t count, device_extent_fn fn,
             void *opaque)
{
  return device_extents (h, offset, count, fn, opaque);
}

static int
dev_revalidate (void *h)
{
  return device_revalidate (h);
}

void
device_backend (struct device *dev, struct cache_backend *be)
{
  const struct device_info *info = device_get_info (dev);

  *be = (struct cache_backend) {
    .name = device_name (dev),
    .size = info->size,
    .blksz = info->blksz,
    .preferred = info->preferred_blksz,
    .readonly = device_is_readonly (dev),
    .durable_writes = device_is_o_sync (dev),
    .can_revalidate = true,
    .handle = dev,
    .pread = dev_pread,
    .preadv = dev_preadv,
    .pwrite = dev_pwrite,
    .flush = dev_flush,
    .trim = dev_trim,
    .zero = dev_zero,
    .extents = dev_extents,
    .revalidate = dev_revalidate,
  };
}

struct cache_export *
cache_export_open (struct device *dev)
{
  struct cache_backend be;

  device_backend (dev, &be);
  return cache_export_open_backend (&be);
}

/* The memory backend.  lock keeps concurrent transfers of one byte
 * range from tearing.
 */
struct ram {
  pthread_mutex_t lock;
  char *data;
  uint64_t size;
};

static int
ram_pread (void *h, void *buf, size_t count, uint64_t offset,
           enum io_priority prio)
{
  struct ram *ram = h;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&ram->lock);

  memcpy (buf, ram->data + offset, count);
  return 0;
}

static int
ram_pwrite (void *h, const void *buf, size_t count, uint64_t offset,
            enum io_priority prio)
{
  struct ram *ram = h;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&ram->lock);

  memcpy (ram->data + offset, buf, count);
  return 0;
}

static int
ram_flush (void *h)
{
  return 0;
}

static int
ram_zero (void *h, uint64_t offset, uint64_t count, bool may_trim,
          bool fast_only)
{
  struct ram *ram = h;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&ram->lock);

  memset (ram->data + offset, 0, count);
  return 0;
}

static int
ram_trim (void *h, uint64_t offset, uint64_t count)
{
  return ram_zero (h, offset, count, true, false);
}

static void
ram_close (void *h)
{
  struct ram *ram = h;

  free (ram->data);
  free (ram);
}

struct cache_export *
cache_export_open_ram (const char *name, uint64_t size, uint32_t sector,
                       bool readonly)
{
  struct ram *ram = calloc (1, sizeof *ram);
  struct cache_backend be;
  struct cache_export *exp;
  int err;

  if (ram == NULL)
    return NULL;
  ram->data = calloc (1, size);
  if (ram->data == NULL) {
    log_error ("%s: allocating %llu bytes: %m", name,
               (unsigned long long) size);
    free (ram);
    return NULL;
  }
  ram->size = size;
  err = pthread_mutex_init (&ram->lock, NULL);
  if (err) {
    errno = err;
    log_error ("%s: initialising a lock: %m", name);
    free (ram->data);
    free (ram);
    return NULL;
  }
  be = (struct cache_backend) {
    .name = name, .size = size, .blksz = sector, .readonly = readonly,
    .durable_writes = true, .can_revalidate = false, .handle = ram,
    .pread = ram_pread, .pwrite = ram_pwrite, .flush = ram_flush,
    .trim = ram_trim, .zero = ram_zero, .close = ram_close,
  };
  exp = cache_export_open_backend (&be);
  if (exp == NULL)
    ram_close (ram);
  return exp;
}
