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

#endif /* NBDL_FUZZ_HARNESS_H */
