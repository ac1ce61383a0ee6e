/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: declarations private to opts/, by owning file. */
#ifndef NBDL_OPTS_INTERNAL_H
#define NBDL_OPTS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "configuration.h"
#include "opts.h"
#include "vector.h"

/* size.c */

/* A size as typed: bytes, or a percentage to resolve later. */
struct size_value {
  bool percent;
  uint64_t value;               /* bytes, or 0..100 */
};

enum size_flags {
  SIZE_ALLOW_PERCENT = 1,
};

/* Each returns 0, or -1 with *why set to a static description of what
 * is allowed (the caller adds "NAME=VALUE: ").
 */
extern int parse_size (const char *s, unsigned flags, struct size_value *out,
                       const char **why);
extern int parse_time_ms (const char *s, uint64_t *ms, const char **why);
extern int parse_uint (const char *s, uint64_t min, uint64_t max,
                       uint64_t *out, const char **why);
/* Split "a:b:c" into at most max fields (NULL for absent ones);
 * returns the count, or -1 if there are more than max.
 */
extern int split_fields (char *s, char **fields, int max);

/* opts.c: parser state shared by the group files. */

#define MAX_SLOTS 64

struct pending_export {
  char *path;
  struct export_config modes;   /* name/path unset until finish */
};
DEFINE_VECTOR (pending_exports, struct pending_export);
DEFINE_VECTOR (string_vector, char *);

struct opts {
  /* Order-dependent loopback state, copied into each fd=. */
  struct export_config current;
  char *trailing;               /* order-dependent option after the last fd= */
  struct string_vector cbtdirs;  /* every cbtdir= given (current points in) */

  struct pending_exports exports;

  /* loopback globals */
  uint32_t nio;
  char *prefix;
  bool have_user;
  uid_t uid;
  bool have_gid;
  gid_t gid;

  /* blk, before defaults and percentages are resolved */
  struct blk_config blk;
  bool have_cache, have_alloc, have_hash, have_postpone, have_wipe;
  bool have_ra_max;
  struct size_value cache, alloc, wipe;

  /* Which slot was set by which option, for "given twice" errors. */
  const char *slot_owner[MAX_SLOTS];
  char *slot_text[MAX_SLOTS];

  uint64_t physical_memory;     /* 0: ask the system */

  struct string_vector warnings; /* "key\tmessage" */
};

/* report.c: errors and warnings of every handler. */

/* Record a warning once per key (an option or group name). */
extern int opts_warn_once (struct opts *o, const char *key,
                           const char *fs, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Set *err to a formatted message; always returns -1. */
extern int opts_error (char **err, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));

/* loopback.c: handlers of the loopback group. */
extern int lo_global (struct opts *, const struct opt_def *, const char *, char **);
extern int lo_mode (struct opts *, const struct opt_def *, const char *, char **);
extern int lo_fd (struct opts *, const struct opt_def *, const char *, char **);
extern int lo_blksz (struct opts *, const struct opt_def *, const char *, char **);
extern int lo_geometry (struct opts *, const struct opt_def *, const char *, char **);
extern int lo_cbt (struct opts *, const struct opt_def *, const char *, char **);

/* blk.c: handlers of the blk group and the resolution of defaults. */
extern int blk_size (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_hash (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_time (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_commit (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_ra (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_number (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_range (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_flag (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_verbose (struct opts *, const struct opt_def *, const char *, char **);
extern int blk_resolve (struct opts *o, struct blk_config *blk, char **err);

/* fsopts.c: QNX file-system level options, validated then ignored. */
extern int fs_option (struct opts *, const struct opt_def *, const char *, char **);

/* Slots: options in the same slot may not both be given. */
enum {
  SLOT_NONE = 0,
  SLOT_NIO, SLOT_PREFIX, SLOT_USER,
  SLOT_CACHE, SLOT_ALLOC, SLOT_HASH, SLOT_DELWRI, SLOT_POSTPONE,
  SLOT_COMMIT, SLOT_RA, SLOT_PROTECT, SLOT_WIPE, SLOT_BUFSZ, SLOT_THREAD,
  SLOT_NOAIOD, SLOT_RAMDISK, SLOT_RMVTO, SLOT_READONLY, SLOT_VERBOSE,
  SLOT_COUNT
};

#endif /* NBDL_OPTS_INTERNAL_H */
