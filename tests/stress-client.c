/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client: crash-consistency cycles and soak load, with
 * verification of every acknowledged write in the host file.
 *
 *   stress-client crash [OPTIONS] -- SERVER-COMMAND...
 *   stress-client soak  [OPTIONS] -- SERVER-COMMAND...
 *   stress-client load  [OPTIONS]
 *
 * The client starts the server itself (SERVER-COMMAND, which must
 * serve the --socket and write the --pidfile once ready; either front
 * end), so it can kill it at a random moment, reap it and read its
 * status.  In SERVER-COMMAND, @COMMIT@, @DELWRI@, @NIO@ and @CACHE@
 * are replaced by the values of the cycle (crash) or of the options
 * (soak).
 *
 * Workload: --conns libnbd connections (multi-conn), each a thread
 * with up to --depth requests in flight: writes of random runs of
 * 512-byte sectors at random offsets (aligned or not to the 4 KiB
 * cache block), some with FUA, WRITE_ZEROES (with and without
 * NO_HOLE), FLUSH, NBD_CMD_CACHE, and READs that are checked against
 * the newest acknowledged write of every sector, whichever connection
 * wrote it.  Two requests never overlap in flight, so writes to a
 * sector are ordered: version numbers (one counter for all
 * connections) increase along that order.
 *
 * Data: every 64-byte chunk written is self-describing: its position,
 * the write's version, the cycle's seed, pseudo-random words derived
 * from those, and a checksum.  So any chunk in the host file says
 * which write put it there, and a misplaced, stale or torn chunk is
 * recognised.
 *
 * crash: per cycle, a fresh (sparse, zero) host file, the server
 * started, the workload run, SIGKILL at a random moment (the server
 * must not have died before), and the host file checked: each chunk
 * must be zero only where that is legal, and otherwise hold a version
 * at least as new as the newest write that had to be durable:
 *   - every write acknowledged before an acknowledged FLUSH was sent
 *     (on any connection), at every commit level;
 *   - every acknowledged FUA write at commit=medium and high, and at
 *     commit=low too, whose FUA writes reach the host file before the
 *     reply (SPEC section 6: what kill -9 can check);
 *   - every acknowledged write at commit=high.
 * A later write (acknowledged or not) may legally have overwritten it.
 * With --journal (the server runs with tests/faultinject.c preloaded
 * and FAULTINJECT_JOURNAL set), the same check also runs on the image
 * a host power cut at the moment of the kill would have left: only
 * the host writes followed by a completed fdatasync (or made through
 * an O_SYNC fd).  There commit=low FUA writes need not survive, the
 * rest must: this checks that FLUSH, FUA and commit=high really sync.
 * Commit levels and the @DELWRI@/@NIO@/@CACHE@/@SYNC@ settings rotate
 * over the cycles.  A failure prints the seed and cycle to replay.
 *
 * soak: one server, the workload for --seconds with no error allowed,
 * the server's VmRSS sampled every 50 ms, then SIGTERM with requests
 * in flight: the server must exit 0 and the host file must hold every
 * acknowledged write (or a later one that was in flight).
 *
 * load: the soak workload against a server that is already running
 * (--socket; the host file must start zeroed and no one else may
 * write to the export): for --seconds, then a FLUSH, and the host
 * file must hold every acknowledged write.  No request may fail or
 * wait longer than --max-latency seconds.  For the hostile-client
 * tests: the well-behaved client next to the hostile ones.
 *
 * Figures are printed as "figures: ..." lines.  Exit 0 on success,
 * 1 on a failure (after printing why), 77 if something is missing.
 *
 * This file holds the command line and the small helpers; the rest is
 * one file per concern, sharing stress.h: stress-workload.c (the
 * connections and their requests), stress-data.c (the chunks and the
 * host file check), stress-server.c (starting, reaping, measuring the
 * server), stress-crash.c (kill cycles), stress-fault.c (the power-cut
 * image) and stress-load.c (soak and load).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"

/* ---- options ---- */

const char *const commit_names[NR_COMMIT] = {
  "none", "low", "medium", "high"
};

const char *mode;
bool crash_mode;
const char *file_path, *sock_path, *pidfile_path, *journal_path;
const char *export_name = "lo0";
uint64_t size = 8 << 20;
unsigned nconns = 4, depth = 8;
uint64_t seed;
unsigned cycles = 50, first_cycle;
unsigned max_ms = 150;
double seconds = 10;
uint64_t max_growth;             /* bytes of VmHWM above the start */
uint32_t max_len = 256 * 1024;
unsigned commit_mask = 0xf;      /* levels to rotate over */
const char *soak_delwri = "2", *soak_nio = "1", *soak_cache = "64m";
bool verbose;
char **server_argv;
int server_argc;
double max_latency = 10;

/* ---- reporting and small helpers ---- */

