/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: telling the service manager how it is going.
 *
 * Under systemd with Type=notify, the service manager passes the path
 * of a datagram socket in NOTIFY_SOCKET and waits for "READY=1" before
 * it counts the service as started (and starts what is ordered after
 * it).  The protocol is documented (sd_notify(3)): one datagram of
 * newline-separated VARIABLE=VALUE assignments, sent to that Unix
 * socket; a path starting with '@' names a socket in the abstract
 * namespace.  It is small enough to speak directly, without linking
 * libsystemd.  We send
 *
 * - READY=1 (with MAINPID and a STATUS line) once every socket
 *   listens, the pidfile is written and privileges are dropped;
 * - STOPPING=1 when the orderly shutdown begins;
 * - STATUS=... while the final write-back runs (stats.c), so
 *   `systemctl status` shows how much is left.
 *
 * The socket is connected at start-up, before user= drops privileges,
 * and NOTIFY_SOCKET is taken out of the environment so that the --run
 * command does not speak for us.  Without NOTIFY_SOCKET every call
 * here does nothing.  A send that fails is logged once at debug level:
 * the service manager going away must not stop the server.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

static int notify_fd = -1;

int
notify_init (void)
{
  const char *path = getenv ("NOTIFY_SOCKET");
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  size_t len;
  socklen_t salen;
  int fd;

  if (path == NULL || *path == '\0')
    return 0;
  len = strlen (path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path) {
    log_error ("NOTIFY_SOCKET=%s: expected an absolute path or "
               "@abstract-name, shorter than %zu bytes", path,
               sizeof addr.sun_path);
    return -1;
  }
  memcpy (addr.sun_path, path, len);
  salen = offsetof (struct sockaddr_un, sun_path) + len;
  if (path[0] == '@')
    addr.sun_path[0] = '\0';     /* abstract: no trailing NUL counted */
  else
    salen++;

  fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    log_error ("NOTIFY_SOCKET: socket: %m");
    return -1;
  }
  if (connect (fd, (struct sockaddr *) &addr, salen) == -1) {
    log_error ("NOTIFY_SOCKET=%s: connect: %m", path);
    close (fd);
    return -1;
  }
  notify_fd = fd;
  unsetenv ("NOTIFY_SOCKET");
  return 0;
}

bool
notify_enabled (void)
{
  return notify_fd >= 0;
}

void
notify_send (const char *fs, ...)
{
  static bool warned;
  char msg[512];
  va_list args;
  int n;
  ssize_t r;

  if (notify_fd < 0)
    return;
  va_start (args, fs);
  n = vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  if (n < 0)
    return;
  if ((size_t) n >= sizeof msg)
    n = sizeof msg - 1;
  do
    r = send (notify_fd, msg, n, MSG_NOSIGNAL);
  while (r == -1 && errno == EINTR);
  if (r == -1 && !__atomic_exchange_n (&warned, true, __ATOMIC_RELAXED))
    log_debug ("telling the service manager (NOTIFY_SOCKET): %m");
}

void
notify_close (void)
{
  if (notify_fd >= 0)
    close (notify_fd);
  notify_fd = -1;
}
