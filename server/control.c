/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: the control socket (--control PATH).
 *
 * Commands against the running server for changed-block tracking
 * (loopback cbt=), so that scripts can cut a checkpoint at exactly the
 * point a backup starts reading.  A Unix stream socket, mode 0600 (who
 * may connect is who may write the socket file), served by one thread
 * of its own that never touches client sockets.  One command per
 * connection, a line of words separated by spaces:
 *
 *   checkpoint EXPORT NAME     freeze "live" as NAME, start a fresh one;
 *                              answers "EXPORT NAME DIRTY_BYTES" as frozen
 *   delete EXPORT NAME         forget a frozen bitmap
 *   merge EXPORT TARGET SOURCE TARGET |= SOURCE (TARGET made if missing)
 *   list [EXPORT]              "EXPORT NAME DIRTY_BYTES" lines
 *
 * The answer is zero or more lines, then "ok" or "error: WHY".  An
 * error changes nothing.  `nbd-loopback ctl PATH WORDS...` is the
 * client (control_client).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#define CONTROL_LINE_MAX 1024
#define CONTROL_TIMEOUT_MS 5000   /* a client must send its line by then */
#define CONTROL_MAX_WORDS 8

static int control_fd = -1;
static int stop_pipe[2] = { -1, -1 };
static char *control_path;
static pthread_t control_thread;
static bool control_running;

/* ---- the server side ---- */

struct answer {
  FILE *fp;                     /* memstream */
  char *text;
  size_t len;
};

static int
list_one (void *opaque, const char *name, uint64_t dirty_bytes)
{
  struct { struct answer *a; const char *exp; } *c = opaque;

  fprintf (c->a->fp, "%s %s %" PRIu64 "\n", c->exp, name, dirty_bytes);
  return 0;
}

static const char *
bitmap_error (int err)
{
  switch (err) {
  case ENOTSUP: return "the export has no changed-block tracking (cbt)";
  case EINVAL: return "bad bitmap name (1 to 64 of A-Z a-z 0-9 _ . -)";
  case EEXIST: return "a bitmap of that name exists";
  case ENOENT: return "no such bitmap";
  case EPERM: return "the live bitmap cannot be deleted";
  case ENOSPC: return "too many bitmaps";
  case EIO: return "the tracking file cannot be written (the server log "
      "says why); nothing changed";
  default: return strerror (err);
  }
}

/* Run one command; the answer's last line is "ok" or "error: ...". */
static void
run_command (char **w, int n, struct answer *a)
{
  struct export *exp = NULL;
  const char *err = NULL;
  int r = 0;

  if (n == 0) {
    fprintf (a->fp, "error: empty command\n");
    return;
  }
  if (n >= 2) {
    exp = export_find (w[1], strlen (w[1]));
    if (exp == NULL || w[1][0] == '\0') {
      fprintf (a->fp, "error: unknown export '%s'\n", w[1]);
      return;
    }
  }
  if (strcmp (w[0], "checkpoint") == 0 && n == 3) {
    uint64_t dirty;

    r = cache_bitmap_checkpoint (exp->ce, w[2], &dirty);
    if (r == 0)
      fprintf (a->fp, "%s %s %" PRIu64 "\n", w[1], w[2], dirty);
  }
  else if (strcmp (w[0], "delete") == 0 && n == 3)
    r = cache_bitmap_delete (exp->ce, w[2]);
  else if (strcmp (w[0], "merge") == 0 && n == 4)
    r = cache_bitmap_merge (exp->ce, w[2], w[3]);
  else if (strcmp (w[0], "list") == 0 && n <= 2) {
    for (size_t i = 0; i < nr_exports; i++) {
      struct { struct answer *a; const char *exp; } c = {
        a, exports[i].name
      };
      if (exp && exp != &exports[i])
        continue;
      if (!cache_export_track_granularity (exports[i].ce)) {
        if (exp) {
          errno = ENOTSUP;
          r = -1;
        }
        continue;
      }
      cache_bitmap_list (exports[i].ce, list_one, &c);
    }
  }
  else
    err = "unknown command or wrong arguments (checkpoint EXPORT NAME, "
      "delete EXPORT NAME, merge EXPORT TARGET SOURCE, list [EXPORT])";
  if (err == NULL && r == -1)
    err = bitmap_error (errno);
  if (err) {
    fprintf (a->fp, "error: %s\n", err);
    log_warning ("control: %s%s%s: %s", w[0], n > 1 ? " " : "",
                 n > 1 ? w[1] : "", err);
  }
  else {
    fprintf (a->fp, "ok\n");
    if (strcmp (w[0], "list") != 0)
      log_info ("control: %s %s %s%s%s", w[0], w[1], w[2], n > 3 ? " " : "",
                n > 3 ? w[3] : "");
  }
}

