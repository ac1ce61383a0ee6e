/* SPDX-License-Identifier: BSD-3-Clause */
/* A libnbd 1.22 client of extended headers (test-newest-daemon-zero-16g.sh
 * compiles it against the fetched libnbd):
 *
 *   newest-zero-16g URI
 *
 * The export must be 16 GiB.  Checks that extended headers were
 * negotiated, writes 1 MiB at 8 GiB, zeroes the whole export with one
 * nbd_zero (one NBD_CMD_WRITE_ZEROES of 16 GiB: without extended
 * headers libnbd refuses a length above 32 bits) and maps it with one
 * nbd_block_status_64, which must report one zero extent of 16 GiB.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#define EXPORT_SIZE (UINT64_C (16) << 30)

static void __attribute__ ((noreturn))
die (const char *what)
{
  fprintf (stderr, "newest-zero-16g: %s: %s\n", what,
           nbd_get_error () ? nbd_get_error () : "failed");
  exit (EXIT_FAILURE);
}

struct map {
  unsigned calls;
  uint64_t length;
  uint64_t flags;
  size_t entries;
};

static int
extent (void *opaque, const char *metacontext, uint64_t offset,
        nbd_extent *entries, size_t nr_entries, int *error)
{
  struct map *m = opaque;

  (void) offset;
  (void) error;
  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  m->calls++;
  m->entries = nr_entries;
  for (size_t i = 0; i < nr_entries; i++)
    printf ("extent %zu: %" PRIu64 " bytes, flags %" PRIu64 "\n", i,
            entries[i].length, entries[i].flags);
  if (nr_entries > 0) {
    m->length = entries[0].length;
    m->flags = entries[0].flags;
  }
  return 0;
}

int
main (int argc, char *argv[])
{
  struct nbd_handle *h;
  static char buf[1 << 20];
  struct map m = { 0 };

  if (argc != 2) {
    fprintf (stderr, "usage: newest-zero-16g URI\n");
    return EXIT_FAILURE;
  }
  h = nbd_create ();
  if (h == NULL)
    die ("nbd_create");
  if (nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1)
    die ("nbd_add_meta_context");
  if (nbd_connect_uri (h, argv[1]) == -1)
    die ("nbd_connect_uri");
  printf ("libnbd %s, extended headers %d, block status payload %d\n",
          nbd_get_version (h), nbd_get_extended_headers_negotiated (h),
          nbd_can_block_status_payload (h));
  if (nbd_get_extended_headers_negotiated (h) != 1)
    die ("extended headers were not negotiated");
  if (nbd_get_size (h) != (int64_t) EXPORT_SIZE)
    die ("the export is not 16 GiB");

  memset (buf, 'x', sizeof buf);
  if (nbd_pwrite (h, buf, sizeof buf, EXPORT_SIZE / 2, 0) == -1)
    die ("nbd_pwrite at 8 GiB");
  if (nbd_zero (h, EXPORT_SIZE, 0, 0) == -1)
    die ("nbd_zero of 16 GiB");
  if (nbd_block_status_64 (h, EXPORT_SIZE, 0,
                           (nbd_extent64_callback) { .callback = extent,
                                                     .user_data = &m },
                           0) == -1)
    die ("nbd_block_status_64 of 16 GiB");
  if (m.calls != 1 || m.entries != 1 || m.length != EXPORT_SIZE
      || !(m.flags & LIBNBD_STATE_ZERO)) {
    fprintf (stderr, "newest-zero-16g: block status: %u replies, %zu "
             "extents, the first %" PRIu64 " bytes with flags %" PRIu64
             "; expected one zero extent of 16 GiB\n", m.calls, m.entries,
             m.length, m.flags);
    exit (EXIT_FAILURE);
  }
  if (nbd_pread (h, buf, sizeof buf, EXPORT_SIZE / 2, 0) == -1)
    die ("nbd_pread at 8 GiB");
  for (size_t i = 0; i < sizeof buf; i++)
    if (buf[i] != 0) {
      fprintf (stderr, "newest-zero-16g: byte %zu at 8 GiB is not zero\n", i);
      exit (EXIT_FAILURE);
    }
  if (nbd_shutdown (h, 0) == -1)
    die ("nbd_shutdown");
  nbd_close (h);
  printf ("newest-zero-16g: ok\n");
  return EXIT_SUCCESS;
}
