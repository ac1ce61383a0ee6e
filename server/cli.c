/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the command line.
 *
 *   nbd-loopback [OPTIONS] [loopback opt[,opt...]] [blk opt[,opt...]]
 *
 * Daemon options are spelled as nbdkit spells them; the loopback and
 * blk groups are devb-loopback's, parsed by opts/; --config-file's
 * words count as if they followed the command line.  Every error is
 * reported, with the --help hint, and the program exits 1 before any
 * file is opened (main.c does the rest).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "device.h"
#include "internal.h"
#include "log.h"
#include "opts.h"

struct daemon_options opt = {
  .timeout = 10.0,
  .stall_timeout = 60.0,
  .loops = 0,                   /* 0: one per CPU (default_loops) */
  .poll_us = 50,
  .max_connections = MAX_CONNECTIONS_DEFAULT,
  .max_buffered = MAX_BUFFERED_DEFAULT,
  .max_handshakes = MAX_HANDSHAKES_DEFAULT,
  .max_handshakes_per_address = MAX_HANDSHAKES_PER_ADDRESS_DEFAULT,
};
const struct config *config;
static bool tls_given;          /* --tls: otherwise on with credentials */

enum {
  DUMP_CONFIG_OPTION = 256,
  RUN_OPTION,
  TLS_OPTION,
  TIMEOUT_OPTION,
  STALL_TIMEOUT_OPTION,
  LOOPS_OPTION,
  POLL_OPTION,
  MAX_CONNECTIONS_OPTION,
  STATS_FILE_OPTION,
  CONFIG_FILE_OPTION,
  TLS_CERTIFICATES_OPTION,
  TLS_PSK_OPTION,
  TLS_VERIFY_PEER_OPTION,
  ALLOW_OPTION,
  EXIT_WITH_PARENT_OPTION,
  PRINT_URI_OPTION,
  MAX_BUFFERED_OPTION,
  MAX_HANDSHAKES_OPTION,
  MAX_HANDSHAKES_PER_ADDRESS_OPTION,
  CONTROL_OPTION,
};

/* The daemon options, in --help order.  getopt's tables and the
 * "Daemon options" part of --help are both made from this list, and
 * tests/test-help-man.sh checks the man page against --help, so the
 * three cannot disagree.  A row without help is another name for the
 * row above it (--no-fork).
 */
struct daemon_opt {
  const char *name;             /* long name */
  int val;                      /* short letter, or one of the enum above */
  int has_arg;                  /* no_argument or required_argument */
  const char *arg;              /* metavariable in --help */
  const char *help;             /* one line; NULL for an alias */
};

static const struct daemon_opt daemon_opts[] = {
  { "foreground", 'f', no_argument, NULL,
    "do not fork into the background; log to stderr" },
  { "no-fork", 'f', no_argument, NULL, NULL },
  { "port", 'p', required_argument, "PORT",
    "TCP port to listen on (default 10809; 0: any free port)" },
  { "ipaddr", 'i', required_argument, "ADDR",
    "listen on this address only (default: all)" },
  { "unix", 'U', required_argument, "PATH",
    "listen on a Unix socket instead of TCP ('-': private)" },
  { "pidfile", 'P', required_argument, "FILE",
    "write the process ID here once listening" },
  { "readonly", 'r', no_argument, NULL,
    "serve every export read-only (as blk ro)" },
  { "exit-with-parent", EXIT_WITH_PARENT_OPTION, no_argument, NULL,
    "exit (writing everything back) when the parent process exits" },
  { "print-uri", PRINT_URI_OPTION, no_argument, NULL,
    "print the first export's NBD URI on stdout once listening" },
  { "run", RUN_OPTION, required_argument, "CMD",
    "serve while CMD runs, then exit with its status" },
  { "exportname", 'e', required_argument, "NAME",
    "the export $uri names for --run (default: \"\")" },
  { "timeout", TIMEOUT_OPTION, required_argument, "SECS",
    "handshake time limit (default 10)" },
  { "stall-timeout", STALL_TIMEOUT_OPTION, required_argument, "SECS",
    "drop a client that reads no reply for SECS (default 60)" },
  { "max-connections", MAX_CONNECTIONS_OPTION, required_argument, "N",
    "refuse clients beyond N (default 1000)" },
  { "max-buffered", MAX_BUFFERED_OPTION, required_argument, "SIZE",
    "memory for clients' payloads and unsent replies (default 64m)" },
  { "max-handshakes", MAX_HANDSHAKES_OPTION, required_argument, "N",
    "clients in the handshake at once; the oldest idle makes room (128)" },
  { "max-handshakes-per-address", MAX_HANDSHAKES_PER_ADDRESS_OPTION,
    required_argument, "N",
    "the same from one address or user (default 16)" },
  { "loops", LOOPS_OPTION, required_argument, "N",
    "event loop threads (default: one per CPU, at most 8)" },
  { "poll", POLL_OPTION, required_argument, "USECS",
    "after input, poll USECS for more before sleeping (default 50; 0: never)" },
  { "tls", TLS_OPTION, required_argument, "MODE",
    "off, on or require (default: on if credentials given)" },
  { "tls-certificates", TLS_CERTIFICATES_OPTION, required_argument, "DIR",
    "X.509: DIR has ca-cert.pem, server-cert.pem, server-key.pem" },
  { "tls-psk", TLS_PSK_OPTION, required_argument, "FILE",
    "pre-shared keys: username:hexkey lines (psktool)" },
  { "tls-verify-peer", TLS_VERIFY_PEER_OPTION, no_argument, NULL,
    "require a client certificate signed by the CA" },
  { "allow", ALLOW_OPTION, required_argument, "ADDR[/PREFIX]",
    "accept TCP clients from there only (repeatable)" },
  { "config-file", CONFIG_FILE_OPTION, required_argument, "FILE",
    "read more options from FILE (a devb-loopback line, # comments)" },
  { "stats-file", STATS_FILE_OPTION, required_argument, "FILE",
    "write per-export statistics as JSON on SIGUSR1 and at exit" },
  { "control", CONTROL_OPTION, required_argument, "PATH",
    "a Unix socket for changed-block tracking checkpoints (nbd-loopback ctl)" },
  { "dump-config", DUMP_CONFIG_OPTION, no_argument, NULL,
    "print the resolved configuration (key=value) and exit" },
  { "verbose", 'v', no_argument, NULL,
    "log more detail, statistics at exit, write-back progress" },
  { "help", 'h', no_argument, NULL, "print this help and exit" },
  { "version", 'V', no_argument, NULL, "print the version and exit" },
};
#define NR_DAEMON_OPTS (sizeof daemon_opts / sizeof daemon_opts[0])

