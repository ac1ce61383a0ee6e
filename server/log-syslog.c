/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the syslog sink of the logger.
 *
 * In the foreground the daemon logs to stderr (common/log.c's default
 * sink); once detached, stderr is /dev/null and messages go to syslog
 * instead, tagged nbd-loopback[PID], facility daemon.
 */
#include <config.h>

#include <syslog.h>

#include "internal.h"
#include "log.h"

static void
syslog_sink (enum log_level level, const char *msg)
{
  static const int priority[] = {
    [LOG_LEVEL_ERROR] = LOG_ERR,
    [LOG_LEVEL_WARNING] = LOG_WARNING,
    [LOG_LEVEL_INFO] = LOG_INFO,
    [LOG_LEVEL_DEBUG] = LOG_DEBUG,
  };

  syslog (priority[level], "%s", msg);
}

void
log_to_syslog (void)
{
  openlog ("nbd-loopback", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  log_set_sink (syslog_sink);
}
