/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: the deny-mode lock table, exhaustively.
 *
 * SPEC.md §5 is written out below as data.  For every access and deny
 * combination the bytes locked must be exactly those of the table
 * (seen from a third open file description), and for every ordered
 * pair of combinations the second open must fail exactly when the
 * table says, with EBUSY and a message naming the permission, leaving
 * no lock of its own behind.  OFD locks of different open file
 * descriptions conflict even within one process, so no child is
 * needed; test-deny-*.sh check the same against other processes and
 * qemu.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "log.h"

/* One row of the table: bytes as a bit mask, bit n = byte 100+n for
 * n < 4 and byte 200+(n-4) for n >= 4.
 */
#define B100 (1u << 0)
#define B101 (1u << 1)
#define B103 (1u << 3)
#define B200 (1u << 4)
#define B201 (1u << 5)
#define B203 (1u << 7)
static const int byte_of[8] = { 100, 101, 102, 103, 200, 201, 202, 203 };

struct row {
  const char *mode;
  unsigned locks;               /* "holds" and "does not share" */
  unsigned refuses;             /* "refuses if another holder has" */
};

static const struct row access_rows[] = {
  [ACCESS_RO] = { "ro", B100, B200 },
  [ACCESS_RW] = { "rw", B100 | B101 | B203, B200 | B201 },
};
static const struct row deny_rows[] = {
  [DENY_NO] = { "denyno", 0, 0 },
  [DENY_RD] = { "denyrd", B200, B100 },
  [DENY_WR] = { "denywr", B201 | B203, B101 | B103 },
  [DENY_RW] = { "denyrw", B200 | B201 | B203, B100 | B101 | B103 },
};

static char path[4096];
static int probe_fd;            /* the third open file description */
static char logbuf[8192];

static void
capture (enum log_level level, const char *msg)
{
  (void) level;
  snprintf (logbuf, sizeof logbuf, "%s", msg);
}

static struct export_config
config_for (enum access_mode a, enum deny_mode d)
{
  struct export_config ec = {
    .name = "lo7",
    .path = path,
    .access = a,
    .sync = SYNC_ASYNC,
    .deny = d,
    .io = IO_PROBE,
    .blksz_min = 512,
    .blksz_max = 16384,
  };
  return ec;
}

/* The lock bytes held by anyone but probe_fd, as a mask. */
static unsigned
locked_bytes (void)
{
  unsigned mask = 0, n;

  for (n = 0; n < 8; ++n) {
    struct flock fl = {
      .l_type = F_WRLCK, .l_whence = SEEK_SET,
      .l_start = byte_of[n], .l_len = 1,
    };

    assert (fcntl (probe_fd, F_OFD_GETLK, &fl) == 0);
    if (fl.l_type != F_UNLCK)
      mask |= 1u << n;
  }
  /* Nothing outside QEMU's bytes (99, 104..199, 204, 300). */
  {
    struct flock fl = {
      .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100,
    };

    assert (fcntl (probe_fd, F_OFD_GETLK, &fl) == 0);
    assert (fl.l_type == F_UNLCK);
    fl = (struct flock) { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                          .l_start = 104, .l_len = 96 };
    assert (fcntl (probe_fd, F_OFD_GETLK, &fl) == 0);
    assert (fl.l_type == F_UNLCK);
    fl = (struct flock) { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                          .l_start = 204, .l_len = 0 };
    assert (fcntl (probe_fd, F_OFD_GETLK, &fl) == 0);
    assert (fl.l_type == F_UNLCK);
  }
  return mask;
}