static char short_options[2 * NR_DAEMON_OPTS + 1];
static struct option long_options[NR_DAEMON_OPTS + 1];

static void
make_getopt_tables (void)
{
  char *s = short_options;

  for (size_t i = 0; i < NR_DAEMON_OPTS; i++) {
    const struct daemon_opt *d = &daemon_opts[i];

    long_options[i] = (struct option) { d->name, d->has_arg, NULL, d->val };
    if (d->val < 256 && d->help) {
      *s++ = d->val;
      if (d->has_arg == required_argument)
        *s++ = ':';
    }
  }
}

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
           "  nbd-loopback ctl SOCKET checkpoint|delete EXPORT NAME"
           " | merge EXPORT TARGET SOURCE | list [EXPORT]\n"
           "\n"
           "Example:\n"
           "  nbd-loopback -p 10809 loopback ro,blksz=2048,fd=/srv/cd.iso,"
           "rw,fd=/srv/disk.img blk cache=64m,commit=high\n"
           "\n"
           "Daemon options:\n");
  for (size_t i = 0; i < NR_DAEMON_OPTS; i++) {
    const struct daemon_opt *d = &daemon_opts[i];
    char names[80];
    int n;

    if (d->help == NULL)
      continue;
    n = snprintf (names, sizeof names, "%c%c%c --%s",
                  d->val < 256 ? '-' : ' ', d->val < 256 ? d->val : ' ',
                  d->val < 256 ? ',' : ' ', d->name);
    for (size_t j = i + 1; j < NR_DAEMON_OPTS && !daemon_opts[j].help; j++)
      n += snprintf (names + n, sizeof names - n, ", --%s",
                     daemon_opts[j].name);
    if (d->arg)
      snprintf (names + n, sizeof names - n, " %s", d->arg);
    if (strlen (names) > 26)
      fprintf (fp, "  %s\n  %-26s %s\n", names, "", d->help);
    else
      fprintf (fp, "  %-26s %s\n", names, d->help);
  }
  opts_print_help (fp);
  fprintf (fp, "\nThe man page nbd-loopback(8) describes every option; "
           "--dump-config shows\nwhat a QNX command line means here.\n");
}

/* --dump-config shows the block sizes and size the server would
 * advertise (cache_export_preferred's rule).
 */
static int
probe_export (const struct export_config *ec, uint32_t *blksz,
              uint32_t *preferred, uint64_t *size)
{
  struct device_info info;

  if (device_probe (ec, &info) == -1)
    return -1;
  *blksz = info.blksz;
  *preferred = info.preferred_blksz > CACHE_BLOCK_SIZE
    ? info.preferred_blksz : CACHE_BLOCK_SIZE;
  *size = info.size;
  return 0;
}

/* Whether the words of a --config-file alone give error err: then
 * the message should name the file.
 */
