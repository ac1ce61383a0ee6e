/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the command line and the start-up order.
 *
 *   nbd-loopback [OPTIONS] [loopback opt[,opt...]] [blk opt[,opt...]]
 *
 * Daemon options are spelled as nbdkit spells them; the loopback and
 * blk groups are devb-loopback's, parsed by opts/.  Every error in the
 * command line is reported, and the program exits 1, before any file
 * is opened.  Then, in this order: open the devices (their errors
 * reach the terminal), bind the sockets, detach, start the I/O
 * threads, the cache and the workers, write the pidfile, drop
 * privileges, and serve until SIGTERM/SIGINT or the end of --run.
 * Threads are only started after detaching, since fork keeps just the
 * calling thread.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "device.h"
#include "internal.h"
#include "iothreads.h"
#include "log.h"
#include "opts.h"

struct daemon_options opt = {
  .timeout = 10.0,
  .stall_timeout = 60.0,
  .loops = 1,
  .max_connections = MAX_CONNECTIONS_DEFAULT,
};
const struct config *config;

enum {
  DUMP_CONFIG_OPTION = 256,
  RUN_OPTION,
  TLS_OPTION,
  TIMEOUT_OPTION,
  STALL_TIMEOUT_OPTION,
  LOOPS_OPTION,
  MAX_CONNECTIONS_OPTION,
};

static const char short_options[] = "e:fhi:P:p:U:vV";
static const struct option long_options[] = {
  { "dump-config", no_argument, NULL, DUMP_CONFIG_OPTION },
  { "exportname", required_argument, NULL, 'e' },
  { "foreground", no_argument, NULL, 'f' },
  { "no-fork", no_argument, NULL, 'f' },
  { "help", no_argument, NULL, 'h' },
  { "ipaddr", required_argument, NULL, 'i' },
  { "loops", required_argument, NULL, LOOPS_OPTION },
  { "max-connections", required_argument, NULL, MAX_CONNECTIONS_OPTION },
  { "pidfile", required_argument, NULL, 'P' },
  { "port", required_argument, NULL, 'p' },
  { "run", required_argument, NULL, RUN_OPTION },
  { "stall-timeout", required_argument, NULL, STALL_TIMEOUT_OPTION },
  { "timeout", required_argument, NULL, TIMEOUT_OPTION },
  { "tls", required_argument, NULL, TLS_OPTION },
  { "unix", required_argument, NULL, 'U' },
  { "verbose", no_argument, NULL, 'v' },
  { "version", no_argument, NULL, 'V' },
  { NULL },
};

static void
usage (FILE *fp)
{
  fprintf (fp,
           "nbd-loopback: serve files as NBD exports, configured like QNX "
           "devb-loopback\n"
           "\n"
           "Usage:\n"
           "  nbd-loopback [OPTIONS] [loopback opt[,opt...]] "
           "[blk opt[,opt...]]\n"
           "\n"
           "Example:\n"
           "  nbd-loopback -p 10809 loopback ro,blksz=2048,fd=/srv/cd.iso,"
           "rw,fd=/srv/disk.img blk cache=64m,commit=high\n"
           "\n"
           "Daemon options:\n"
           "  -f, --foreground           do not fork into the background; "
           "log to stderr\n"
           "  -p, --port PORT            TCP port to listen on "
           "(default 10809; 0: any free port)\n"
           "  -i, --ipaddr ADDR          listen on this address only "
           "(default: all)\n"
           "  -U, --unix PATH            listen on a Unix socket instead of "
           "TCP ('-': private)\n"
           "  -P, --pidfile FILE         write the process ID here once "
           "listening\n"
           "      --run CMD              serve while CMD runs, then exit "
           "with its status\n"
           "  -e, --exportname NAME      the export $uri names for --run "
           "(default: \"\")\n"
           "      --timeout SECS         handshake time limit "
           "(default 10)\n"
           "      --stall-timeout SECS   drop a client that reads no reply "
           "for SECS (default 60)\n"
           "      --max-connections N    refuse clients beyond N "
           "(default 1000)\n"
           "      --loops N              event loop threads (default 1)\n"
           "      --tls=off              no TLS (the only mode in this "
           "build)\n"
           "      --dump-config          print the resolved configuration "
           "(key=value) and exit\n"
           "  -v, --verbose              log more detail\n"
           "  -h, --help                 print this help and exit\n"
           "  -V, --version              print the version and exit\n");
  opts_print_help (fp);
  fprintf (fp, "\nThe man page nbd-loopback(8) describes every option.\n");
}

