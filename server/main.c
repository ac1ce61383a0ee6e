/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the start-up order.
 *
 * The command line is cli.c's: every error in it is reported, and the
 * program exits 1, before any file is opened.  Then, in this order:
 * open the devices (their errors reach the terminal), bind the
 * sockets, detach, start the I/O threads, the cache and the workers,
 * write the pidfile, drop privileges, and serve until SIGTERM/SIGINT
 * or the end of --run; then stop in reverse.  Threads are only started
 * after detaching, since fork keeps just the calling thread.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "iothreads.h"
#include "log.h"
#include "opts.h"

/* Start-up failures after detaching still reach the terminal: the
 * parent waits for daemon_ready.
 */
static void __attribute__ ((noreturn))
die_after_listen (void)
{
  control_stop ();
  listen_cleanup ();
  exit (EXIT_FAILURE);
}

/* --exit-with-parent: SIGTERM (a clean stop, everything written back)
 * when the parent goes.  Before any thread exists, in the process
 * that serves (the option implies -f).
 */
static void
exit_with_parent (void)
{
  pid_t parent = getppid ();

  if (prctl (PR_SET_PDEATHSIG, SIGTERM) == -1) {
    log_error ("--exit-with-parent: prctl: %m");
    exit (EXIT_FAILURE);
  }
  if (getppid () != parent) {
    log_error ("--exit-with-parent: the parent process has already exited");
    exit (EXIT_FAILURE);
  }
}

/* --print-uri: the first export's URI, once the socket listens. */
static int
print_uri (void)
{
  CLEANUP_FREE char *uri =
    server_uri (nr_exports ? exports[0].name : "", opt.tls == TLS_REQUIRE);

  if (uri == NULL) {
    log_error ("--print-uri: %m");
    return -1;
  }
  if (printf ("%s\n", uri) < 0 || fflush (stdout) == EOF) {
    log_error ("--print-uri: writing to stdout: %m");
    return -1;
  }
  return 0;
}

/* Large buffers (payloads, host reads) are short-lived and freed by
 * other threads than those that took them.  glibc gives every thread
 * its own arena, each of which keeps megabytes of such freed memory:
 * with two arenas, resident memory stays near cache= (the hot paths
 * allocate nothing).
 */
static void
malloc_setup (void)
{
#ifdef M_ARENA_MAX
  mallopt (M_ARENA_MAX, 2);
#endif
}

/* Loops scale with connections up to the CPUs: connections are dealt
 * out in turn, and a loop serves its cache hits itself.
 */
static unsigned
default_loops (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);

  if (n < 1)
    return 1;
  return n > 8 ? 8 : (unsigned) n;
}

int
main (int argc, char *argv[])
{
  struct config *cfg;
  bool dump_config;
  int status;

  log_set_program ("nbd-loopback");
  if (argc > 1 && strcmp (argv[1], "ctl") == 0)
    return control_client (argc - 2, argv + 2);
  log_detect_journal ();
  malloc_setup ();

  cfg = cli_parse (argc, argv, &dump_config);
  if (dump_config) {
    status = cli_dump_config (cfg);
    config_free (cfg);
    config_file_free ();
    return status;
  }

  config = cfg;
  if (cfg->blk.verbose > log_verbose)
    log_verbose = cfg->blk.verbose;
  cli_check ();
  if (tls_resolve_paths () == -1)
    exit (EXIT_FAILURE);
  if (stats_init () == -1)
    exit (EXIT_FAILURE);
  if (notify_init () == -1)
    exit (EXIT_FAILURE);
  if (cfg->nr_exports == 0 && cfg->blk.ramdisk == 0) {
    log_error ("nothing to serve: give files with 'loopback fd=PATH' "
               "or a RAM disk with 'blk ramdisk=SIZE'");
    exit (EXIT_FAILURE);
  }

  if (opt.exit_with_parent)
    exit_with_parent ();
  /* Devices first: a bad file is reported before anything listens. */
  if (exports_open_devices (cfg) == -1)
    exit (EXIT_FAILURE);
  if (listen_open () == -1)
    die_after_listen ();
  if (opt.print_uri && print_uri () == -1)
    die_after_listen ();
  if (opt.control && control_open (opt.control) == -1)
    die_after_listen ();

  /* Signals are taken by loop 0 through signalfd: block them before
   * any thread exists, so every thread inherits the mask.
   */
  signals_block ();
  if (!opt.foreground)
    daemon_start ();

  /* Keys after detaching (mlock does not survive fork), before
   * user= drops the rights to read them.
   */
  if (tls_init () == -1)
    die_after_listen ();
  if (iothreads_start (cfg->nio) == -1) {
    log_error ("starting %" PRIu32 " I/O threads: %m", cfg->nio);
    die_after_listen ();
  }
  request_host_io_threads = cfg->nio > 0;
  request_noaiod = cfg->blk.noaiod;
  if (cache_init (&cfg->blk, true) == -1) {
    log_error ("setting up the cache: %m");
    die_after_listen ();
  }
  if (exports_open_cache (cfg) == -1)
    die_after_listen ();
  if (control_start () == -1)
    die_after_listen ();
  if (stats_write_file ("start") == -1)
    die_after_listen ();
  if (workers_start (cfg->blk.thread_max, cfg->blk.thread_low,
                     cfg->blk.thread_high) == -1)
    die_after_listen ();
  if (loops_init (opt.loops ? opt.loops : default_loops ()) == -1)
    die_after_listen ();
  listen_start (loops[0].ev);
  signals_start (loops[0].ev);
  if (loops_start_threads () == -1)
    die_after_listen ();
  if (opt.pidfile && pidfile_write () == -1)
    die_after_listen ();
  if (cfg->have_user && drop_privileges (cfg) == -1)
    die_after_listen ();
  if (opt.run && captive_start (loops[0].ev) == -1)
    die_after_listen ();
  notify_send ("READY=1\nMAINPID=%ld\nSTATUS=serving %zu export%s",
               (long) getpid (), nr_exports, nr_exports == 1 ? "" : "s");
  if (!opt.foreground)
    daemon_ready ();

  loops_run ();

  /* Every connection is closed and every loop has stopped. */
  signals_stop (loops[0].ev);
  control_stop ();
  stats_progress_start ();
  workers_stop ();
  status = stats_shutdown () == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  if (exports_close () == -1)
    status = EXIT_FAILURE;
  loops_free ();
  tls_cleanup ();
  access_free ();
  listen_cleanup ();
  pidfile_remove ();
  notify_close ();
  if (captive_status () >= 0 && status == EXIT_SUCCESS)
    status = captive_status ();
  log_debug ("exiting with status %d", status);
  config_free (cfg);
  config_file_free ();
  stats_free ();
  free (opt.pidfile);
  return status;
}
