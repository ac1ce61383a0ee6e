/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client's server: it starts SERVER-COMMAND itself, with the
 * cycle's settings substituted (@COMMIT@, @DELWRI@, @NIO@, @CACHE@,
 * @SYNC@), so that it can kill it at any moment, reap it, read its
 * status and sample its memory.  Ready means: the pidfile names it.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stress.h"

pid_t server_pid;

const char *sync_word = "async";

static char *
substitute (const char *word, const char *commit, const char *delwri,
            const char *nio, const char *cache)
{
  static const char *keys[] = { "@COMMIT@", "@DELWRI@", "@NIO@", "@CACHE@",
                                "@SYNC@" };
  const char *vals[] = { commit, delwri, nio, cache, sync_word };
  char *out = strdup (word);

  for (int k = 0; k < 5 && out; k++) {
    char *p;
    while ((p = strstr (out, keys[k])) != NULL) {
      char *n;
      if (asprintf (&n, "%.*s%s%s", (int) (p - out), out, vals[k],
                    p + strlen (keys[k])) == -1)
        die ("out of memory");
      free (out);
      out = n;
    }
  }
  if (out == NULL)
    die ("out of memory");
  return out;
}

void
start_server (const char *commit, const char *delwri, const char *nio,
              const char *cache)
{
  char **argv = calloc (server_argc + 1, sizeof *argv);
  double deadline;

  if (argv == NULL)
    die ("out of memory");
  for (int i = 0; i < server_argc; i++)
    argv[i] = substitute (server_argv[i], commit, delwri, nio, cache);
  unlink (pidfile_path);
  unlink (sock_path);
  fflush (NULL);
  server_pid = fork ();
  if (server_pid == -1)
    die ("fork: %m");
  if (server_pid == 0) {
    /* If this client dies, so does its server. */
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    execvp (argv[0], argv);
    fprintf (stderr, "exec %s: %m\n", argv[0]);
    _exit (127);
  }
  for (int i = 0; i < server_argc; i++)
    free (argv[i]);
  free (argv);

  /* Ready once the pidfile names it (both servers write it last). */
  deadline = now_s () + 30;
  for (;;) {
    FILE *fp = fopen (pidfile_path, "r");
    long pid = 0;
    int status;

    if (fp) {
      if (fscanf (fp, "%ld", &pid) != 1)
        pid = 0;
      fclose (fp);
      if (pid == server_pid)
        return;
    }
    if (waitpid (server_pid, &status, WNOHANG) == server_pid)
      die ("the server exited instead of starting (status 0x%x)", status);
    if (now_s () > deadline)
      die ("the server did not write %s within 30 s", pidfile_path);
    sleep_ms (2);
  }
}

/* Reap the server; returns its wait status. */
int
reap_server (double timeout)
{
  double deadline = now_s () + timeout;
  int status;

  for (;;) {
    pid_t r = waitpid (server_pid, &status, WNOHANG);
    if (r == server_pid)
      return status;
    if (r == -1)
      die ("waitpid: %m");
    if (now_s () > deadline) {
      kill (server_pid, SIGKILL);
      waitpid (server_pid, &status, 0);
      die ("the server did not exit within %g s", timeout);
    }
    sleep_ms (2);
  }
}

bool
server_memory (struct mem *m)
{
  char path[64], line[256];
  FILE *fp;

  snprintf (path, sizeof path, "/proc/%ld/status", (long) server_pid);
  fp = fopen (path, "r");
  if (fp == NULL)
    return false;
  m->rss = m->hwm = 0;
  while (fgets (line, sizeof line, fp)) {
    unsigned long long kb;
    if (sscanf (line, "VmRSS: %llu kB", &kb) == 1)
      m->rss = kb * 1024;
    else if (sscanf (line, "VmHWM: %llu kB", &kb) == 1)
      m->hwm = kb * 1024;
  }
  fclose (fp);
  return m->rss > 0;
}
