/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: device_revalidate.
 *
 * Changes made by another process are reported once each: a write
 * (mtime), a truncate (size), the path replaced by another file
 * (inode) or removed.  Our own writes, zeroes and trims are not, even
 * though they change the mtime too.  The "other process" is a child
 * that writes through its own file descriptor.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "log.h"

#define SIZE (1024 * 1024)

static char path[4096];

/* Set the file's mtime, so that every change below lands on a
 * timestamp different from the recorded one whatever the clock's
 * granularity.
 */
static void
set_mtime (time_t t)
{
  struct timespec ts[2] = { { t, 0 }, { t, 0 } };

  assert (utimensat (AT_FDCWD, path, ts, 0) == 0);
}

/* Run fn in a child process, as another program would. */
static void
in_child (void (*fn) (void))
{
  pid_t pid = fork ();
  int status;

  assert (pid >= 0);
  if (pid == 0) {
    fn ();
    _exit (0);
  }
  assert (waitpid (pid, &status, 0) == pid);
  assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

static void
other_write (void)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);

  if (fd == -1 || pwrite (fd, "other", 5, 4096) != 5)
    _exit (1);
  close (fd);
  set_mtime (2000000000);
}

static void
other_truncate (void)
{
  if (truncate (path, SIZE * 2) == -1)
    _exit (1);
}

static void
other_replace (void)
{
  char tmp[4200];
  int fd;

  snprintf (tmp, sizeof tmp, "%s.new", path);
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1 || ftruncate (fd, SIZE) == -1 || rename (tmp, path) == -1)
    _exit (1);
  close (fd);
}

static void
other_remove (void)
{
  if (unlink (path) == -1)
    _exit (1);
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  struct export_config ec = {
    .name = "lo0",
    .path = path,
    .access = ACCESS_RW,
    .sync = SYNC_ASYNC,
    .deny = DENY_NO,
    .io = IO_PROBE,
    .blksz_min = 512,
    .blksz_max = 16384,
  };
  struct device *dev;
  char buf[4096];
  int fd;

  snprintf (path, sizeof path, "%s/revalidate-%d.img",
            tmpdir ? tmpdir : "/tmp", (int) getpid ());
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert (fd >= 0);
  assert (ftruncate (fd, SIZE) == 0);
  close (fd);
  set_mtime (1000000000);

  dev = device_open (&ec);
  assert (dev);
  assert (device_revalidate (dev) == 0);

  /* Our own changes move the mtime (from 2001 to now) but are ours. */
  memset (buf, 'o', sizeof buf);
  assert (device_pwrite (dev, buf, sizeof buf, 0) == 0);
  assert (device_flush (dev) == 0);
  assert (device_revalidate (dev) == 0);
  set_mtime (1000000000);
  assert (device_revalidate (dev) == 1);  /* that was not us */
  assert (device_zero (dev, 8192, 4096, false) == 0);
  assert (device_trim (dev, 65536, 65536) == 0);
  assert (device_revalidate (dev) == 0);
  assert (device_revalidate (dev) == 0);

  /* Another process writes. */
  in_child (other_write);
  assert (device_revalidate (dev) == 1);
  assert (device_revalidate (dev) == 0);

  /* Our write, then another process's: the size change is still seen. */
  assert (device_pwrite (dev, buf, sizeof buf, 0) == 0);
  in_child (other_truncate);
  assert (device_revalidate (dev) == 1);
  assert (device_revalidate (dev) == 0);

  /* Replaced by another file, then removed. */
  in_child (other_replace);
  assert (device_revalidate (dev) == 1);
  assert (device_revalidate (dev) == 0);
  in_child (other_remove);
  assert (device_revalidate (dev) == 1);
  assert (device_revalidate (dev) == 0);

  device_close (dev);
  return 0;
}