static void
serve_client (int fd)
{
  char line[CONTROL_LINE_MAX + 1];
  size_t got = 0;
  char *words[CONTROL_MAX_WORDS], *save, *p;
  int n = 0;
  struct answer a = { 0 };

  /* One line, within CONTROL_TIMEOUT_MS. */
  while (got < CONTROL_LINE_MAX && memchr (line, '\n', got) == NULL) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    ssize_t r;

    if (poll (&pfd, 1, CONTROL_TIMEOUT_MS) <= 0)
      return;
    r = read (fd, line + got, CONTROL_LINE_MAX - got);
    if (r <= 0)
      break;
    got += r;
  }
  line[got] = '\0';
  p = strchr (line, '\n');
  if (p)
    *p = '\0';
  a.fp = open_memstream (&a.text, &a.len);
  if (a.fp == NULL)
    return;
  if (p == NULL)
    fprintf (a.fp, "error: the command must be one line of at most %d "
             "bytes\n", CONTROL_LINE_MAX - 1);
  else {
    for (char *tok = strtok_r (line, " \t", &save); tok;
         tok = strtok_r (NULL, " \t", &save)) {
      if (n == CONTROL_MAX_WORDS) {
        n = -1;
        break;
      }
      words[n++] = tok;
    }
    if (n < 0)
      fprintf (a.fp, "error: too many words\n");
    else
      run_command (words, n, &a);
  }
  if (fclose (a.fp) == 0) {
    const char *q = a.text;
    size_t left = a.len;

    while (left > 0) {
      ssize_t r = send (fd, q, left, MSG_NOSIGNAL);
      if (r <= 0)
        break;
      q += r;
      left -= r;
    }
  }
  free (a.text);
}