static bool
error_is_in (int nwords, char *const *words, const char *err)
{
  struct opts *o = opts_new ();
  CLEANUP_FREE char *e = NULL;
  bool same;

  if (o == NULL)
    return false;
  same = opts_parse_words (o, nwords, words, &e) == -1 && e &&
    strcmp (e, err) == 0;
  opts_free (o);
  return same;
}

/* Parse the groups into a configuration, or exit 1 with the reason.
 * The last nfile words are from config_file.
 */
static struct config *
parse_groups (int nwords, char *const *words, int nfile,
              const char *config_file)
{
  struct opts *o = opts_new ();
  struct config *cfg;
  CLEANUP_FREE char *err = NULL;

  if (o == NULL) {
    log_error ("out of memory");
    exit (EXIT_FAILURE);
  }
  if (opts_parse_words (o, nwords, words, &err) == -1) {
    if (err && nfile > 0 &&
        error_is_in (nfile, &words[nwords - nfile], err) &&
        !error_is_in (nwords - nfile, words, err))
      log_error ("--config-file %s: %s", config_file, err);
    else
      log_error ("%s", err ? err : "out of memory");
    opts_free (o);
    exit (EXIT_FAILURE);
  }
  if ((cfg = opts_finish (o, &err)) == NULL) {
    log_error ("%s", err ? err : "out of memory");
    opts_free (o);
    exit (EXIT_FAILURE);
  }
  opts_free (o);
  for (size_t i = 0; i < cfg->nr_warnings; i++)
    log_warning ("%s", cfg->warnings[i]);
  return cfg;
}

/* A usage error, logged as log_error would (the same 3072 bytes at
 * most), then the hint, then exit.
 */
