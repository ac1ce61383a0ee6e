/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the logger (see log.h for the rules). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int log_verbose;

static log_sink_fn sink;            /* NULL: stderr */
static const char *program = PACKAGE_NAME;

void
log_set_sink (log_sink_fn fn)
{
  sink = fn;
}

void
log_set_program (const char *name)
{
  program = name;
}

static void
stderr_sink (enum log_level level, const char *msg)
{
  static const char *const prefix[] = {
    [LOG_LEVEL_ERROR] = "error: ",
    [LOG_LEVEL_WARNING] = "warning: ",
    [LOG_LEVEL_INFO] = "",
    [LOG_LEVEL_DEBUG] = "debug: ",
  };
  char line[4096];
  int n;

  n = snprintf (line, sizeof line, "%s: %s%s\n", program, prefix[level], msg);
  if (n < 0)
    return;
  if ((size_t) n >= sizeof line) {
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  /* Best effort: nothing useful can be done if stderr is gone. */
  if (write (STDERR_FILENO, line, n) == -1)
    return;
}

static void
vlog (enum log_level level, const char *fs, va_list args)
{
  int saved_errno = errno;
  char msg[3072];

  /* errno is restored before formatting so %m means the caller's errno. */
  errno = saved_errno;
  vsnprintf (msg, sizeof msg, fs, args);
  if (sink)
    sink (level, msg);
  else
    stderr_sink (level, msg);
  errno = saved_errno;
}

#define DEFINE_LOGGER(fn, level)                \
  void                                          \
  fn (const char *fs, ...)                      \
  {                                             \
    va_list args;                               \
    va_start (args, fs);                        \
    vlog ((level), fs, args);                   \
    va_end (args);                              \
  }

DEFINE_LOGGER (log_error, LOG_LEVEL_ERROR)
DEFINE_LOGGER (log_warning, LOG_LEVEL_WARNING)
DEFINE_LOGGER (log_info, LOG_LEVEL_INFO)
DEFINE_LOGGER (log_debug_real, LOG_LEVEL_DEBUG)
