/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the devb-loopback option parser (public interface).
 *
 * Both front ends feed it the same text: the daemon its argv words
 * ("loopback", "ro,fd=/a", "blk", "cache=64m"), the nbdkit plugin its
 * loopback=... and blk=... keys, in command-line order.  Nothing here
 * touches a file: errors are found before any device is opened.
 *
 * Errors are returned as a malloc'd message in *err naming the option,
 * the value and what is allowed, e.g.
 * "blksz=3000: must be 512, 1024, 2048 or 4096".
 */
#ifndef NBDL_OPTS_H
#define NBDL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "configuration.h"

enum opts_group {
  OPTS_GROUP_LOOPBACK,
  OPTS_GROUP_BLK,
};

/* What an option does, for --help, the man page check and the parser. */
enum opt_scope {
  SCOPE_GLOBAL,                 /* loopback: applies to every fd= */
  SCOPE_ORDER,                  /* loopback: applies to later fd= */
  SCOPE_EXPORT,                 /* loopback: fd= itself */
  SCOPE_BLK,                    /* blk: cache and server settings */
  SCOPE_NO_EFFECT,              /* blk: QNX file-system level, warned */
};

struct opts;                    /* parser state, private to opts/ */

/* One row of the option table. */
struct opt_def {
  const char *name;             /* as typed before '=' */
  enum opts_group group;
  enum opt_scope scope;
  int takes_value;              /* 0 flag, 1 NAME=VALUE, 2 either */
  const char *syntax;           /* for --help: "cache=SIZE[:HASH]" */
  const char *help;             /* one line, no trailing period */
  /* Validates and records the option; returns -1 with *err set. */
  int (*handler) (struct opts *o, const struct opt_def *def,
                  const char *value, char **err);
  int slot;                     /* options sharing a slot conflict */
};

/* The one table: parser, --help and the man page check all read it. */
extern const struct opt_def opts_table[];
extern const size_t opts_table_len;

extern struct opts *opts_new (void);
extern void opts_free (struct opts *o);

/* Resolve % sizes against this much memory instead of the machine's
 * (for tests).
 */
extern void opts_set_physical_memory (struct opts *o, uint64_t bytes);

/* Parse one comma-separated option list of a group. */
extern int opts_parse_group (struct opts *o, enum opts_group group,
                             const char *text, char **err);

/* Parse command-line words: group keywords ("loopback", "blk", and
 * QNX driver/file-system groups such as "dos", which are ignored with
 * a warning), each followed by one or more option lists.
 */
extern int opts_parse_words (struct opts *o, int nwords, char *const *words,
                             char **err);

/* The group an option name belongs to, or -1 if it is in neither.
 * ro and rw are in both; this says loopback for them.
 */
extern int opts_group_of (const char *name);

/* Is this word a group keyword opts_parse_words understands? */
extern int opts_is_group_word (const char *word);

/* Apply defaults, resolve percentages and cross-option rules, and
 * return the configuration (NULL with *err set on error).  The parser
 * state can be freed afterwards.
 */
extern struct config *opts_finish (struct opts *o, char **err);

/* nbd-loopback -r: every export read-only, as with blk ro. */
extern void config_force_readonly (struct config *cfg);

extern void config_free (struct config *cfg);

/* names.c: formatting helpers shared with --dump-config. */
extern const char *access_mode_name (enum access_mode m);
extern const char *sync_mode_name (enum sync_mode m);
extern const char *deny_mode_name (enum deny_mode m);
extern const char *io_mode_name (enum io_mode m);
extern const char *commit_level_name (enum commit_level c);
/* Milliseconds as seconds: "2", "0.5", "0.125". */
extern void format_seconds (char *buf, size_t len, uint64_t ms);

/* Print the configuration as key=value lines (--dump-config).  probe,
 * if not NULL, fills in an export's block size (the NBD minimum), the
 * NBD preferred block size and the size from its file
 * (returning -1, already logged, if it cannot); config_dump then
 * returns -1 too.
 */
typedef int (*config_probe_fn) (const struct export_config *ec,
                                uint32_t *blksz, uint32_t *preferred,
                                uint64_t *size);
extern int config_dump (const struct config *cfg, FILE *fp,
                        config_probe_fn probe);

/* What LIST and NBD_INFO_DESCRIPTION say of an export (ec NULL: the
 * RAM disk).  Malloc'd, NULL if out of memory.
 */
extern char *export_description (const struct export_config *ec,
                                  uint64_t size, bool readonly,
                                  uint32_t blksz);

/* Print the option table grouped for --help. */
extern void opts_print_help (FILE *fp);

#endif /* NBDL_OPTS_H */
