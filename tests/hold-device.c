/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: open fd= targets through device/ alone.
 *
 * The shell tests need to hold a file with given modes (to see what
 * qemu or a second holder may then do), and to move bytes through one
 * I/O mode or the other, without a daemon and without the option
 * parser.  This program builds each struct export_config by hand:
 *
 *   hold-device [--until-signal] [--no-wait] SPEC...
 *       open every SPEC, print one line of probed info per device,
 *       then "ready", and hold them until stdin reaches end of file
 *       (or, with --until-signal, until SIGTERM or SIGINT);
 *       --no-wait closes them at once after "ready".
 *   hold-device probe SPEC            device_probe, print the info line
 *   hold-device read SPEC OFFSET COUNT   bytes to stdout
 *   hold-device write SPEC OFFSET        stdin to the device, flushed
 *   hold-device zero SPEC OFFSET COUNT [trim]
 *   hold-device trim SPEC OFFSET COUNT
 *   hold-device extents SPEC OFFSET COUNT   "OFFSET LENGTH data|hole"
 *   hold-device locks PATH
 *       the QEMU lock bytes (100-103, 200-203) that some process
 *       locks, on one line, e.g. "100 101 203" (tests wait on it)
 *
 * SPEC is MODE,MODE,...:PATH (":PATH" for the defaults, which are the
 * product's: rw, sync, denyrw, I/O mode probed, blksz probed,
 * bufsz=512:16384).  MODEs: ro rw sync async denyno denyrd denywr
 * denyrw seek xtype blksz=N bufsz=MIN:MAX name=NAME.
 *
 * Exit status: 0, or 1 after device/ logged why (2 for bad usage).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "log.h"

static void __attribute__ ((noreturn))
usage (const char *why)
{
  fprintf (stderr, "hold-device: %s\n"
           "usage: hold-device [--until-signal] [--no-wait] MODES:PATH...\n"
           "       hold-device probe|read|write|zero|trim|extents "
           "MODES:PATH [ARGS]\n"
           "       hold-device locks PATH\n", why);
  exit (2);
}

static uint64_t
parse_u64 (const char *s, const char **end)
{
  char *e;
  unsigned long long v;

  errno = 0;
  v = strtoull (s, &e, 0);
  if (errno || e == s)
    usage ("bad number");
  *end = e;
  return v;
}

static uint64_t
parse_num (const char *s)
{
  const char *end;
  uint64_t v = parse_u64 (s, &end);

  if (*end)
    usage ("bad number");
  return v;
}

static bool
token (const char **p, const char *word)
{
  size_t n = strlen (word);

  if (strncmp (*p, word, n) != 0)
    return false;
  if ((*p)[n] != ',' && (*p)[n] != ':' && word[n - 1] != '=')
    return false;
  *p += n;
  return true;
}

/* Parse MODES:PATH into ec (strings point into spec, or are static). */
static void
parse_spec (const char *spec, unsigned index, struct export_config *ec)
{
  static char names[64][16];
  const char *p = spec;

  memset (ec, 0, sizeof *ec);
  ec->access = ACCESS_RW;
  ec->sync = SYNC_SYNC;
  ec->deny = DENY_RW;
  ec->io = IO_PROBE;
  ec->blksz_min = 512;
  ec->blksz_max = 16384;
  ec->heads = ec->tracks = 1;
  if (index >= 64)
    usage ("too many devices");
  snprintf (names[index], sizeof names[index], "lo%u", index);
  ec->name = names[index];

  while (*p && *p != ':') {
    if (token (&p, "ro")) ec->access = ACCESS_RO;
    else if (token (&p, "rw")) ec->access = ACCESS_RW;
    else if (token (&p, "sync")) ec->sync = SYNC_SYNC;
    else if (token (&p, "async")) ec->sync = SYNC_ASYNC;
    else if (token (&p, "denyno")) ec->deny = DENY_NO;
    else if (token (&p, "denyrd")) ec->deny = DENY_RD;
    else if (token (&p, "denywr")) ec->deny = DENY_WR;
    else if (token (&p, "denyrw")) ec->deny = DENY_RW;
    else if (token (&p, "seek")) ec->io = IO_SEEK;
    else if (token (&p, "xtype")) ec->io = IO_XTYPE;
    else if (token (&p, "blksz=")) ec->blksz = parse_u64 (p, &p);
    else if (token (&p, "bufsz=")) {
      ec->blksz_min = parse_u64 (p, &p);
      if (*p++ != ':')
        usage ("bufsz=MIN:MAX");
      ec->blksz_max = parse_u64 (p, &p);
    }
    else if (token (&p, "name=")) {
      size_t n = strcspn (p, ",:");

      if (n >= sizeof names[index])
        usage ("name too long");
      memcpy (names[index], p, n);
      names[index][n] = '\0';
      p += n;
    }
    else
      usage ("unknown mode in SPEC");
    if (*p == ',')
      p++;
  }
  if (*p != ':' || p[1] == '\0')
    usage ("SPEC must be MODES:PATH");
  ec->path = (char *) p + 1;
}

