/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: how the option parser reports.
 *
 * An error is one malloc'd message naming the option, handed back in
 * *err; a warning is kept in the parser state, once per key (an option
 * or group name), and given to the caller with the finished
 * configuration.  Every handler file uses these two, and they use
 * nothing else of opts/, so the parser (opts.c) and its groups
 * (loopback.c, blk.c, fsopts.c) depend on this file, not on each
 * other.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int
opts_error (char **err, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  if (vasprintf (err, fs, args) == -1)
    *err = NULL;
  va_end (args);
  return -1;
}

int
opts_warn_once (struct opts *o, const char *key, const char *fs, ...)
{
  va_list args;
  char *msg, *entry;
  size_t keylen = strlen (key);

  /* Warnings are stored as "key\tmessage" so duplicates are found by key. */
  for (size_t i = 0; i < o->warnings.len; i++)
    if (strncmp (o->warnings.ptr[i], key, keylen) == 0 &&
        o->warnings.ptr[i][keylen] == '\t')
      return 0;

  va_start (args, fs);
  if (vasprintf (&msg, fs, args) == -1) {
    va_end (args);
    return -1;
  }
  va_end (args);

  if (asprintf (&entry, "%s\t%s", key, msg) == -1) {
    free (msg);
    return -1;
  }
  free (msg);
  if (string_vector_append (&o->warnings, entry) == -1) {
    free (entry);
    return -1;
  }
  return 0;
}