void
say (const char *fs, ...)
{
  va_list ap;

  fprintf (stderr, "stress-client %s: ", mode);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

void
die (const char *fs, ...)
{
  va_list ap;

  fprintf (stderr, "stress-client %s: FAIL: ", mode);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
  exit (1);
}

uint64_t
mix64 (uint64_t z)
{
  z += UINT64_C(0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

uint64_t
rnd (uint64_t *state)
{
  *state += UINT64_C(0x9e3779b97f4a7c15);
  return mix64 (*state);
}

uint64_t
below (uint64_t *state, uint64_t n)
{
  return n ? rnd (state) % n : 0;
}

double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t
now_ms (void)
{
  return now_s () * 1000;
}

void
sleep_ms (double ms)
{
  struct timespec ts = { .tv_sec = ms / 1000,
                         .tv_nsec = (long) (ms * 1e6) % 1000000000 };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

static uint64_t
parse_size (const char *s)
{
  char *end;
  uint64_t n;

  errno = 0;
  n = strtoull (s, &end, 0);
  if (errno || end == s)
    die ("not a number: '%s'", s);
  switch (*end) {
  case 'k': case 'K': n <<= 10; end++; break;
  case 'm': case 'M': n <<= 20; end++; break;
  case 'g': case 'G': n <<= 30; end++; break;
  }
  if (*end)
    die ("not a number: '%s'", s);
  return n;
}

void
fail_at (struct thread *t, const char *fs, ...)
{
  va_list ap;

  __atomic_store_n (&run.failed, true, __ATOMIC_SEQ_CST);
  if (t)
    fprintf (stderr, "stress-client %s: FAIL (conn %u): ", mode, t->index);
  else
    fprintf (stderr, "stress-client %s: FAIL: ", mode);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

/* ---- main ---- */

static void
usage (FILE *fp)
{
  fprintf (fp,
           "usage: stress-client crash|soak --file PATH --socket PATH "
           "--pidfile PATH [OPTIONS] -- SERVER-COMMAND...\n"
           "       stress-client load --file PATH --socket PATH "
           "[OPTIONS]\n"
           "(see the top of stress-client.c)\n");
}

int
main (int argc, char *argv[])
{
  static const struct option longopts[] = {
    { "file", required_argument, NULL, 'f' },
    { "socket", required_argument, NULL, 's' },
    { "pidfile", required_argument, NULL, 'P' },
    { "export", required_argument, NULL, 'e' },
    { "size", required_argument, NULL, 'S' },
    { "conns", required_argument, NULL, 'c' },
    { "depth", required_argument, NULL, 'd' },
    { "seed", required_argument, NULL, 'r' },
    { "cycles", required_argument, NULL, 'n' },
    { "first-cycle", required_argument, NULL, 'F' },
    { "max-ms", required_argument, NULL, 'm' },
    { "commit", required_argument, NULL, 'C' },
    { "seconds", required_argument, NULL, 't' },
    { "max-growth", required_argument, NULL, 'R' },
    { "max-len", required_argument, NULL, 'L' },
    { "delwri", required_argument, NULL, 'D' },
    { "nio", required_argument, NULL, 'N' },
    { "cache", required_argument, NULL, 'K' },
    { "verbose", no_argument, NULL, 'v' },
    { "journal", required_argument, NULL, 'J' },
    { "max-latency", required_argument, NULL, 'M' },
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  int c;

  if (argc >= 2 && strcmp (argv[1], "--help") == 0) {
    usage (stdout);
    return 0;
  }
  if (argc < 2 || (strcmp (argv[1], "crash") && strcmp (argv[1], "soak")
                    && strcmp (argv[1], "load"))) {
    usage (stderr);
    return 1;
  }
  mode = argv[1];
  crash_mode = strcmp (mode, "crash") == 0;
  argv++;
  argc--;
  seed = (uint64_t) time (NULL) ^ ((uint64_t) getpid () << 20);
  while ((c = getopt_long (argc, argv, "+v", longopts, NULL)) != -1) {
    switch (c) {
    case 'f': file_path = optarg; break;
    case 's': sock_path = optarg; break;
    case 'P': pidfile_path = optarg; break;
    case 'e': export_name = optarg; break;
    case 'S': size = parse_size (optarg); break;
    case 'c': nconns = parse_size (optarg); break;
    case 'd': depth = parse_size (optarg); break;
    case 'r': seed = parse_size (optarg); break;
    case 'n': cycles = parse_size (optarg); break;
    case 'F': first_cycle = parse_size (optarg); break;
    case 'm': max_ms = parse_size (optarg); break;
    case 't': seconds = strtod (optarg, NULL); break;
    case 'R': max_growth = parse_size (optarg); break;
    case 'L': max_len = parse_size (optarg); break;
    case 'D': soak_delwri = optarg; break;
    case 'N': soak_nio = optarg; break;
    case 'K': soak_cache = optarg; break;
    case 'v': verbose = true; break;
    case 'J': journal_path = optarg; break;
    case 'M': max_latency = strtod (optarg, NULL); break;
    case 'C': {
      char *copy = strdup (optarg), *save = NULL;
      commit_mask = 0;
      for (char *w = strtok_r (copy, ",", &save); w;
           w = strtok_r (NULL, ",", &save)) {
        int k;
        for (k = 0; k < NR_COMMIT; k++)
          if (strcmp (w, commit_names[k]) == 0)
            break;
        if (k == NR_COMMIT)
          die ("--commit: unknown level '%s'", w);
        commit_mask |= 1u << k;
      }
      free (copy);
      break;
    }
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 1;
    }
  }
  if (!file_path || !sock_path
      || (strcmp (mode, "load") != 0 && (!pidfile_path || optind >= argc))
      || commit_mask == 0 || size < 1 << 20 || size % 4096
      || nconns == 0 || depth == 0 || max_len < SECTOR) {
    usage (stderr);
    return 1;
  }
  server_argv = &argv[optind];
  server_argc = argc - optind;
  setvbuf (stdout, NULL, _IOLBF, 0);
  say ("seed %" PRIu64 " (--seed to replay)", seed);
  if (strcmp (mode, "load") == 0)
    return run_load ();
  return crash_mode ? run_crash () : run_soak ();
}
