/* SPDX-License-Identifier: BSD-3-Clause */
/* client-frontend-io: a scripted libnbd client for the front-end tests.
 *
 *   client-frontend-io URI COMMAND...
 *
 * Connects once, then runs the commands in order on that connection,
 * so a test can look at the host file (or kill the server) while the
 * connection is still open, which qemu-io cannot do: it flushes when
 * it exits.  Client-side checks (strict mode) are off, so the server
 * alone judges alignment, bounds and read-only exports.
 *
 *   write OFFSET LENGTH BYTE      NBD_CMD_WRITE of LENGTH bytes of BYTE
 *   write-fua OFFSET LENGTH BYTE  the same with NBD_CMD_FLAG_FUA
 *   zero OFFSET LENGTH            NBD_CMD_WRITE_ZEROES
 *   trim OFFSET LENGTH            NBD_CMD_TRIM
 *   flush                         NBD_CMD_FLUSH
 *   read OFFSET LENGTH BYTE       NBD_CMD_READ; every byte must be BYTE
 *   expect ERRNO                  the next command must fail with ERRNO
 *                                 (EPERM, EINVAL, ENOSPC, EIO)
 *   file-is PATH OFFSET LENGTH BYTE    the host file holds BYTE there
 *   file-isnt PATH OFFSET LENGTH BYTE  ... and does not (some byte differs)
 *   shell CMD                     run CMD with /bin/sh; it must succeed
 *   wait-gone PID                 wait up to 60 s for process PID to exit
 *
 * Numbers take C syntax (0x..) and a k or m suffix.  Exits 0 when every
 * command did what it should, 1 otherwise, after printing why.  If the
 * server went away (a test killed it), closing the connection is not an
 * error.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

static const char *progname = "client-frontend-io";

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "%s: ", progname);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\n");
  exit (1);
}

static uint64_t
number (const char *s)
{
  char *end;
  uint64_t n;

  errno = 0;
  n = strtoull (s, &end, 0);
  if (errno || end == s)
    die ("not a number: '%s'", s);
  if (*end == 'k' || *end == 'K')
    n <<= 10, end++;
  else if (*end == 'm' || *end == 'M')
    n <<= 20, end++;
  if (*end)
    die ("not a number: '%s'", s);
  return n;
}

static int
errno_named (const char *name)
{
  static const struct { const char *name; int value; } table[] = {
    { "EPERM", EPERM }, { "EIO", EIO }, { "ENOMEM", ENOMEM },
    { "EINVAL", EINVAL }, { "ENOSPC", ENOSPC }, { "EOVERFLOW", EOVERFLOW },
    { "ENOTSUP", ENOTSUP }, { "ESHUTDOWN", ESHUTDOWN },
  };

  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp (table[i].name, name) == 0)
      return table[i].value;
  die ("unknown errno name '%s'", name);
}

/* How many arguments each command takes (for the log). */
static int
arity (const char *cmd)
{
  static const struct { const char *name; int n; } table[] = {
    { "write", 3 }, { "write-fua", 3 }, { "read", 3 }, { "zero", 2 },
    { "trim", 2 }, { "flush", 0 }, { "expect", 1 }, { "file-is", 4 },
    { "file-isnt", 4 }, { "shell", 1 }, { "wait-gone", 1 },
  };

  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp (table[i].name, cmd) == 0)
      return table[i].n;
  return 0;
}

/* The arguments of one command, checked for count. */
static char **
args (char **argv, int argc, int i, int n, const char *usage)
{
  if (i + n >= argc)
    die ("%s: expected %s", argv[i], usage);
  return &argv[i + 1];
}

static void *
buffer (uint64_t length)
{
  void *buf;

  if (length > 64 * 1024 * 1024)
    die ("length %" PRIu64 " is too large for this client", length);
  buf = malloc (length ? length : 1);
  if (buf == NULL)
    die ("malloc: %m");
  return buf;
}

/* Does the host file hold BYTE at [offset, offset+length)? */
static bool
file_holds (const char *path, uint64_t offset, uint64_t length, int byte)
{
  unsigned char *buf = buffer (length);
  bool ok = true;
  ssize_t r;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    die ("%s: %m", path);
  r = pread (fd, buf, length, offset);
  if (r == -1)
    die ("%s: pread: %m", path);
  if ((uint64_t) r < length)
    ok = false;
  for (ssize_t j = 0; ok && j < r; j++)
    ok = buf[j] == byte;
  close (fd);
  free (buf);
  return ok;
}

static bool
process_gone (long pid)
{
  char path[64], state = 0;
  FILE *fp;

  snprintf (path, sizeof path, "/proc/%ld/stat", pid);
  fp = fopen (path, "r");
  if (fp == NULL)
    return true;
  /* pid (comm) S ...: a zombie has exited, whoever reaps it. */
  if (fscanf (fp, "%*d (%*[^)]) %c", &state) != 1)
    state = 0;
  fclose (fp);
  return state == 'Z';
}

