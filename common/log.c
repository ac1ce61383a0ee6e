/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the logger (see log.h for the rules). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int log_verbose;

static log_sink_fn sink;            /* NULL: stderr */
static const char *program = PACKAGE_NAME;
static bool journal;                /* stderr is systemd's journal */

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

/* systemd connects a service's stderr to the journal and says so in
 * JOURNAL_STREAM=DEVICE:INODE (systemd.exec(5)); the journal then reads
 * a "<N>" at the start of a line as its syslog priority
 * (sd-daemon(3)).  The variable is inherited by children whose stderr
 * is elsewhere, so it counts only if it names our stderr.
 */
void
log_detect_journal (void)
{
  const char *env = getenv ("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  int n = 0;

  journal = env
    && sscanf (env, "%llu:%llu%n", &dev, &ino, &n) == 2 && env[n] == '\0'
    && fstat (STDERR_FILENO, &st) == 0
    && (unsigned long long) st.st_dev == dev
    && (unsigned long long) st.st_ino == ino;
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
  /* The syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
  static const char *const priority[] = {
    [LOG_LEVEL_ERROR] = "<3>",
    [LOG_LEVEL_WARNING] = "<4>",
    [LOG_LEVEL_INFO] = "<6>",
    [LOG_LEVEL_DEBUG] = "<7>",
  };
  char line[4096];
  int n;

  n = snprintf (line, sizeof line, "%s%s: %s%s\n",
                journal ? priority[level] : "", program, prefix[level], msg);
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