static void *
control_main (void *arg)
{
  for (;;) {
    struct pollfd pfd[2] = {
      { .fd = control_fd, .events = POLLIN },
      { .fd = stop_pipe[0], .events = POLLIN },
    };
    int fd;

    if (poll (pfd, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      log_error ("control: poll: %m");
      return NULL;
    }
    if (pfd[1].revents)
      return NULL;
    fd = accept4 (control_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1)
      continue;
    serve_client (fd);
    close (fd);
  }
}

int
control_open (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  mode_t old;

  if (path[0] != '/') {
    char cwd[4096];

    if (getcwd (cwd, sizeof cwd) == NULL ||
        asprintf (&control_path, "%s/%s", cwd, path) == -1) {
      log_error ("--control %s: %m", path);
      return -1;
    }
  }
  else if ((control_path = strdup (path)) == NULL) {
    log_error ("--control %s: %m", path);
    return -1;
  }
  if (strlen (control_path) >= sizeof addr.sun_path) {
    log_error ("--control %s: the path is too long for a Unix socket", path);
    return -1;
  }
  strcpy (addr.sun_path, control_path);
  control_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (control_fd == -1) {
    log_error ("--control %s: socket: %m", path);
    return -1;
  }
  /* A socket left by a server that died: nobody answers on it. */
  {
    int probe = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool taken = probe >= 0
      && connect (probe, (struct sockaddr *) &addr, sizeof addr) == 0;

    if (probe >= 0)
      close (probe);
    if (taken) {
      log_error ("--control %s: another server is using it", path);
      return -1;
    }
  }
  unlink (control_path);
  old = umask (0177);
  if (bind (control_fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    umask (old);
    log_error ("--control %s: bind: %m", path);
    close (control_fd);
    control_fd = -1;
    return -1;
  }
  umask (old);
  if (listen (control_fd, 16) == -1) {
    log_error ("--control %s: listen: %m", path);
    return -1;
  }
  return 0;
}

int
control_start (void)
{
  int err;

  if (control_fd == -1)
    return 0;
  if (pipe2 (stop_pipe, O_CLOEXEC) == -1) {
    log_error ("control: pipe: %m");
    return -1;
  }
  err = pthread_create (&control_thread, NULL, control_main, NULL);
  if (err) {
    errno = err;
    log_error ("control: starting its thread: %m");
    return -1;
  }
  control_running = true;
  return 0;
}

void
control_stop (void)
{
  if (control_running) {
    if (write (stop_pipe[1], "x", 1) != 1)
      log_error ("control: stopping: %m");
    pthread_join (control_thread, NULL);
    control_running = false;
  }
  if (control_fd >= 0) {
    close (control_fd);
    control_fd = -1;
    unlink (control_path);
  }
  for (int i = 0; i < 2; i++)
    if (stop_pipe[i] >= 0) {
      close (stop_pipe[i]);
      stop_pipe[i] = -1;
    }
  free (control_path);
  control_path = NULL;
}

/* ---- the client: nbd-loopback ctl PATH WORDS... ---- */

int
control_client (int argc, char **argv)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  CLEANUP_FREE char *line = NULL;
  char buf[4096];
  size_t len = 0;
  int fd;
  FILE *fp;

  if (argc < 2) {
    fprintf (stderr, "usage: nbd-loopback ctl SOCKET checkpoint EXPORT NAME"
             " | delete EXPORT NAME | merge EXPORT TARGET SOURCE"
             " | list [EXPORT]\n");
    return 2;
  }
  if (strlen (argv[0]) >= sizeof addr.sun_path) {
    fprintf (stderr, "nbd-loopback: ctl: %s: path too long\n", argv[0]);
    return 1;
  }
  strcpy (addr.sun_path, argv[0]);
  fp = open_memstream (&line, &len);
  if (fp == NULL)
    return 1;
  for (int i = 1; i < argc; i++)
    fprintf (fp, "%s%s", i > 1 ? " " : "", argv[i]);
  fprintf (fp, "\n");
  fclose (fp);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    fprintf (stderr, "nbd-loopback: ctl: connecting to %s: %s\n", argv[0],
             strerror (errno));
    return 1;
  }
  if (write (fd, line, len) != (ssize_t) len) {
    fprintf (stderr, "nbd-loopback: ctl: sending to %s: %s\n", argv[0],
             strerror (errno));
    close (fd);
    return 1;
  }
  /* Copy the answer; its last line decides the exit status. */
  {
    CLEANUP_FREE char *all = NULL;
    size_t n = 0;
    ssize_t r;
    char *last;

    fp = open_memstream (&all, &n);
    if (fp == NULL) {
      close (fd);
      return 1;
    }
    while ((r = read (fd, buf, sizeof buf)) > 0)
      fwrite (buf, 1, r, fp);
    fclose (fp);
    close (fd);
    while (n > 0 && all[n - 1] == '\n')
      all[--n] = '\0';
    last = strrchr (all, '\n');
    last = last ? last + 1 : all;
    fwrite (all, 1, last - all, stdout);
    if (strcmp (last, "ok") == 0)
      return 0;
    fprintf (stderr, "nbd-loopback: ctl: %s\n",
             strncmp (last, "error: ", 7) == 0 ? last + 7
             : "no answer from the server");
    return 1;
  }
}