static void
test_table (void)
{
  int a1, d1, a2, d2;

  for (a1 = ACCESS_RW; a1 <= ACCESS_RO; ++a1)
    for (d1 = DENY_NO; d1 <= DENY_RW; ++d1) {
      struct export_config e1 = config_for (a1, d1);
      unsigned locks1 = access_rows[a1].locks | deny_rows[d1].locks;
      struct device *first = device_open (&e1);

      assert (first);
      if (locked_bytes () != locks1) {
        fprintf (stderr, "%s,%s locks 0x%x, expected 0x%x\n",
                 access_rows[a1].mode, deny_rows[d1].mode,
                 locked_bytes (), locks1);
        abort ();
      }

      for (a2 = ACCESS_RW; a2 <= ACCESS_RO; ++a2)
        for (d2 = DENY_NO; d2 <= DENY_RW; ++d2) {
          struct export_config e2 = config_for (a2, d2);
          unsigned refuses2 = access_rows[a2].refuses | deny_rows[d2].refuses;
          bool conflict = (refuses2 & locks1) != 0;
          struct device *second;

          logbuf[0] = '\0';
          errno = 0;
          second = device_open (&e2);
          fprintf (stderr, "%s,%s then %s,%s: %s\n",
                   access_rows[a1].mode, deny_rows[d1].mode,
                   access_rows[a2].mode, deny_rows[d2].mode,
                   second ? "opened" : logbuf);
          assert ((second == NULL) == conflict);
          if (second == NULL) {
            assert (errno == EBUSY);
            assert (strstr (logbuf, path) != NULL);
            assert (strstr (logbuf, "lo7: ") == logbuf);
            assert (strstr (logbuf, "permission") != NULL);
            /* It left nothing behind. */
            assert (locked_bytes () == locks1);
          }
          else {
            unsigned locks2 = access_rows[a2].locks | deny_rows[d2].locks;

            assert (locked_bytes () == (locks1 | locks2));
            device_close (second);
            assert (locked_bytes () == locks1);
          }
        }
      device_close (first);
      assert (locked_bytes () == 0);
    }
}

/* The message names the permission in QEMU's words. */
static void
expect_message (enum access_mode a1, enum deny_mode d1,
                enum access_mode a2, enum deny_mode d2, const char *needle)
{
  struct export_config e1 = config_for (a1, d1), e2 = config_for (a2, d2);
  struct device *first = device_open (&e1);

  assert (first);
  logbuf[0] = '\0';
  assert (device_open (&e2) == NULL);
  if (strstr (logbuf, needle) == NULL) {
    fprintf (stderr, "expected: %s\ngot: %s\n", needle, logbuf);
    abort ();
  }
  device_close (first);
}

static void
test_messages (void)
{
  char needle[8192];

  snprintf (needle, sizeof needle, "lo7: %s: cannot open: another process "
            "holds the \"write\" permission", path);
  expect_message (ACCESS_RW, DENY_NO, ACCESS_RO, DENY_WR, needle);
  expect_message (ACCESS_RO, DENY_NO, ACCESS_RO, DENY_RD,
                  "holds the \"consistent read\" permission");
  expect_message (ACCESS_RO, DENY_WR, ACCESS_RW, DENY_NO,
                  "does not share the \"write\" permission");
  expect_message (ACCESS_RO, DENY_RD, ACCESS_RO, DENY_NO,
                  "does not share the \"consistent read\" permission");
}

/* Locks that no nbd-loopback mode takes, as other QEMU users do. */
static void
test_foreign_locks (void)
{
  struct export_config ec = config_for (ACCESS_RO, DENY_WR);
  int other = open (path, O_RDWR | O_CLOEXEC);
  struct flock fl = {
    .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 103, .l_len = 1,
  };
  struct device *dev;

  assert (other >= 0);
  /* Someone holding "resize" (qemu-img resize). */
  assert (fcntl (other, F_OFD_SETLK, &fl) == 0);
  logbuf[0] = '\0';
  errno = 0;
  assert (device_open (&ec) == NULL && errno == EBUSY);
  assert (strstr (logbuf, "holds the \"resize\" permission"));
  ec.deny = DENY_NO;
  dev = device_open (&ec);
  assert (dev);
  device_close (dev);

  /* A write lock on a byte of the protocol. */
  fl.l_type = F_WRLCK;
  fl.l_start = 100;
  assert (fcntl (other, F_OFD_SETLK, &fl) == 0);
  logbuf[0] = '\0';
  errno = 0;
  assert (device_open (&ec) == NULL && errno == EBUSY);
  assert (strstr (logbuf, "write lock on byte 100"));
  close (other);
  dev = device_open (&ec);
  assert (dev);
  device_close (dev);
}

int
main (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  int fd;

  log_set_sink (capture);
  snprintf (path, sizeof path, "%s/locks-%d.img",
            tmpdir ? tmpdir : "/tmp", (int) getpid ());
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert (fd >= 0);
  assert (ftruncate (fd, 1024 * 1024) == 0);
  close (fd);
  probe_fd = open (path, O_RDONLY | O_CLOEXEC);
  assert (probe_fd >= 0);

  test_table ();
  test_messages ();
  test_foreign_locks ();

  close (probe_fd);
  unlink (path);
  return 0;
}