static void
print_info (const char *name, const struct device_info *info, bool ro)
{
  printf ("%s size=%" PRIu64 " host_size=%" PRIu64 " blksz=%" PRIu32
          " probed_blksz=%" PRIu32 " io=%s block=%d readonly=%d\n",
          name, info->size, info->host_size, info->blksz,
          info->probed_blksz, info->positional ? "xtype" : "seek",
          info->is_block_device, ro);
}

static volatile sig_atomic_t quit;

static void
on_signal (int sig)
{
  (void) sig;
  quit = 1;
}

/* Until stdin reaches EOF, or a signal with until_signal. */
static void
hold (bool until_signal)
{
  struct sigaction sa = { .sa_handler = on_signal };
  sigset_t block, unblocked;
  struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
  char buf[256];

  sigemptyset (&block);
  sigaddset (&block, SIGTERM);
  sigaddset (&block, SIGINT);
  sigprocmask (SIG_BLOCK, &block, &unblocked);
  sigdelset (&unblocked, SIGTERM);
  sigdelset (&unblocked, SIGINT);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);

  while (!quit) {
    int r = ppoll (until_signal ? NULL : &pfd, until_signal ? 0 : 1,
                   NULL, &unblocked);

    if (r == -1 && errno != EINTR) {
      perror ("hold-device: ppoll");
      return;
    }
    if (r > 0) {
      ssize_t n = read (STDIN_FILENO, buf, sizeof buf);

      if (n <= 0)
        return;
    }
  }
}

static int
cmd_hold (int argc, char **argv)
{
  bool until_signal = false, no_wait = false;
  struct device **devs;
  int i, n, status = 0;

  while (argc > 0 && argv[0][0] == '-') {
    if (strcmp (argv[0], "--until-signal") == 0)
      until_signal = true;
    else if (strcmp (argv[0], "--no-wait") == 0)
      no_wait = true;
    else
      usage ("unknown option");
    argc--, argv++;
  }
  if (argc == 0)
    usage ("no device");
  devs = calloc (argc, sizeof *devs);
  if (devs == NULL) {
    perror ("hold-device: calloc");
    return 1;
  }
  for (n = 0; n < argc; ++n) {
    struct export_config ec;

    parse_spec (argv[n], n, &ec);
    devs[n] = device_open (&ec);
    if (devs[n] == NULL) {
      status = 1;
      goto out;
    }
    print_info (device_name (devs[n]), device_get_info (devs[n]),
                device_is_readonly (devs[n]));
  }
  printf ("ready\n");
  fflush (stdout);
  if (!no_wait)
    hold (until_signal);

 out:
  for (i = 0; i < n; ++i)
    device_close (devs[i]);
  free (devs);
  return status;
}

static struct device *
open_one (const char *spec)
{
  struct export_config ec;

  parse_spec (spec, 0, &ec);
  return device_open (&ec);
}

static int
cmd_probe (int argc, char **argv)
{
  struct export_config ec;
  struct device_info info;

  if (argc != 1)
    usage ("probe SPEC");
  parse_spec (argv[0], 0, &ec);
  if (device_probe (&ec, &info) == -1)
    return 1;
  print_info (ec.name, &info, ec.access == ACCESS_RO);
  return 0;
}

static int
cmd_read (int argc, char **argv)
{
  struct device *dev;
  uint64_t offset, count;
  char *buf;
  int status = 0;

  if (argc != 3)
    usage ("read SPEC OFFSET COUNT");
  offset = parse_num (argv[1]);
  count = parse_num (argv[2]);
  buf = malloc (count ? count : 1);
  if (buf == NULL) {
    perror ("hold-device: malloc");
    return 1;
  }
  dev = open_one (argv[0]);
  if (dev == NULL ||
      device_pread (dev, buf, count, offset) == -1 ||
      fwrite (buf, 1, count, stdout) != count ||
      fflush (stdout) != 0)
    status = 1;
  device_close (dev);
  free (buf);
  return status;
}

