/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: listening sockets.
 *
 * Where clients come from: TCP (-p, -i; every address by default,
 * IPv6 sockets made v6-only so IPv4 gets its own), a Unix socket (-U
 * PATH, or -U - for a private socket in a fresh temporary directory,
 * the usual companion of --run), or sockets passed in by systemd
 * (LISTEN_PID/LISTEN_FDS).  The sockets are opened before the daemon
 * detaches so their errors reach the terminal; loop 0 accepts on them
 * and hands each client to a loop, unless --allow (access.c) refuses
 * its address.  A Unix socket this process created is removed at exit,
 * and a stale one left by a dead server is replaced, but one a live
 * server answers on is an error.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "vector.h"

#define FIRST_SOCKET_ACTIVATION_FD 3
/* As deep as the kernel allows (net.core.somaxconn caps it): a Unix
 * socket refuses connections outright (EAGAIN) once its queue is full,
 * so a client reconnecting in a loop must not be able to fill it
 * before a real client gets a place.
 */
#define BACKLOG SOMAXCONN

struct listener {
  int fd;
  ev_io w;
};
DEFINE_VECTOR (listener_vector, struct listener);

/* Watchers point into the array: nothing is added once they start. */
static struct listener_vector listeners;
static char *unix_path;         /* socket we created, to unlink at exit */
static char *private_dir;       /* -U -: directory to remove at exit */
static int tcp_port = -1;
static ev_timer retry_timer;    /* accept paused after EMFILE */
static struct ev_loop *accept_loop;

static int
add_listener (int fd)
{
  if (listener_vector_append (&listeners, (struct listener) { .fd = fd })
      == -1) {
    log_error ("listening socket: %m");
    close (fd);
    return -1;
  }
  return 0;
}

/* A stale socket file answers nothing: connect fails ECONNREFUSED. */
static bool
socket_is_stale (const struct sockaddr_un *addr)
{
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool stale;

  if (fd == -1)
    return false;
  stale = connect (fd, (const struct sockaddr *) addr, sizeof *addr) == -1
    && errno == ECONNREFUSED;
  close (fd);
  return stale;
}

static int
open_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat st;
  int fd;

  if (strlen (path) >= sizeof addr.sun_path) {
    log_error ("-U %s: path too long for a Unix socket (at most %zu bytes)",
               path, sizeof addr.sun_path - 1);
    return -1;
  }
  strcpy (addr.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1) {
    log_error ("socket: %m");
    return -1;
  }
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    if (errno == EADDRINUSE && lstat (path, &st) == 0
        && S_ISSOCK (st.st_mode) && socket_is_stale (&addr)) {
      log_warning ("-U %s: replacing a stale socket nobody listens on",
                   path);
      unlink (path);
      if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0)
        goto bound;
    }
    if (errno == EADDRINUSE)
      log_error ("-U %s: another server is listening on this socket "
                 "(or the path exists and is not a socket)", path);
    else
      log_error ("-U %s: bind: %m%s", path,
                 errno == ENOENT ? " (create the directory first)"
                 : errno == EACCES ? " (this user may not write to the "
                 "directory)" : "");
    close (fd);
    return -1;
  }
 bound:
  /* Remember the absolute path: the daemon changes directory. */
  unix_path = realpath (path, NULL);
  if (unix_path == NULL)
    unix_path = strdup (path);
  if (listen (fd, BACKLOG) == -1) {
    log_error ("-U %s: listen: %m", path);
    close (fd);
    return -1;
  }
  return add_listener (fd);
}

static int
open_private_unix (void)
{
  char tmpl[] = "/tmp/nbd-loopbackXXXXXX", *path;
  const char *tmpdir = getenv ("TMPDIR");
  char *dir;
  int r;

  if (tmpdir && *tmpdir) {
    if (asprintf (&dir, "%s/nbd-loopbackXXXXXX", tmpdir) == -1) {
      log_error ("asprintf: %m");
      return -1;
    }
  }
  else if ((dir = strdup (tmpl)) == NULL) {
    log_error ("strdup: %m");
    return -1;
  }
  if (mkdtemp (dir) == NULL) {
    log_error ("-U -: mkdtemp %s: %m", dir);
    free (dir);
    return -1;
  }
  private_dir = dir;
  if (asprintf (&path, "%s/socket", dir) == -1) {
    log_error ("asprintf: %m");
    return -1;
  }
  r = open_unix (path);
  free (path);
  return r;
}

