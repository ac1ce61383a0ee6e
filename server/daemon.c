/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: detaching, the pidfile and dropping privileges.
 *
 * Detaching is done so that start-up errors still reach the user: the
 * parent forks and waits on a pipe.  The child starts the threads,
 * the cache and the loops, writes the pidfile and only then says
 * "ready" through the pipe, switches its log to syslog and closes
 * stdio; the parent exits 0 on "ready" and 1 if the pipe closes
 * without it (the child failed, its message already on stderr).  So
 * `nbd-loopback ... && client` never races the server.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

static int ready_fd = -1;       /* child: write end of the pipe */
static bool pidfile_written;

void
daemon_start (void)
{
  int fds[2];
  pid_t pid;
  char c;
  ssize_t r;

  if (pipe2 (fds, O_CLOEXEC) == -1) {
    log_error ("pipe: %m");
    exit (EXIT_FAILURE);
  }
  pid = fork ();
  if (pid == -1) {
    log_error ("fork: %m");
    exit (EXIT_FAILURE);
  }
  if (pid > 0) {
    /* Parent: wait for the child to be ready, or to fail. */
    close (fds[1]);
    do
      r = read (fds[0], &c, 1);
    while (r == -1 && errno == EINTR);
    if (r == 1)
      _exit (EXIT_SUCCESS);
    /* Reap it if it has already gone; it is in its own session. */
    waitpid (pid, NULL, WNOHANG);
    _exit (EXIT_FAILURE);
  }

  close (fds[0]);
  ready_fd = fds[1];
  if (setsid () == -1)
    log_warning ("setsid: %m");
  if (chdir ("/") == -1)
    log_warning ("chdir /: %m");
}

void
daemon_ready (void)
{
  int fd;

  log_to_syslog ();
  /* Serving already: a failure here leaves stdio on the terminal, which
   * is worth a warning, not stopping.
   */
  fd = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd == -1)
    log_warning ("/dev/null: %m: standard input and output stay on the "
                 "terminal");
  else {
    for (int std = STDIN_FILENO; std <= STDERR_FILENO; std++)
      if (dup2 (fd, std) == -1)
        log_warning ("dup2 /dev/null to fd %d: %m", std);
    if (fd > STDERR_FILENO)
      close (fd);
  }
  if (ready_fd >= 0) {
    if (write (ready_fd, "", 1) != 1)
      log_warning ("telling the parent process we are ready: %m");
    close (ready_fd);
    ready_fd = -1;
  }
}

/* Written once the sockets listen and everything is set up, atomically
 * (a reader never sees an empty file): tests and init scripts wait for
 * it.
 */
int
pidfile_write (void)
{
  char tmp[PATH_MAX], buf[32];
  int fd, len;

  if (snprintf (tmp, sizeof tmp, "%s.tmp%ld", opt.pidfile,
                (long) getpid ()) >= (int) sizeof tmp) {
    errno = ENAMETOOLONG;
    log_error ("pidfile: %s: %m", opt.pidfile);
    return -1;
  }
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
             0644);
  if (fd == -1) {
    log_error ("pidfile: %s: %m%s", tmp,
               errno == ENOENT || errno == EACCES
               ? " (is the directory there, and writable by this user?)" : "");
    return -1;
  }
  len = snprintf (buf, sizeof buf, "%ld\n", (long) getpid ());
  if (write (fd, buf, len) != len || close (fd) == -1) {
    log_error ("pidfile: %s: %m", tmp);
    unlink (tmp);
    return -1;
  }
  if (rename (tmp, opt.pidfile) == -1) {
    log_error ("pidfile: %s: %m", opt.pidfile);
    unlink (tmp);
    return -1;
  }
  pidfile_written = true;
  return 0;
}

void
pidfile_remove (void)
{
  if (pidfile_written && unlink (opt.pidfile) == -1 && errno != ENOENT)
    log_debug ("removing pidfile %s: %m", opt.pidfile);
  pidfile_written = false;
}

int
drop_privileges (const struct config *cfg)
{
  struct passwd *pw = getpwuid (cfg->uid);
  gid_t gid;

  if (cfg->have_gid)
    gid = cfg->gid;
  else if (pw)
    gid = pw->pw_gid;
  else
    gid = (gid_t) cfg->uid;

  if (geteuid () != 0) {
    if (geteuid () == cfg->uid && getegid () == gid)
      return 0;
    log_error ("user=%lu: changing user needs root (running as uid %lu)",
               (unsigned long) cfg->uid, (unsigned long) geteuid ());
    return -1;
  }

  /* Supplementary groups first, while we still may. */
  if ((pw && !cfg->have_gid ? initgroups (pw->pw_name, gid)
       : setgroups (1, &gid)) == -1) {
    log_error ("user=: setting supplementary groups: %m");
    return -1;
  }
  if (setgid (gid) == -1) {
    log_error ("user=: setgid %lu: %m", (unsigned long) gid);
    return -1;
  }
  if (setuid (cfg->uid) == -1) {
    log_error ("user=: setuid %lu: %m", (unsigned long) cfg->uid);
    return -1;
  }
  if (cfg->uid != 0 && setuid (0) != -1) {
    log_error ("user=: could regain root after dropping privileges");
    return -1;
  }
  log_debug ("running as uid %lu gid %lu",
             (unsigned long) cfg->uid, (unsigned long) gid);
  return 0;
}
