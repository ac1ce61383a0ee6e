/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: signals, handled inside loop 0.
 *
 * SIGTERM, SIGINT (and SIGHUP, which has nothing to reload here) start
 * the orderly shutdown; SIGUSR1 reports statistics (stats.c); SIGPIPE is
 * ignored (sends use MSG_NOSIGNAL anyway); SIGCHLD is for --run.  They
 * are blocked in every thread before any thread exists and read by
 * loop 0 through libev's signalfd watchers, so no handler ever runs in
 * the middle of a worker's lock.
 */
#include <config.h>

#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "log.h"

static ev_signal term_w, int_w, hup_w, usr1_w;
static sigset_t orig_mask;

void
signals_block (void)
{
  struct sigaction sa = { .sa_handler = SIG_IGN };
  sigset_t set;

  sigaction (SIGPIPE, &sa, NULL);
  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGHUP);
  sigaddset (&set, SIGUSR1);
  sigaddset (&set, SIGCHLD);
  pthread_sigmask (SIG_BLOCK, &set, &orig_mask);
}

/* In a forked child before exec: what the program had at start. */
void
signals_unblock_for_child (void)
{
  struct sigaction sa = { .sa_handler = SIG_DFL };

  sigaction (SIGPIPE, &sa, NULL);
  pthread_sigmask (SIG_SETMASK, &orig_mask, NULL);
}

static void
shutdown_cb (struct ev_loop *ev, ev_signal *w, int revents)
{
  log_info ("%s: shutting down", strsignal (w->signum));
  server_shutdown ();
}

static void
stats_cb (struct ev_loop *ev, ev_signal *w, int revents)
{
  stats_report ();
}

void
signals_start (struct ev_loop *ev)
{
  ev_signal_init (&term_w, shutdown_cb, SIGTERM);
  ev_signal_init (&int_w, shutdown_cb, SIGINT);
  ev_signal_init (&hup_w, shutdown_cb, SIGHUP);
  ev_signal_init (&usr1_w, stats_cb, SIGUSR1);
  ev_signal_start (ev, &term_w);
  ev_signal_start (ev, &int_w);
  ev_signal_start (ev, &hup_w);
  ev_signal_start (ev, &usr1_w);
}

void
signals_stop (struct ev_loop *ev)
{
  ev_signal_stop (ev, &term_w);
  ev_signal_stop (ev, &int_w);
  ev_signal_stop (ev, &hup_w);
  ev_signal_stop (ev, &usr1_w);
}