static int
bound_port (int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;

  if (getsockname (fd, (struct sockaddr *) &ss, &len) == -1)
    return -1;
  if (ss.ss_family == AF_INET)
    return ntohs (((struct sockaddr_in *) &ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs (((struct sockaddr_in6 *) &ss)->sin6_port);
  return -1;
}

static int
open_tcp (void)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
  }, *ai, *a;
  const char *port = opt.port ? opt.port : "10809";
  char portbuf[16];
  int r, one = 1;
  size_t before = listeners.len;

  r = getaddrinfo (opt.ipaddr, port, &hints, &ai);
  if (r != 0) {
    if (port[strspn (port, "0123456789")] != '\0' || !*port)
      log_error ("-p %s: not a port number (e.g. -p 10809, or -p 0 for "
                 "any free port)", port);
    else
      log_error ("%s%s%s port %s: %s%s", opt.ipaddr ? "-i " : "",
                 opt.ipaddr ? opt.ipaddr : "", opt.ipaddr ? "," : "", port,
                 gai_strerror (r), opt.ipaddr ? " (give an address of "
                 "this machine, e.g. -i 127.0.0.1 or -i ::1)" : "");
    return -1;
  }
  for (a = ai; a; a = a->ai_next) {
    int fd = socket (a->ai_family,
                     a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                     a->ai_protocol);

    if (fd == -1) {
      if (errno == EAFNOSUPPORT)
        continue;               /* e.g. no IPv6 in this kernel */
      log_error ("socket: %m");
      goto fail;
    }
    if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1) {
      log_error ("setsockopt SO_REUSEADDR: %m");
      close (fd);
      goto fail;
    }
    if (a->ai_family == AF_INET6
        && setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
                       sizeof one) == -1) {
      log_error ("setsockopt IPV6_V6ONLY: %m");
      close (fd);
      goto fail;
    }
    /* -p 0: the first socket picks the port, the others follow it. */
    if (tcp_port > 0) {
      if (a->ai_family == AF_INET)
        ((struct sockaddr_in *) a->ai_addr)->sin_port = htons (tcp_port);
      else if (a->ai_family == AF_INET6)
        ((struct sockaddr_in6 *) a->ai_addr)->sin6_port = htons (tcp_port);
    }
    if (bind (fd, a->ai_addr, a->ai_addrlen) == -1) {
      char host[NI_MAXHOST] = "?";

      if (!opt.ipaddr && a->ai_family == AF_INET6
          && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) {
        close (fd);             /* IPv6 is off here: IPv4 will do */
        continue;
      }
      getnameinfo (a->ai_addr, a->ai_addrlen, host, sizeof host, NULL, 0,
                   NI_NUMERICHOST);
      log_error ("bind %s port %s: %m%s", host, port,
                 errno == EADDRINUSE ? " (another server listens there: "
                 "stop it, or choose another port with -p)"
                 : errno == EADDRNOTAVAIL ? " (-i must be an address of "
                 "this machine)"
                 : errno == EACCES ? " (ports below 1024 need root; "
                 "the NBD port is 10809)" : "");
      close (fd);
      goto fail;
    }
    if (listen (fd, BACKLOG) == -1) {
      log_error ("listen: %m");
      close (fd);
      goto fail;
    }
    if (tcp_port <= 0)
      tcp_port = bound_port (fd);
    if (add_listener (fd) == -1)
      goto fail;
  }
  freeaddrinfo (ai);
  if (listeners.len == before) {
    log_error ("no address to listen on for port %s", port);
    return -1;
  }
  snprintf (portbuf, sizeof portbuf, "%d", tcp_port);
  log_debug ("listening on TCP port %s", portbuf);
  return 0;

 fail:
  freeaddrinfo (ai);
  return -1;
}