static void __attribute__ ((noreturn, format (printf, 1, 2)))
bad_usage (const char *fs, ...)
{
  va_list args;
  char msg[3072];

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  log_error ("%s", msg);
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

/* A size: digits with an optional k, m or g (powers of 1024), at
 * least 1 MiB.
 */
static uint64_t
parse_bytes (const char *option, const char *arg)
{
  char *end;
  unsigned long long n;
  unsigned shift = 0;

  errno = 0;
  n = strtoull (arg, &end, 10);
  if (*end == 'k' || *end == 'K') shift = 10, end++;
  else if (*end == 'm' || *end == 'M') shift = 20, end++;
  else if (*end == 'g' || *end == 'G') shift = 30, end++;
  if (errno || end == arg || *end || arg[0] == '-' ||
      n > (UINT64_MAX >> shift) || (n << shift) < 1024 * 1024)
    bad_usage ("%s: expected a size of at least 1m (e.g. 256m)", option);
  return n << shift;
}

/* A port number from 0 to 65535, or a service name (/etc/services):
 * getaddrinfo would take 99999 modulo 65536.
 */
static void
check_port (const char *arg)
{
  char *end;
  unsigned long n;

  if (arg[0] < '0' || arg[0] > '9')
    return;                     /* a name: getaddrinfo says if unknown */
  errno = 0;
  n = strtoul (arg, &end, 10);
  if (errno || *end || n > 65535)
    bad_usage ("-p %s: expected a port number from 0 to 65535", arg);
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
  if (opt.exit_with_parent) {
    if (socket_activated ())
      bad_usage ("%s: the parent of a socket-activated server is the "
                 "service manager", "--exit-with-parent");
    opt.foreground = true;
  }
  if (opt.run) {
    opt.foreground = true;
    if (!opt.unix_path && !port_given && !opt.ipaddr)
      opt.unix_path = "-";
  }
  /* TLS: on when there are credentials, as nbdkit does. */
  if (!tls_given && (opt.tls_certificates || opt.tls_psk))
    opt.tls = TLS_ON;
  if (opt.tls != TLS_OFF && !opt.tls_certificates && !opt.tls_psk)
    bad_usage ("%s: TLS needs --tls-certificates DIR or --tls-psk FILE",
               opt.tls == TLS_ON ? "--tls=on" : "--tls=require");
  if (opt.tls == TLS_OFF && (opt.tls_certificates || opt.tls_psk))
    log_warning ("--tls=off: --tls-certificates and --tls-psk are ignored");
  if (opt.tls_verify_peer && !opt.tls_certificates)
    bad_usage ("%s: client certificates are checked against the CA of "
               "--tls-certificates DIR", "--tls-verify-peer");
  if (access_restricted () && opt.unix_path)
    log_warning ("--allow: clients of the Unix socket are not subject "
                 "to it");
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

static bool dump_config, port_given;
static const char *config_file;

/* Daemon options from argv, or (source set) from a --config-file's
 * words; leaves optind at the first word of the groups.
 */
static void
parse_daemon_options (int argc, char **argv, const char *source)
{
  int c;

  while ((c = getopt_long (argc, argv, short_options, long_options,
                           NULL)) != -1) {
    switch (c) {
    case DUMP_CONFIG_OPTION:
      dump_config = true;
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
      check_port (optarg);
      break;
    case 'r':
      opt.readonly = true;
      break;
    case EXIT_WITH_PARENT_OPTION:
      opt.exit_with_parent = true;
      break;
    case PRINT_URI_OPTION:
      opt.print_uri = true;
      break;
    case 'U':
      opt.unix_path = optarg;
      break;
    case RUN_OPTION:
      opt.run = optarg;
      break;
    case TLS_OPTION:
      if (strcmp (optarg, "off") == 0)
        opt.tls = TLS_OFF;
      else if (strcmp (optarg, "on") == 0)
        opt.tls = TLS_ON;
      else if (strcmp (optarg, "require") == 0)
        opt.tls = TLS_REQUIRE;
      else
        bad_usage ("--tls=%s: expected off, on or require", optarg);
      tls_given = true;
      break;
    case TLS_CERTIFICATES_OPTION:
      opt.tls_certificates = optarg;
      break;
    case TLS_PSK_OPTION:
      opt.tls_psk = optarg;
      break;
    case TLS_VERIFY_PEER_OPTION:
      opt.tls_verify_peer = true;
      break;
    case ALLOW_OPTION:
      if (access_allow (optarg) == -1) {
        fprintf (stderr, "Try 'nbd-loopback --help' for more "
                 "information.\n");
        exit (EXIT_FAILURE);
      }
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
    case POLL_OPTION:
      opt.poll_us = strcmp (optarg, "0") == 0 ? 0
        : parse_count ("--poll", optarg, 1000000);
      break;
    case MAX_HANDSHAKES_OPTION:
      opt.max_handshakes = parse_count ("--max-handshakes", optarg, 1000000);
      break;
    case MAX_HANDSHAKES_PER_ADDRESS_OPTION:
      opt.max_handshakes_per_address =
        parse_count ("--max-handshakes-per-address", optarg, 1000000);
      break;
    case MAX_BUFFERED_OPTION:
      opt.max_buffered = parse_bytes ("--max-buffered", optarg);
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
    case STATS_FILE_OPTION:
      opt.stats_file = optarg;
      break;
    case CONTROL_OPTION:
      opt.control = optarg;
      break;
    case CONFIG_FILE_OPTION:
      if (source)
        bad_usage ("%s: --config-file cannot be used inside a config file",
                   source);
      if (config_file)
        bad_usage ("--config-file %s: give one config file only", optarg);
      config_file = optarg;
      break;
    default:
      if (source)
        fprintf (stderr, "nbd-loopback: (that option is in %s)\n", source);
      fprintf (stderr, "Try 'nbd-loopback --help' for more information.\n");
      exit (EXIT_FAILURE);
    }
  }
}


/* The whole command line (and --config-file): the daemon options into
 * opt, the groups into the configuration returned; exits 1 on any
 * error.  *dump_config: --dump-config was given.
 */
struct config *
cli_parse (int argc, char **argv, bool *dump_config_out)
{
  struct config *cfg;
  char **words;
  int nwords, nfile = 0;

  make_getopt_tables ();
  /* getopt's messages name argv[0]: the program, not its build path. */
  argv[0] = (char *) "nbd-loopback";
  parse_daemon_options (argc, argv, NULL);
  nwords = argc - optind;
  words = &argv[optind];
  if (config_file) {
    /* The file's words count as if they followed the command line. */
    char **fwords = config_file_read (config_file, argv[0]);
    int n = 0, nf;

    if (fwords == NULL)
      exit (EXIT_FAILURE);      /* config_file_read said why */
    while (fwords[n])
      n++;
    optind = 0;                 /* glibc: start getopt afresh */
    parse_daemon_options (n, fwords, config_file);
    nf = n - optind;
    words = config_file_join (words, nwords, &fwords[optind], nf);
    nwords += nf;
    nfile = nf;
  }

  cfg = parse_groups (nwords, words, nfile, config_file);
  if (opt.readonly)
    config_force_readonly (cfg);
  *dump_config_out = dump_config;
  return cfg;
}

/* --dump-config: print what the command line means; the exit status. */
int
cli_dump_config (const struct config *cfg)
{
  int status = config_dump (cfg, stdout, probe_export) == 0
    ? EXIT_SUCCESS : EXIT_FAILURE;

  if (fflush (stdout) == EOF) {
    log_error ("writing the configuration: %m");
    status = EXIT_FAILURE;
  }
  return status;
}

/* The rules between daemon options, once the configuration is known. */
void
cli_check (void)
{
  check_daemon_options (port_given);
}
