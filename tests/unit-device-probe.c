/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: what device_probe and device_open find out.
 *
 * Sizes, probed and forced block sizes, bufsz= bounds, the rounding
 * warning, the I/O mode, and the refusal (with its message) of every
 * kind of target that cannot be exported: missing, a directory, a
 * character device, a fifo, an empty or too small file.  Runs on a
 * file in $TMPDIR and, where it exists, in /dev/shm (tmpfs).
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "log.h"

/* Everything logged, for checking messages. */
static char logbuf[16384];

static void
capture (enum log_level level, const char *msg)
{
  size_t len = strlen (logbuf);

  snprintf (logbuf + len, sizeof logbuf - len, "%s%s\n",
            level == LOG_LEVEL_WARNING ? "warning: " : "", msg);
  fprintf (stderr, "log: %s\n", msg);
}

static void
expect_log (const char *needle)
{
  if (strstr (logbuf, needle) == NULL) {
    fprintf (stderr, "expected in the log: %s\nlog was:\n%s", needle, logbuf);
    abort ();
  }
}

static struct export_config
config_for (const char *path)
{
  struct export_config ec = {
    .name = "lo0",
    .path = (char *) path,
    .access = ACCESS_RW,
    .sync = SYNC_ASYNC,
    .deny = DENY_NO,
    .io = IO_PROBE,
    .blksz_min = 512,
    .blksz_max = 16384,
    .heads = 1,
    .tracks = 1,
  };
  return ec;
}

static void
make_file (const char *path, off_t size)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  assert (fd >= 0);
  assert (ftruncate (fd, size) == 0);
  close (fd);
}

/* device_probe and device_open both fail with err and log needle. */
static void
expect_refused (const struct export_config *ec, int err, const char *needle)
{
  struct device_info info;
  struct device *dev;

  logbuf[0] = '\0';
  errno = 0;
  assert (device_probe (ec, &info) == -1);
  assert (errno == err);
  expect_log (needle);
  expect_log (ec->path);

  logbuf[0] = '\0';
  errno = 0;
  dev = device_open (ec);
  assert (dev == NULL);
  assert (errno == err);
  expect_log (needle);
  expect_log (ec->path);
}

