/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the command line.
 *
 *   nbd-loopback [OPTIONS] [loopback opt[,opt...]] [blk opt[,opt...]]
 *
 * Daemon options are spelled as nbdkit spells them; the loopback and
 * blk groups are devb-loopback's, parsed by opts/.  Every error in the
 * command line is reported, and the program exits 1, before any file
 * is opened.
 */
#include <config.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "device.h"
#include "log.h"
#include "opts.h"

enum {
  DUMP_CONFIG_OPTION = 256,
};

static const char short_options[] = "hVv";
static const struct option long_options[] = {
  { "dump-config", no_argument, NULL, DUMP_CONFIG_OPTION },
  { "help", no_argument, NULL, 'h' },
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
           "  nbd-loopback --dump-config loopback ro,blksz=2048,fd=/srv/cd.iso,"
           "rw,fd=/srv/disk.img blk cache=64m,commit=high\n"
           "\n"
           "Daemon options:\n"
           "  --dump-config              print the resolved configuration "
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

int
main (int argc, char *argv[])
{
  bool dump = false;
  struct config *cfg;
  int c, status;

  log_set_program ("nbd-loopback");

  while ((c = getopt_long (argc, argv, short_options, long_options,
                           NULL)) != -1) {
    switch (c) {
    case DUMP_CONFIG_OPTION:
      dump = true;
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

  if (!dump) {
    log_error ("this build checks command lines but does not serve NBD "
               "yet; run it with --dump-config to see what the line means");
    config_free (cfg);
    exit (EXIT_FAILURE);
  }

  status = config_dump (cfg, stdout, probe_export) == 0
    ? EXIT_SUCCESS : EXIT_FAILURE;
  if (fflush (stdout) == EOF) {
    log_error ("writing the configuration: %m");
    status = EXIT_FAILURE;
  }
  config_free (cfg);
  return status;
}
