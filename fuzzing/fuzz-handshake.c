/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the daemon's handshake (option haggling).
 *
 * The input is everything a client sends, from the client flags on:
 * options of any kind, length and order, broken or not; if an option
 * enters the transmission phase, the rest of the input is requests.
 * It goes to the daemon's real connection code through a socketpair
 * (harness.c).  A crash, sanitizer report, leak or hang is a bug; the
 * server closing the connection is not.
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > 256 * 1024)
    return 0;
  harness_run (NULL, 0, data, size);
  return 0;
}