/* Run one NBD command: the return value and errno of libnbd. */
static int
nbd_command (struct nbd_handle *nbd, char **argv, int argc, int *i)
{
  const char *cmd = argv[*i];
  char **a;

  if (strcmp (cmd, "write") == 0 || strcmp (cmd, "write-fua") == 0) {
    a = args (argv, argc, *i, 3, "OFFSET LENGTH BYTE");
    uint64_t off = number (a[0]), len = number (a[1]);
    void *buf = buffer (len);
    int r;

    memset (buf, (int) number (a[2]), len);
    r = nbd_pwrite (nbd, buf, len, off,
                    cmd[5] ? LIBNBD_CMD_FLAG_FUA : 0);
    free (buf);
    *i += 3;
    return r;
  }
  if (strcmp (cmd, "read") == 0) {
    a = args (argv, argc, *i, 3, "OFFSET LENGTH BYTE");
    uint64_t off = number (a[0]), len = number (a[1]);
    int byte = (int) number (a[2]);
    unsigned char *buf = buffer (len);
    int r;

    r = nbd_pread (nbd, buf, len, off, 0);
    for (uint64_t j = 0; r == 0 && j < len; j++)
      if (buf[j] != byte)
        die ("read %s %s: byte at %" PRIu64 " is 0x%02x, expected 0x%02x",
             a[0], a[1], off + j, buf[j], byte);
    free (buf);
    *i += 3;
    return r;
  }
  if (strcmp (cmd, "zero") == 0 || strcmp (cmd, "trim") == 0) {
    a = args (argv, argc, *i, 2, "OFFSET LENGTH");
    uint64_t off = number (a[0]), len = number (a[1]);

    *i += 2;
    return cmd[0] == 'z' ? nbd_zero (nbd, len, off, 0)
      : nbd_trim (nbd, len, off, 0);
  }
  if (strcmp (cmd, "flush") == 0)
    return nbd_flush (nbd, 0);
  die ("unknown command '%s'", cmd);
}

int
main (int argc, char *argv[])
{
  struct nbd_handle *nbd;
  int expect = 0;               /* errno the next command must fail with */

  if (argc < 2 || strcmp (argv[1], "--help") == 0) {
    fprintf (argc < 2 ? stderr : stdout,
             "usage: %s URI COMMAND... (see the top of %s.c)\n",
             progname, progname);
    exit (argc < 2);
  }

  nbd = nbd_create ();
  if (nbd == NULL)
    die ("%s", nbd_get_error ());
  if (nbd_set_strict_mode (nbd, 0) == -1 ||
      nbd_connect_uri (nbd, argv[1]) == -1)
    die ("%s: %s", argv[1], nbd_get_error ());

  for (int i = 2; i < argc; i++) {
    const char *cmd = argv[i];
    char **a;

    fprintf (stderr, "%s:", progname);
    for (int j = i; j < argc && j <= i + arity (cmd); j++)
      fprintf (stderr, " %s", argv[j]);
    fprintf (stderr, "\n");

    if (strcmp (cmd, "expect") == 0) {
      a = args (argv, argc, i, 1, "ERRNO");
      expect = errno_named (a[0]);
      i += 1;
    }
    else if (strcmp (cmd, "file-is") == 0 || strcmp (cmd, "file-isnt") == 0) {
      bool want = cmd[7] == '\0';

      a = args (argv, argc, i, 4, "PATH OFFSET LENGTH BYTE");
      if (file_holds (a[0], number (a[1]), number (a[2]),
                      (int) number (a[3])) != want)
        die ("%s %s %s %s %s: not so", cmd, a[0], a[1], a[2], a[3]);
      i += 4;
    }
    else if (strcmp (cmd, "shell") == 0) {
      int status;

      a = args (argv, argc, i, 1, "CMD");
      fflush (NULL);
      status = system (a[0]);
      if (status != 0)
        die ("shell '%s' failed (status %d)", a[0], status);
      i += 1;
    }
    else if (strcmp (cmd, "wait-gone") == 0) {
      struct timespec tenth = { .tv_nsec = 100000000 };
      long pid;
      int t;

      a = args (argv, argc, i, 1, "PID");
      pid = (long) number (a[0]);
      for (t = 0; t < 600 && !process_gone (pid); t++)
        nanosleep (&tenth, NULL);
      if (t == 600)
        die ("process %ld still runs after 60 s", pid);
      i += 1;
    }
    else {
      int r = nbd_command (nbd, argv, argc, &i);
      int err = nbd_get_errno ();

      if (expect == 0 && r == -1)
        die ("%s: %s", cmd, nbd_get_error ());
      if (expect != 0 && r == 0)
        die ("%s succeeded, expected it to fail with %s",
             cmd, strerror (expect));
      if (expect != 0 && err != expect)
        die ("%s failed with %s (%s), expected %s",
             cmd, strerror (err), nbd_get_error (), strerror (expect));
      if (expect != 0)
        fprintf (stderr, "%s: failed as expected: %s\n",
                 progname, nbd_get_error ());
      expect = 0;
    }
  }
  if (expect != 0)
    die ("'expect' is not followed by a command");

  /* A server killed by the test cannot answer NBD_CMD_DISC. */
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return 0;
}