/* --dump-config shows the block size and size the server would use. */
static int
probe_export (const struct export_config *ec, uint32_t *blksz, uint64_t *size)
{
  struct device_info info;

  if (device_probe (ec, &info) == -1)
    return -1;
  *blksz = info.blksz;
  *size = info.size;
  return 0;
}

/* Parse the groups into a configuration, or exit 1 with the reason. */
static struct config *
parse_groups (int nwords, char *const *words)
{
  struct opts *o = opts_new ();
  struct config *cfg;
  CLEANUP_FREE char *err = NULL;

  if (o == NULL) {
    log_error ("out of memory");
    exit (EXIT_FAILURE);
  }
  if (opts_parse_words (o, nwords, words, &err) == -1 ||
      (cfg = opts_finish (o, &err)) == NULL) {
    log_error ("%s", err ? err : "out of memory");
    opts_free (o);
    exit (EXIT_FAILURE);
  }
  opts_free (o);
  for (size_t i = 0; i < cfg->nr_warnings; i++)
    log_warning ("%s", cfg->warnings[i]);
  return cfg;
}

static void __attribute__ ((noreturn))
bad_usage (const char *fs, const char *arg)
{
  log_error (fs, arg);
  fprintf (stderr, "Try 'nbd-loopback --help' for more information.\n");
  exit (EXIT_FAILURE);
}

static double
parse_seconds (const char *option, const char *arg)
{
  char *end;
  double d;

  errno = 0;
  d = strtod (arg, &end);
  if (errno || end == arg || *end || !(d > 0) || d > 86400)
    bad_usage ("%s: expected a number of seconds between 0 and 86400",
               option);
  return d;
}

static unsigned
parse_count (const char *option, const char *arg, unsigned max)
{
  char *end;
  unsigned long n;

  errno = 0;
  n = strtoul (arg, &end, 10);
  if (errno || end == arg || *end || n < 1 || n > max)
    bad_usage ("%s: expected a whole number from 1 up", option);
  return n;
}

/* LISTEN_PID/LISTEN_FDS meant for this process? */
static bool
socket_activated (void)
{
  const char *pid = getenv ("LISTEN_PID");
  const char *fds = getenv ("LISTEN_FDS");

  return pid && fds && strtol (pid, NULL, 10) == (long) getpid ()
    && strtol (fds, NULL, 10) > 0;
}

/* Cross-option rules; the option parser has already run. */
static void
check_daemon_options (bool port_given)
{
  if (opt.unix_path && (port_given || opt.ipaddr))
    bad_usage ("%s: -U cannot be combined with -p or -i", "-U");
  if (socket_activated ()) {
    if (opt.unix_path || port_given || opt.ipaddr || opt.run)
      bad_usage ("%s: -i, -p, -U and --run cannot be used with socket "
                 "activation (LISTEN_FDS)", "LISTEN_FDS");
    opt.socket_activation = true;
    opt.foreground = true;
  }
  if (opt.run) {
    opt.foreground = true;
    if (!opt.unix_path && !port_given && !opt.ipaddr)
      opt.unix_path = "-";
  }
  if (opt.pidfile && opt.pidfile[0] != '/') {
    /* The daemon changes directory to / when it detaches. */
    char *abs = realpath (".", NULL), *p;
    if (abs == NULL || asprintf (&p, "%s/%s", abs, opt.pidfile) == -1) {
      log_error ("pidfile: %s: %m", opt.pidfile);
      exit (EXIT_FAILURE);
    }
    free (abs);
    opt.pidfile = p;
  }
  else if (opt.pidfile)
    opt.pidfile = strdup (opt.pidfile);
}

/* Start-up failures after detaching still reach the terminal: the
 * parent waits for daemon_ready.
 */
static void __attribute__ ((noreturn))
die_after_listen (void)
{
  listen_cleanup ();
  exit (EXIT_FAILURE);
}