static void
test_regular_file (const char *dir)
{
  char path[4096], needle[8192];
  struct export_config ec;
  struct device_info info;
  struct device *dev;
  struct stat st;
  uint32_t expected;

  fprintf (stderr, "probing a regular file in %s\n", dir);
  snprintf (path, sizeof path, "%s/probe-%d.img", dir, (int) getpid ());
  make_file (path, 1024 * 1024);
  assert (stat (path, &st) == 0);
  /* A file has no sectors: 512 whatever st_blksize says, which is
   * only the preferred size.
   */
  expected = 512;

  /* Probed block size, size, positional I/O. */
  ec = config_for (path);
  logbuf[0] = '\0';
  assert (device_probe (&ec, &info) == 0);
  assert (info.host_size == 1024 * 1024);
  assert (info.size == 1024 * 1024);
  assert (info.probed_blksz == expected);
  assert (info.blksz == expected);
  assert (info.preferred_blksz == (st.st_blksize > 512 &&
                                   st.st_blksize <= 1024 * 1024 &&
                                   (st.st_blksize & (st.st_blksize - 1)) == 0
                                   ? (uint32_t) st.st_blksize : 512));
  assert (!info.is_block_device);
  assert (info.positional);
  assert (strstr (logbuf, "warning") == NULL);

  dev = device_open (&ec);
  assert (dev != NULL);
  assert (memcmp (device_get_info (dev), &info, sizeof info) == 0);
  assert (strcmp (device_path (dev), path) == 0);
  assert (strcmp (device_name (dev), "lo0") == 0);
  assert (!device_is_readonly (dev));
  device_close (dev);

  /* Forced I/O modes. */
  ec.io = IO_SEEK;
  assert (device_probe (&ec, &info) == 0);
  assert (!info.positional);
  dev = device_open (&ec);
  assert (dev != NULL);
  assert (!device_get_info (dev)->positional);
  device_close (dev);
  ec.io = IO_XTYPE;
  assert (device_probe (&ec, &info) == 0);
  assert (info.positional);
  ec.io = IO_PROBE;

  /* ro */
  ec.access = ACCESS_RO;
  dev = device_open (&ec);
  assert (dev != NULL);
  assert (device_is_readonly (dev));
  device_close (dev);
  ec.access = ACCESS_RW;

  /* blksz= overrides the probed size, which is still reported. */
  ec.blksz = expected == 1024 ? 2048 : 1024;
  assert (device_probe (&ec, &info) == 0);
  assert (info.blksz == ec.blksz);
  assert (info.probed_blksz == expected);
  assert (info.preferred_blksz >= info.blksz);
  assert (info.size == 1024 * 1024);

  /* blksz= outside bufsz= */
  ec.blksz = 4096;
  ec.blksz_max = 2048;
  expect_refused (&ec, EINVAL, "is outside bufsz=512:2048");
  expect_log ("set blksz=");
  expect_log ("from blksz=");

  /* The probed size outside bufsz= says so. */
  ec.blksz = 0;
  ec.blksz_min = expected * 2;
  ec.blksz_max = 16384;
  snprintf (needle, sizeof needle, "block size %u (probed from the host) "
            "is outside bufsz=%u:16384", expected, expected * 2);
  expect_refused (&ec, EINVAL, needle);
  ec.blksz_min = 512;

  /* Rounding down, with a warning naming the path and both sizes. */
  make_file (path, 1024 * 1024 + 700);
  ec.blksz = 512;
  logbuf[0] = '\0';
  assert (device_probe (&ec, &info) == 0);
  assert (info.host_size == 1024 * 1024 + 700);
  assert (info.size == 1024 * 1024 + 512);
  snprintf (needle, sizeof needle, "warning: lo0: %s: size 1049276 is not "
            "a multiple of blksz=512: exporting 1049088 bytes", path);
  expect_log (needle);
  logbuf[0] = '\0';
  dev = device_open (&ec);
  assert (dev != NULL);
  assert (device_get_info (dev)->size == 1024 * 1024 + 512);
  expect_log (needle);
  device_close (dev);

  /* Smaller than one block. */
  make_file (path, 100);
  snprintf (needle, sizeof needle, "pregrow it, e.g. truncate -s 1G %s",
            path);
  expect_refused (&ec, EINVAL, needle);
  expect_log ("smaller than one block");

  /* Empty. */
  make_file (path, 0);
  ec.blksz = 0;
  expect_refused (&ec, EINVAL, needle);
  expect_log ("is empty");

  unlink (path);
}

static void
test_not_exportable (const char *dir)
{
  char path[4096];
  struct export_config ec;

  snprintf (path, sizeof path, "%s/missing-%d.img", dir, (int) getpid ());
  ec = config_for (path);
  expect_refused (&ec, ENOENT, "cannot open: No such file or directory");

  ec = config_for (dir);
  expect_refused (&ec, EISDIR, "is a directory, expected a regular file "
                  "or block device");

  ec = config_for ("/dev/null");
  expect_refused (&ec, EINVAL, "is a character device, expected a regular "
                  "file or block device");

  /* A fifo must be refused without blocking in open. */
  snprintf (path, sizeof path, "%s/fifo-%d", dir, (int) getpid ());
  assert (mkfifo (path, 0600) == 0);
  ec = config_for (path);
  expect_refused (&ec, EINVAL, "is a fifo");
  unlink (path);
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  struct stat st;

  log_set_sink (capture);
  test_regular_file (tmpdir ? tmpdir : "/tmp");
  test_not_exportable (tmpdir ? tmpdir : "/tmp");
  if (stat ("/dev/shm", &st) == 0 && S_ISDIR (st.st_mode) &&
      access ("/dev/shm", W_OK) == 0)
    test_regular_file ("/dev/shm");
  else
    fprintf (stderr, "no writable /dev/shm: tmpfs part skipped\n");
  return 0;
}
