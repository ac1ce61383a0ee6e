/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: captive mode (--run CMD).
 *
 * Once the server listens, CMD runs under /bin/sh with $uri, $nbd (the
 * same URI, as in nbdkit >= 1.24), $unixsocket, $port and $exportname
 * describing how to reach it.  When CMD exits the server shuts down
 * (finishing requests, writing back the cache) and exits with CMD's
 * status, or 128+N if a signal N killed it; a failed write-back turns
 * success into 1.  SIGTERM to the server is passed on to CMD.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

static ev_child child_w;
static pid_t child_pid;         /* 0: none running */
static int status = -1;         /* exit status --run asks for */

/* The NBD URI of the export: nbd+unix:///NAME?socket=PATH or
 * nbd://HOST:PORT/NAME.  Export names here need no escaping (letters,
 * digits, '_', '-', '.').
 */
char *
server_uri (const char *name, bool scheme_tls)
{
  const char *path = listen_unix_path ();
  const char *host = listen_tcp_host ();
  const char *s = scheme_tls ? "nbds" : "nbd";
  char *uri;
  int r;

  if (path)
    r = asprintf (&uri, "%s+unix:///%s?socket=%s", s, name, path);
  else if (strchr (host, ':'))
    r = asprintf (&uri, "%s://[%s]:%d/%s", s, host, listen_tcp_port (),
                  name);
  else
    r = asprintf (&uri, "%s://%s:%d/%s", s, host, listen_tcp_port (), name);
  return r == -1 ? NULL : uri;
}

static void
child_cb (struct ev_loop *ev, ev_child *w, int revents)
{
  ev_child_stop (ev, w);
  child_pid = 0;
  loops[0].waits_for_child = false;
  if (WIFEXITED (w->rstatus))
    status = WEXITSTATUS (w->rstatus);
  else if (WIFSIGNALED (w->rstatus))
    status = 128 + WTERMSIG (w->rstatus);
  else
    status = 1;
  log_debug ("--run: command exited with status %d", status);
  server_shutdown ();
  loop_maybe_finish (&loops[0]);
}

extern char **environ;

/* The child's environment: ours, with the five variables set.  Built
 * before fork, since only async-signal-safe calls are allowed between
 * fork and exec in a process with threads.
 */
static char **
make_env (const char *uri, const char *port, const char *name)
{
  const char *const keys[] = { "uri", "nbd", "unixsocket", "port",
                               "exportname" };
  const char *path = listen_unix_path ();
  const char *vals[] = { uri, uri, path ? path : "", port, name };
  size_t n = 0, k = 0;
  char **env;

  while (environ[n])
    n++;
  env = calloc (n + 6, sizeof *env);
  if (env == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    bool ours = false;
    for (size_t j = 0; j < 5; j++) {
      size_t len = strlen (keys[j]);
      if (strncmp (environ[i], keys[j], len) == 0 && environ[i][len] == '=')
        ours = true;
    }
    if (!ours)
      env[k++] = environ[i];
  }
  for (size_t j = 0; j < 5; j++)
    if (asprintf (&env[k++], "%s=%s", keys[j], vals[j]) == -1)
      return NULL;            /* start-up fails anyway: not freed */
  env[k] = NULL;
  return env;
}

int
captive_start (struct ev_loop *ev)
{
  static const char msg[] = "nbd-loopback: --run: cannot execute /bin/sh\n";
  const char *name = opt.exportname ? opt.exportname : "";
  char *uri = server_uri (name, false), port[16] = "", **env;
  char *argv[] = { (char *) "sh", (char *) "-c", (char *) opt.run, NULL };
  size_t nr_ours;
  pid_t pid;

  if (uri == NULL) {
    log_error ("--run: %m");
    return -1;
  }
  if (!listen_unix_path ())
    snprintf (port, sizeof port, "%d", listen_tcp_port ());
  env = make_env (uri, port, name);
  free (uri);
  if (env == NULL) {
    log_error ("--run: %m");
    return -1;
  }
  fflush (NULL);
  pid = fork ();
  if (pid == -1) {
    log_error ("--run: fork: %m");
    return -1;
  }
  if (pid == 0) {
    signals_unblock_for_child ();
    execve ("/bin/sh", argv, env);
    if (write (STDERR_FILENO, msg, sizeof msg - 1) == -1)
      _exit (127);
    _exit (127);
  }
  /* Free the five strings we made; the rest belong to environ. */
  for (nr_ours = 0; env[nr_ours]; nr_ours++)
    ;
  for (size_t i = nr_ours - 5; i < nr_ours; i++)
    free (env[i]);
  free (env);
  child_pid = pid;
  loops[0].waits_for_child = true;
  status = -1;
  ev_child_init (&child_w, child_cb, pid, 0);
  ev_child_start (ev, &child_w);
  return 0;
}

void
captive_terminate (void)
{
  if (child_pid > 0)
    kill (child_pid, SIGTERM);
}

int
captive_status (void)
{
  return opt.run ? (status >= 0 ? status : 1) : -1;
}