static int
open_activated (void)
{
  long n = strtol (getenv ("LISTEN_FDS"), NULL, 10);

  for (long i = 0; i < n; i++) {
    int fd = FIRST_SOCKET_ACTIVATION_FD + i;
    int fl = fcntl (fd, F_GETFL);

    if (fl == -1 || fcntl (fd, F_SETFL, fl | O_NONBLOCK) == -1
        || fcntl (fd, F_SETFD, FD_CLOEXEC) == -1) {
      log_error ("socket activation: file descriptor %d: %m", fd);
      return -1;
    }
    if (tcp_port < 0)
      tcp_port = bound_port (fd);
    if (add_listener (fd) == -1)
      return -1;
  }
  unsetenv ("LISTEN_PID");
  unsetenv ("LISTEN_FDS");
  unsetenv ("LISTEN_FDNAMES");
  log_debug ("socket activation: %ld listening sockets", n);
  return 0;
}

int
listen_open (void)
{
  if (opt.socket_activation)
    return open_activated ();
  if (opt.unix_path && strcmp (opt.unix_path, "-") == 0)
    return open_private_unix ();
  if (opt.unix_path)
    return open_unix (opt.unix_path);
  return open_tcp ();
}

static void start_watchers (void);

static void
retry_cb (struct ev_loop *ev, ev_timer *w, int revents)
{
  start_watchers ();
}

static void
accept_cb (struct ev_loop *ev, ev_io *w, int revents)
{
  struct listener *l = w->data;
  struct sockaddr_storage ss;
  socklen_t len;
  int fd;

  /* A few at a time, so one busy listener cannot starve the loop. */
  for (int i = 0; i < 16; i++) {
    len = sizeof ss;
    fd = accept4 (l->fd, (struct sockaddr *) &ss, &len,
                  SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
          || errno == ECONNABORTED)
        return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
          || errno == ENOMEM) {
        /* Out of descriptors: the socket stays readable, so stop
         * watching it for a moment instead of spinning.
         */
        log_warning ("accept: %m: pausing new connections for 1 s");
        for (size_t j = 0; j < listeners.len; j++)
          ev_io_stop (ev, &listeners.ptr[j].w);
        ev_timer_set (&retry_timer, 1.0, 0.);
        ev_timer_start (ev, &retry_timer);
        return;
      }
      log_error ("accept: %m");
      return;
    }
    if (!access_allowed ((struct sockaddr *) &ss)) {
      char peer[80];

      access_describe ((struct sockaddr *) &ss, peer, sizeof peer);
      log_warning ("connection from %s refused: not in --allow", peer);
      close (fd);
      continue;
    }
    loop_adopt_fd (fd);
  }
}

static void
start_watchers (void)
{
  for (size_t i = 0; i < listeners.len; i++)
    ev_io_start (accept_loop, &listeners.ptr[i].w);
}

void
listen_start (struct ev_loop *ev)
{
  accept_loop = ev;
  ev_timer_init (&retry_timer, retry_cb, 1.0, 0.);
  for (size_t i = 0; i < listeners.len; i++) {
    struct listener *l = &listeners.ptr[i];

    ev_io_init (&l->w, accept_cb, l->fd, EV_READ);
    l->w.data = l;
  }
  start_watchers ();
}

void
listen_stop (void)
{
  if (accept_loop) {
    ev_timer_stop (accept_loop, &retry_timer);
    for (size_t i = 0; i < listeners.len; i++)
      ev_io_stop (accept_loop, &listeners.ptr[i].w);
  }
  for (size_t i = 0; i < listeners.len; i++)
    close (listeners.ptr[i].fd);
  listener_vector_reset (&listeners);
}

void
listen_cleanup (void)
{
  if (listeners.len > 0)
    listen_stop ();
  if (unix_path && unlink (unix_path) == -1 && errno != ENOENT)
    log_debug ("removing %s: %m", unix_path);
  if (private_dir && rmdir (private_dir) == -1 && errno != ENOENT)
    log_debug ("removing %s: %m", private_dir);
  free (unix_path);
  free (private_dir);
  unix_path = private_dir = NULL;
}

const char *
listen_unix_path (void)
{
  return unix_path;
}

int
listen_tcp_port (void)
{
  return tcp_port;
}

const char *
listen_tcp_host (void)
{
  return opt.ipaddr ? opt.ipaddr : "localhost";
}
