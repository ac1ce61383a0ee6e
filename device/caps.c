/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: what a device can promise the cache above it.
 *
 * Writes through an O_SYNC descriptor are durable when they return,
 * so the cache needs no fdatasync for them.  Zeroing is "fast" (in the
 * NBD_CMD_FLAG_FAST_ZERO sense) unless the host has already refused
 * fallocate/BLKZEROOUT and device_zero fell back to writing zeroes.
 */
#include <config.h>

#include "device.h"
#include "internal.h"

bool
device_is_o_sync (const struct device *dev)
{
  return dev->sync;
}

bool
device_can_zero_fast (const struct device *dev)
{
  return !__atomic_load_n (&dev->zero_is_slow, __ATOMIC_RELAXED);
}
