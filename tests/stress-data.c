/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client's data: every 64-byte chunk written is self-describing
 * (its position, the write's version, the run's seed, pseudo-random
 * words derived from those, and a checksum), so a chunk in the host
 * file says which write put it there and a misplaced, stale or torn
 * chunk is recognised.  check_file() holds a host file image against
 * the versions that had to survive.
 */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

/* ---- chunks ---- */

static void
make_chunk (uint64_t *w, uint64_t cseed, uint64_t chunk, uint64_t version)
{
  uint64_t h = mix64 (cseed ^ mix64 (version ^ mix64 (chunk)));

  w[0] = (CHUNK_MAGIC << 40) | chunk;
  w[1] = version;
  w[2] = cseed;
  w[3] = h;
  w[4] = mix64 (h + 1);
  w[5] = mix64 (h + 2);
  w[6] = mix64 (h + 3);
  w[7] = mix64 (w[0] ^ mix64 (w[1] ^ mix64 (w[2] ^ h)));
}

void
fill_sectors (void *buf, uint64_t cseed, uint64_t sector, uint32_t n,
              uint64_t version)
{
  uint64_t *w = buf;

  for (uint64_t c = 0; c < (uint64_t) n * CHUNKS_PER_SECTOR; c++)
    make_chunk (w + c * 8, cseed, sector * CHUNKS_PER_SECTOR + c, version);
}

static bool
chunk_is_zero (const uint64_t *w)
{
  for (int i = 0; i < 8; i++)
    if (w[i])
      return false;
  return true;
}

/* The version a chunk holds: 0 for zeroes, UINT64_MAX if it is not a
 * well-formed chunk of this position and seed.
 */
uint64_t
chunk_version (const uint64_t *w, uint64_t cseed, uint64_t chunk)
{
  uint64_t want[8];

  if (chunk_is_zero (w))
    return 0;
  if (w[0] != ((CHUNK_MAGIC << 40) | chunk) || w[2] != cseed || w[1] == 0)
    return UINT64_MAX;
  make_chunk (want, cseed, chunk, w[1]);
  return memcmp (w, want, CHUNK) == 0 ? w[1] : UINT64_MAX;
}

void
describe_chunk (const uint64_t *w, uint64_t chunk, char *out, size_t len)
{
  if (chunk_is_zero (w))
    snprintf (out, len, "zeroes");
  else if ((w[0] >> 40) != CHUNK_MAGIC)
    snprintf (out, len, "garbage (%016" PRIx64 " %016" PRIx64 ")",
              w[0], w[1]);
  else if ((w[0] & ((UINT64_C(1) << 40) - 1)) != chunk)
    snprintf (out, len, "the chunk of byte offset %" PRIu64 " (misplaced), "
              "version %" PRIu64,
              (w[0] & ((UINT64_C(1) << 40) - 1)) * CHUNK, w[1]);
  else
    snprintf (out, len, "version %" PRIu64 "%s", w[1],
              chunk_version (w, run.cseed, chunk) == UINT64_MAX
              ? " (corrupt, torn inside the chunk, or another seed's)" : "");
}

/* ---- checking the host file ---- */

/* The host file's contents (malloc'd). */
uint64_t *
read_file (void)
{
  uint64_t *buf = malloc (size);
  ssize_t r;
  int fd;

  if (buf == NULL)
    die ("out of memory");
  fd = open (file_path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    die ("%s: %m", file_path);
  r = pread (fd, buf, size, 0);
  if (r != (ssize_t) size)
    die ("%s: short read (%zd bytes)", file_path, r);
  close (fd);
  return buf;
}

/* required[s]: the version that had to survive (0: none); buf: the
 * image to check (freed).
 */
bool
check_file (const uint64_t *required, struct check *ck, const char *what,
            uint64_t *buf)
{
  uint64_t maxv = __atomic_load_n (&run.next_version, __ATOMIC_SEQ_CST);
  unsigned bad = 0;

  for (uint64_t s = 0; s < run.nsect; s++) {
    uint64_t first = UINT64_MAX;
    bool torn = false, newer = false;

    if (required[s])
      ck->sectors_required++;
    for (unsigned c = 0; c < CHUNKS_PER_SECTOR; c++) {
      uint64_t chunk = s * CHUNKS_PER_SECTOR + c;
      const uint64_t *w = buf + chunk * 8;
      uint64_t v = chunk_version (w, run.cseed, chunk);
      bool ok;
      char desc[160];

      ck->chunks++;
      if (v == 0)
        /* Zeroes: the initial content, or a zero write no older
         * than what had to survive.
         */
        ok = required[s] == 0 || run.max_zero[s] >= required[s];
      else
        ok = v != UINT64_MAX && v <= maxv && v >= required[s];
      if (ok && first != UINT64_MAX && v != first)
        torn = true;
      if (first == UINT64_MAX)
        first = v;
      if (ok && v > required[s] && required[s])
        newer = true;
      if (!ok && bad++ < 10) {
        describe_chunk (w, chunk, desc, sizeof desc);
        fail_at (NULL, "%s: byte %" PRIu64 " (sector %" PRIu64
                 ") holds %s, but version %" PRIu64 " had to survive "
                 "(newest zero write issued there: %" PRIu64 ", newest "
                 "version issued: %" PRIu64 ")", what, chunk * CHUNK, s,
                 desc, required[s], run.max_zero[s], maxv);
      }
    }
    if (torn)
      ck->torn++;
    if (newer)
      ck->newer++;
  }
  free (buf);
  return bad == 0;
}
