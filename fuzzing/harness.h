/* SPDX-License-Identifier: BSD-3-Clause */
/* The in-process server the protocol fuzz targets talk to. */
#ifndef NBDL_FUZZ_HARNESS_H
#define NBDL_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Feed the client bytes (prefix, then data) to a new connection of the
 * in-process server over a socketpair, read and discard everything it
 * answers, and return once the server has closed the connection and
 * freed it.  The first call sets the server up.
 */
extern void harness_run (const uint8_t *prefix, size_t prefix_len,
                         const uint8_t *data, size_t size);

/* Like harness_run, but the client bytes go in packets: each chunk is
 * sent only once the server has read all of the previous one and
 * answered what it could (so a chunk ending with NBD_OPT_STARTTLS is
 * acknowledged before the next is sent), and everything the server
 * sends is passed to sink (with opaque), in order, as it arrives.
 */
struct harness_chunk {
  const uint8_t *data;
  size_t len;
};
extern void harness_run_chunks (const struct harness_chunk *chunks,
                                size_t nchunks,
                                void (*sink) (void *opaque,
                                              const uint8_t *data,
                                              size_t len),
                                void *opaque);

#endif /* NBDL_FUZZ_HARNESS_H */