static int
cmd_write (int argc, char **argv)
{
  struct device *dev;
  uint64_t offset;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int status = 0;

  if (argc != 2)
    usage ("write SPEC OFFSET");
  offset = parse_num (argv[1]);
  for (;;) {
    size_t n;

    if (len == cap) {
      char *nb = realloc (buf, cap = cap ? cap * 2 : 65536);

      if (nb == NULL) {
        perror ("hold-device: realloc");
        free (buf);
        return 1;
      }
      buf = nb;
    }
    n = fread (buf + len, 1, cap - len, stdin);
    if (n == 0)
      break;
    len += n;
  }
  dev = open_one (argv[0]);
  if (dev == NULL ||
      device_pwrite (dev, buf, len, offset) == -1 ||
      device_flush (dev) == -1)
    status = 1;
  device_close (dev);
  free (buf);
  return status;
}

static int
cmd_zero_trim (int argc, char **argv, bool zero)
{
  struct device *dev;
  uint64_t offset, count;
  bool may_trim = false;
  int status = 0;

  if (argc == 4 && zero && strcmp (argv[3], "trim") == 0)
    may_trim = true;
  else if (argc != 3)
    usage ("zero|trim SPEC OFFSET COUNT [trim]");
  offset = parse_num (argv[1]);
  count = parse_num (argv[2]);
  dev = open_one (argv[0]);
  if (dev == NULL ||
      (zero ? device_zero (dev, offset, count, may_trim)
       : device_trim (dev, offset, count)) == -1 ||
      device_flush (dev) == -1)
    status = 1;
  device_close (dev);
  return status;
}

static int
print_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  (void) opaque;
  printf ("%" PRIu64 " %" PRIu64 " %s\n", offset, length,
          hole ? "hole" : "data");
  return 0;
}

static int
cmd_extents (int argc, char **argv)
{
  struct device *dev;
  int status = 0;

  if (argc != 3)
    usage ("extents SPEC OFFSET COUNT");
  dev = open_one (argv[0]);
  if (dev == NULL ||
      device_extents (dev, parse_num (argv[1]), parse_num (argv[2]),
                      print_extent, NULL) == -1)
    status = 1;
  device_close (dev);
  return status;
}

static int
cmd_locks (int argc, char **argv)
{
  static const int bytes[] = { 100, 101, 102, 103, 200, 201, 202, 203 };
  const char *sep = "";
  size_t i;
  int fd;

  if (argc != 1)
    usage ("locks PATH");
  fd = open (argv[0], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd == -1) {
    perror (argv[0]);
    return 1;
  }
  for (i = 0; i < sizeof bytes / sizeof bytes[0]; ++i) {
    struct flock fl = {
      .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = bytes[i],
      .l_len = 1,
    };

    if (fcntl (fd, F_OFD_GETLK, &fl) == -1) {
      perror ("hold-device: fcntl F_OFD_GETLK");
      close (fd);
      return 1;
    }
    if (fl.l_type != F_UNLCK) {
      printf ("%s%d", sep, bytes[i]);
      sep = " ";
    }
  }
  printf ("\n");
  close (fd);
  return 0;
}

int
main (int argc, char **argv)
{
  log_set_program ("hold-device");
  if (argc < 2)
    usage ("no arguments");
  if (strcmp (argv[1], "probe") == 0)
    return cmd_probe (argc - 2, argv + 2);
  if (strcmp (argv[1], "read") == 0)
    return cmd_read (argc - 2, argv + 2);
  if (strcmp (argv[1], "write") == 0)
    return cmd_write (argc - 2, argv + 2);
  if (strcmp (argv[1], "zero") == 0)
    return cmd_zero_trim (argc - 2, argv + 2, true);
  if (strcmp (argv[1], "trim") == 0)
    return cmd_zero_trim (argc - 2, argv + 2, false);
  if (strcmp (argv[1], "extents") == 0)
    return cmd_extents (argc - 2, argv + 2);
  if (strcmp (argv[1], "locks") == 0)
    return cmd_locks (argc - 2, argv + 2);
  return cmd_hold (argc - 1, argv + 1);
}
