/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client's power cut: with --journal, the server runs with
 * tests/faultinject.c preloaded and FAULTINJECT_JOURNAL set, which
 * records every host write, fallocate and sync.  From that journal,
 * power_cut_image() builds the host file a power cut at the kill would
 * have left: only what a completed sync covered.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

/* The journal's records (tests/faultinject.c). */
struct jrec {
  uint32_t magic;
  uint32_t type;
  uint64_t offset, count;
  uint64_t mode;
};
#define JREC_MAGIC 0x4a524543
#define FALLOC_PUNCH_HOLE 0x02
#define FALLOC_ZERO_RANGE 0x10

/* What a power cut at the kill would have left: starting from the
 * zeroed file, the writes and fallocates followed by a sync (malloc'd).
 * Sets *records and *synced for the figures.
 */
uint64_t *
power_cut_image (uint64_t *records, uint64_t *synced)
{
  char *img = calloc (1, size), *j;
  size_t len = 0, cap = 1 << 20, pos = 0, *pending = NULL;
  size_t npending = 0, cap_pending = 0;
  FILE *fp;
  size_t n;

  *records = *synced = 0;
  j = malloc (cap);
  fp = fopen (journal_path, "r");
  if (img == NULL || j == NULL)
    die ("out of memory");
  if (fp == NULL)
    die ("%s: %m (is the shim preloaded into the server?)", journal_path);
  while ((n = fread (j + len, 1, cap - len, fp)) > 0) {
    len += n;
    if (len == cap && (j = realloc (j, cap *= 2)) == NULL)
      die ("out of memory");
  }
  fclose (fp);
  while (pos + sizeof (struct jrec) <= len) {
    struct jrec r;

    memcpy (&r, j + pos, sizeof r);
    if (r.magic != JREC_MAGIC)
      die ("%s: bad record at byte %zu", journal_path, pos);
    if (r.type == 'W' && pos + sizeof r + r.count > len)
      break;                    /* cut short by the kill */
    (*records)++;
    if (r.type == 'S') {
      for (size_t i = 0; i < npending; i++) {
        struct jrec p;
        memcpy (&p, j + pending[i], sizeof p);
        if (p.offset > size || p.count > size - p.offset)
          continue;
        if (p.type == 'W')
          memcpy (img + p.offset, j + pending[i] + sizeof p, p.count);
        else if (p.mode & (FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE))
          memset (img + p.offset, 0, p.count);
        (*synced)++;
      }
      npending = 0;
    }
    else {
      if (npending == cap_pending) {
        cap_pending = cap_pending ? 2 * cap_pending : 1024;
        pending = realloc (pending, cap_pending * sizeof *pending);
        if (pending == NULL)
          die ("out of memory");
      }
      pending[npending++] = pos;
    }
    pos += sizeof r + (r.type == 'W' ? r.count : 0);
  }
  free (pending);
  free (j);
  return (uint64_t *) img;
}
