/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: --config-file, a command line kept in a file.
 *
 * The systemd instance unit nbd-loopback@NAME.service runs
 * "nbd-loopback --config-file .../NAME.conf", so that an administrator
 * writes one devb-loopback line per server instead of editing units.
 * The file holds words as a shell would split them, nothing more:
 *
 *   # the build server's scratch disk
 *   devb-loopback loopback fd=/srv/scratch.img blk cache=256m,commit=high
 *
 * Words are separated by blanks and newlines; '#' at the start of a
 * word begins a comment to the end of the line; '...' and "..." quote
 * blanks and '#' (no escapes inside).  A first word naming the program
 * (devb-loopback or nbd-loopback, with or without a directory) is
 * skipped, so a QNX start-up line pastes in unchanged.  Daemon options
 * may be among the words.  There is no variable expansion, globbing or
 * include: what is in the file is what the daemon sees, and
 * --dump-config --config-file FILE shows what it means.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#define CONFIG_FILE_MAX (64 * 1024)   /* a command line, not a database */

/* Everything handed out here lives until config_file_free. */
static char *text;              /* the file, split in place */
static char **vec;              /* argv0 and the file's words */
static char **joined;           /* command-line words, then the file's */

/* Split text in place into words; returns how many, or -1 with a
 * message for an unterminated quote.
 */
static int
split_words (const char *path, char *s, char **out)
{
  int n = 0, line = 1;

  for (;;) {
    char *w;

    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
      if (*s == '\n')
        line++;
      s++;
    }
    if (*s == '\0')
      return n;
    if (*s == '#') {
      while (*s && *s != '\n')
        s++;
      continue;
    }
    /* A word: copy it over itself, dropping the quotes. */
    w = s;
    if (out)
      out[n] = w;
    n++;
    while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
      if (*s == '\'' || *s == '"') {
        char q = *s++;
        char *end = strchr (s, q);

        if (end == NULL) {
          log_error ("%s:%d: unterminated %c quote: close it, or remove "
                     "it if it is part of a name", path, line, q);
          return -1;
        }
        for (char *p = s; p < end; p++)
          if (*p == '\n')
            line++;
        memmove (w, s, end - s);
        w += end - s;
        s = end + 1;
      }
      else
        *w++ = *s++;
    }
    if (*s) {
      if (*s == '\n')
        line++;
      s++;
    }
    *w = '\0';
  }
}

static int
is_program_word (const char *w)
{
  const char *base = strrchr (w, '/');

  base = base ? base + 1 : w;
  return strcmp (base, "devb-loopback") == 0
    || strcmp (base, "nbd-loopback") == 0;
}

char **
config_file_read (const char *path, const char *argv0)
{
  CLEANUP_FREE char *copy = NULL;
  FILE *fp;
  size_t len;
  int n, skip;

  fp = fopen (path, "re");
  if (fp == NULL) {
    log_error ("--config-file %s: cannot open: %m (it should hold one "
               "devb-loopback line, e.g. 'loopback fd=/srv/disk.img')",
               path);
    return NULL;
  }
  text = malloc (CONFIG_FILE_MAX + 1);
  if (text == NULL) {
    log_error ("--config-file %s: %m", path);
    fclose (fp);
    return NULL;
  }
  len = fread (text, 1, CONFIG_FILE_MAX + 1, fp);
  if (ferror (fp)) {
    log_error ("--config-file %s: cannot read: %m", path);
    fclose (fp);
    return NULL;
  }
  fclose (fp);
  if (len > CONFIG_FILE_MAX) {
    log_error ("--config-file %s: longer than %d bytes; it should hold one "
               "command line", path, CONFIG_FILE_MAX);
    return NULL;
  }
  if (memchr (text, '\0', len)) {
    log_error ("--config-file %s: contains a NUL byte; is it a text file?",
               path);
    return NULL;
  }
  text[len] = '\0';

  /* Count first (on a copy: splitting is destructive), then split. */
  copy = strdup (text);
  if (copy == NULL) {
    log_error ("--config-file %s: %m", path);
    return NULL;
  }
  n = split_words (path, copy, NULL);
  if (n == -1)
    return NULL;
  vec = calloc (n + 2, sizeof *vec);
  if (vec == NULL) {
    log_error ("--config-file %s: %m", path);
    return NULL;
  }
  vec[0] = (char *) argv0;
  split_words (path, text, &vec[1]);
  skip = n > 0 && is_program_word (vec[1]);
  if (skip)
    memmove (&vec[1], &vec[2], n * sizeof *vec);
  if (n - skip == 0)
    log_warning ("--config-file %s: no options in it (only blanks and "
                 "comments)", path);
  return vec;
}

char **
config_file_join (char **words, int nwords, char **more, int nmore)
{
  joined = calloc (nwords + nmore + 1, sizeof *joined);
  if (joined == NULL) {
    log_error ("--config-file: %m");
    exit (EXIT_FAILURE);
  }
  memcpy (joined, words, nwords * sizeof *words);
  memcpy (joined + nwords, more, nmore * sizeof *more);
  return joined;
}

void
config_file_free (void)
{
  free (joined);
  free (vec);
  free (text);
  joined = vec = NULL;
  text = NULL;
}
