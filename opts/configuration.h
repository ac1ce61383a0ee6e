/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the resolved configuration.
 *
 * opts/ turns the devb-loopback style command line (the "loopback"
 * and "blk" option groups) into one struct config.  Every layer reads
 * it; nobody changes it after opts_finish() returns.  All sizes are in
 * bytes and all times in milliseconds; percentages have already been
 * resolved against physical memory or the cache size.
 */
#ifndef NBDL_CONFIGURATION_H
#define NBDL_CONFIGURATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum access_mode { ACCESS_RW, ACCESS_RO };
enum sync_mode { SYNC_SYNC, SYNC_ASYNC };
enum deny_mode { DENY_NO, DENY_RD, DENY_WR, DENY_RW };
enum io_mode { IO_PROBE, IO_XTYPE, IO_SEEK };
/* DIRECT_AUTO: O_DIRECT where the file system has it, quietly. */
enum direct_mode { DIRECT_AUTO, DIRECT_ON, DIRECT_OFF };
enum commit_level { COMMIT_NONE, COMMIT_LOW, COMMIT_MEDIUM, COMMIT_HIGH };

/* One fd= target, with the order-dependent modes in force where it
 * appeared on the command line.
 */
struct export_config {
  char *name;                   /* prefix + index: "lo0", "lo1", ... */
  char *path;                   /* fd=PATH as typed */
  enum access_mode access;      /* effective: blk ro forces ACCESS_RO */
  enum sync_mode sync;
  enum deny_mode deny;
  enum io_mode io;              /* IO_PROBE unless seek/xtype was given */
  uint32_t blksz;               /* 0 = probe */
  uint32_t blksz_min;           /* bufsz= bounds the probed size too */
  uint32_t blksz_max;
  uint32_t heads;
  uint32_t tracks;
  enum direct_mode direct;      /* direct, nodirect: the page cache or not */
  uint32_t cbt;                 /* cbt=: tracking granularity; 0 = off */
  char *cbtdir;                 /* cbtdir=: sidecar directory; NULL = beside */
  char *cbt_image;              /* cbt: path, made absolute at parse time */
  char *cbt_file;               /* cbt: the tracking file, absolute */
};

/* The "blk" group (io-blk.so).  Times in milliseconds. */
struct blk_config {
  uint64_t cache;               /* cache=SIZE: total cache memory */
  uint64_t alloc;               /* alloc=: allocated at start-up, 0 = none */
  uint64_t hash;                /* hash= or cache=SIZE:HASH: entries */
  uint64_t delwri_ms;           /* delwri=T */
  uint64_t delwri_removable_ms; /* delwri=T:T2 (no removable media here) */
  uint64_t postpone_ms;         /* postpone= or delwri=T:T2:POSTPONE */
  enum commit_level commit;
  bool ra_enabled;              /* false after nora or ra=0 */
  uint64_t ra_min;              /* ra=MIN[:MAX] */
  uint64_t ra_max;
  uint32_t protect;             /* protect=N extra LRU passes */
  uint64_t wipe;                /* wipe=: most cache one export may hold */
  uint32_t bufsz_min;           /* bufsz=MIN:MAX */
  uint32_t bufsz_max;
  uint32_t thread_max;          /* thread=MAX:LOW:HIGH */
  uint32_t thread_low;
  uint32_t thread_high;
  bool thread_given;            /* thread= was given (else defaults) */
  bool noaiod;
  uint64_t ramdisk;             /* ramdisk=SIZE, 0 = none */
  uint32_t ramdisk_sector;
  bool rmvto_enabled;           /* false for rmvto=none */
  uint64_t rmvto_ms;
  bool readonly;                /* blk ro */
  int verbose;                  /* verbose[=LEVEL]: 0 off */
  char *verbose_flags;          /* LEVEL letters as typed, or NULL */
};

struct config {
  /* loopback globals */
  uint32_t nio;                 /* nio=N host I/O threads, 0 = inline */
  char *prefix;                 /* prefix=NAME, default "lo" */
  bool have_user;               /* user=UID[:GID] */
  uid_t uid;
  bool have_gid;
  gid_t gid;

  struct export_config *exports; /* in fd= order */
  size_t nr_exports;

  struct blk_config blk;

  /* Options accepted for compatibility that do nothing here: one
   * message per option name, for the front end to print.
   */
  char **warnings;
  size_t nr_warnings;
};

#endif /* NBDL_CONFIGURATION_H */
