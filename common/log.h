/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: one logger for every layer.
 *
 * Messages are formatted into one buffer and handed to a sink in one
 * call (one write(2) for the default stderr sink), so lines from
 * different threads never interleave.  The daemon points the sink at
 * syslog when it detaches; the nbdkit plugin points it at
 * nbdkit_error/nbdkit_debug.  Every function preserves errno, so
 * callers can log and then return -1 with errno still meaningful.
 * Formats accept %m.
 */
#ifndef NBDL_LOG_H
#define NBDL_LOG_H

#include <stdbool.h>

enum log_level {
  LOG_LEVEL_ERROR,
  LOG_LEVEL_WARNING,
  LOG_LEVEL_INFO,
  LOG_LEVEL_DEBUG,
};

typedef void (*log_sink_fn) (enum log_level level, const char *msg);

/* Replace the sink (NULL restores the stderr sink).  Not thread-safe:
 * call during start-up only.
 */
extern void log_set_sink (log_sink_fn sink);

/* Program name used as the prefix of stderr lines. */
extern void log_set_program (const char *name);

/* If stderr is systemd's journal (JOURNAL_STREAM names it), start
 * stderr lines with their syslog priority ("<3>" for errors, ...), so
 * the journal records errors as errors.  Call during start-up only.
 */
extern void log_detect_journal (void);

/* 0 = errors, warnings and notices; 1 or more = debug messages too.
 * Written during start-up only.
 */
extern int log_verbose;

extern void log_error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
extern void log_warning (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
extern void log_info (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
extern void log_debug_real (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Costs one predictable branch when debugging is off. */
#define log_debug(fs, ...)                                              \
  do {                                                                  \
    if (__builtin_expect (log_verbose > 0, 0))                          \
      log_debug_real ((fs), ##__VA_ARGS__);                             \
  } while (0)

#endif /* NBDL_LOG_H */
