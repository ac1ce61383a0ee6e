/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the dirty bitmaps of changed-block tracking: one bit
 * per granule, set atomically by writers (track.c), named, in the
 * frozen list of their export once a checkpoint made them.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "track.h"

struct bitmap *
bitmap_new (const struct track *t, const char *name, bool all_dirty)
{
  struct bitmap *b = calloc (1, sizeof *b);

  if (b == NULL)
    return NULL;
  b->name = strdup (name);
  b->words = calloc (t->nwords ? t->nwords : 1, sizeof *b->words);
  if (b->name == NULL || b->words == NULL) {
    free (b->name);
    free (b->words);
    free (b);
    return NULL;
  }
  if (all_dirty) {
    memset (b->words, 0xff, t->nwords * sizeof *b->words);
    if (t->nbits % 64)
      b->words[t->nwords - 1] = (UINT64_C (1) << (t->nbits % 64)) - 1;
  }
  b->refs = 1;
  return b;
}

void
bitmap_free (struct bitmap *b)
{
  if (b) {
    free (b->name);
    free (b->words);
    free (b);
  }
}

bool
valid_name (const char *name, size_t len)
{
  if (len == 0 || len > BITMAP_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!(name[i] >= 'a' && name[i] <= 'z') &&
        !(name[i] >= 'A' && name[i] <= 'Z') &&
        !(name[i] >= '0' && name[i] <= '9') &&
        name[i] != '_' && name[i] != '-' && name[i] != '.')
      return false;
  return true;
}

void
add_frozen (struct track *t, struct bitmap *b)
{
  struct bitmap **p = &t->frozen;

  while (*p)
    p = &(*p)->next;
  *p = b;
  t->nfrozen++;
}