int
main (int argc, char *argv[])
{
  bool dump = false, port_given = false;
  struct config *cfg;
  int c, status;

  log_set_program ("nbd-loopback");

  while ((c = getopt_long (argc, argv, short_options, long_options,
                           NULL)) != -1) {
    switch (c) {
    case DUMP_CONFIG_OPTION:
      dump = true;
      break;
    case 'e':
      opt.exportname = optarg;
      break;
    case 'f':
      opt.foreground = true;
      break;
    case 'i':
      opt.ipaddr = optarg;
      break;
    case 'P':
      opt.pidfile = optarg;
      break;
    case 'p':
      opt.port = optarg;
      port_given = true;
      break;
    case 'U':
      opt.unix_path = optarg;
      break;
    case RUN_OPTION:
      opt.run = optarg;
      break;
    case TLS_OPTION:
      if (strcmp (optarg, "off") != 0)
        bad_usage ("--tls=%s: this build has no TLS yet; only --tls=off "
                   "is accepted", optarg);
      break;
    case TIMEOUT_OPTION:
      opt.timeout = parse_seconds ("--timeout", optarg);
      break;
    case STALL_TIMEOUT_OPTION:
      opt.stall_timeout = parse_seconds ("--stall-timeout", optarg);
      break;
    case LOOPS_OPTION:
      opt.loops = parse_count ("--loops", optarg, 64);
      break;
    case MAX_CONNECTIONS_OPTION:
      opt.max_connections = parse_count ("--max-connections", optarg,
                                         1000000);
      break;
    case 'v':
      log_verbose++;
      break;
    case 'h':
      usage (stdout);
      exit (EXIT_SUCCESS);
    case 'V':
      printf ("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
      exit (EXIT_SUCCESS);
    default:
      fprintf (stderr, "Try 'nbd-loopback --help' for more information.\n");
      exit (EXIT_FAILURE);
    }
  }

  cfg = parse_groups (argc - optind, &argv[optind]);

  if (dump) {
    status = config_dump (cfg, stdout, probe_export) == 0
      ? EXIT_SUCCESS : EXIT_FAILURE;
    if (fflush (stdout) == EOF) {
      log_error ("writing the configuration: %m");
      status = EXIT_FAILURE;
    }
    config_free (cfg);
    return status;
  }

  config = cfg;
  if (cfg->blk.verbose > log_verbose)
    log_verbose = cfg->blk.verbose;
  check_daemon_options (port_given);
  if (cfg->nr_exports == 0 && cfg->blk.ramdisk == 0) {
    log_error ("nothing to serve: give files with 'loopback fd=PATH' "
               "or a RAM disk with 'blk ramdisk=SIZE'");
    exit (EXIT_FAILURE);
  }

  /* Devices first: a bad file is reported before anything listens. */
  if (exports_open_devices (cfg) == -1)
    exit (EXIT_FAILURE);
  if (listen_open () == -1)
    die_after_listen ();

  /* Signals are taken by loop 0 through signalfd: block them before
   * any thread exists, so every thread inherits the mask.
   */
  signals_block ();
  if (!opt.foreground)
    daemon_start ();

  if (iothreads_start (cfg->nio) == -1) {
    log_error ("starting %" PRIu32 " I/O threads: %m", cfg->nio);
    die_after_listen ();
  }
  if (cache_init (&cfg->blk, true) == -1) {
    log_error ("setting up the cache: %m");
    die_after_listen ();
  }
  if (exports_open_cache (cfg) == -1)
    die_after_listen ();
  if (workers_start (cfg->blk.thread_max, cfg->blk.thread_low,
                     cfg->blk.thread_high) == -1)
    die_after_listen ();
  if (loops_init (opt.loops) == -1)
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
  if (!opt.foreground)
    daemon_ready ();

  loops_run ();

  /* Every connection is closed and every loop has stopped. */
  signals_stop (loops[0].ev);
  workers_stop ();
  status = exports_close () == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  loops_free ();
  listen_cleanup ();
  pidfile_remove ();
  if (captive_status () >= 0 && status == EXIT_SUCCESS)
    status = captive_status ();
  log_debug ("exiting with status %d", status);
  config_free (cfg);
  free (opt.pidfile);
  return status;
}
