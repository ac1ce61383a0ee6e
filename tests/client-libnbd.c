/* SPDX-License-Identifier: BSD-3-Clause */
/* libnbd checks of nbd-loopback's options, commands and flags.
 *
 *   client-libnbd SOCKET MODE
 *
 * Each MODE checks one behaviour against a server the calling script
 * started on the Unix socket SOCKET, with the exports the script
 * documents (lo0 a 16 MiB read-write file with 4 KiB of data at 1 MiB
 * and holes elsewhere, lo1 read-only, ram0 a 64 MiB RAM disk with
 * 4096-byte sectors).  Libnbd's
 * strict mode is turned off where a mode sends what a careful client
 * would not, to see the server's own answer.  Exits 0 on success, 1
 * with a message otherwise.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <libnbd.h>

#define MiB (1024 * 1024)

static const char *sock, *mode;

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "client-libnbd %s: ", mode);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\n");
  exit (EXIT_FAILURE);
}

static void __attribute__ ((noreturn))
die_nbd (const char *what)
{
  die ("%s: %s (errno %d)", what, nbd_get_error (), nbd_get_errno ());
}

/* A handle connected to EXPORT, in transmission, strict mode off. */
static struct nbd_handle *
open_export (const char *export)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL)
    die_nbd ("nbd_create");
  if (nbd_set_export_name (h, export) == -1
      || nbd_add_meta_context (h, "base:allocation") == -1
      || nbd_set_strict_mode (h, 0) == -1
      || nbd_connect_unix (h, sock) == -1)
    die_nbd ("connecting");
  return h;
}

/* A handle stopped in option negotiation. */
static struct nbd_handle *
open_opt_mode (void)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL || nbd_set_opt_mode (h, true) == -1
      || nbd_connect_unix (h, sock) == -1)
    die_nbd ("connecting in option mode");
  return h;
}

static void
close_handle (struct nbd_handle *h)
{
  if (nbd_shutdown (h, 0) == -1)
    die_nbd ("nbd_shutdown");
  nbd_close (h);
}

/* Expect a command to fail with errno err. */
static void
expect_errno (int r, int err, const char *what)
{
  if (r != -1)
    die ("%s succeeded, expected %s", what, strerror (err));
  if (nbd_get_errno () != err)
    die ("%s failed with %s (%s), expected %s", what,
         strerror (nbd_get_errno ()), nbd_get_error (), strerror (err));
}

static void
expect_flag (int v, bool want, const char *what)
{
  if (v == -1)
    die_nbd (what);
  if (!!v != want)
    die ("%s is %d, expected %d", what, v, want);
}

/* ---- negotiation ---- */

struct listed {
  int n;
  bool lo0, lo1, ram0;
};

static int
list_cb (void *opaque, const char *name, const char *desc)
{
  struct listed *l = opaque;

  printf ("listed %s: %s\n", name, desc);
  if (desc == NULL || *desc == '\0')
    die ("export %s has no description", name);
  if (strcmp (name, "lo0") == 0)
    l->lo0 = strstr (desc, "read-write") != NULL;
  if (strcmp (name, "lo1") == 0)
    l->lo1 = strstr (desc, "read-only") != NULL;
  if (strcmp (name, "ram0") == 0)
    l->ram0 = strstr (desc, "RAM disk") != NULL;
  l->n++;
  return 0;
}

static void
opt_list (void)
{
  struct nbd_handle *h = open_opt_mode ();
  struct listed l = { 0 };

  if (nbd_opt_list (h, (nbd_list_callback) { .callback = list_cb,
                                             .user_data = &l }) == -1)
    die_nbd ("nbd_opt_list");
  if (l.n != 3 || !l.lo0 || !l.lo1 || !l.ram0)
    die ("expected lo0 (read-write), lo1 (read-only), ram0 (RAM disk); "
         "got %d exports", l.n);
  if (nbd_opt_abort (h) == -1)
    die_nbd ("nbd_opt_abort");
  nbd_close (h);
}

static void
opt_info (void)
{
  struct nbd_handle *h = open_opt_mode ();
  char *s;

  /* The empty name is the first export, and says so. */
  if (nbd_set_full_info (h, true) == -1 || nbd_set_export_name (h, "") == -1
      || nbd_opt_info (h) == -1)
    die_nbd ("nbd_opt_info of the default export");
  s = nbd_get_canonical_export_name (h);
  if (s == NULL || strcmp (s, "lo0") != 0)
    die ("canonical name of \"\" is %s, expected lo0", s ? s : "(none)");
  free (s);
  s = nbd_get_export_description (h);
  if (s == NULL || strstr (s, "geometry") == NULL)
    die ("description %s does not mention the geometry", s ? s : "(none)");
  free (s);
  if (nbd_get_size (h) != 16 * MiB)
    die ("size %" PRIi64 ", expected 16 MiB", nbd_get_size (h));
  if (nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM) != 512
      || nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED) < 4096
      || nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM) != 32 * MiB)
    die ("block sizes %" PRIi64 "/%" PRIi64 "/%" PRIi64
         ", expected 512/>=4096/32M",
         nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM),
         nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED),
         nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM));

  /* An unknown export is an error, and negotiation goes on. */
  if (nbd_set_export_name (h, "nosuch") == -1)
    die_nbd ("nbd_set_export_name");
  if (nbd_opt_info (h) != -1)
    die ("NBD_OPT_INFO of an unknown export succeeded");
  if (nbd_set_export_name (h, "ram0") == -1 || nbd_opt_info (h) == -1)
    die_nbd ("NBD_OPT_INFO after an error");
  if (nbd_get_size (h) != 64 * MiB
      || nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM) != 4096)
    die ("ram0: size %" PRIi64 " minimum block %" PRIi64
         ", expected 64 MiB and 4096", nbd_get_size (h),
         nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM));

  /* GO of an unknown export fails too, and the connection lives. */
  if (nbd_set_export_name (h, "nosuch") == -1)
    die_nbd ("nbd_set_export_name");
  if (nbd_opt_go (h) != -1)
    die ("NBD_OPT_GO of an unknown export succeeded");
  if (nbd_set_export_name (h, "lo0") == -1 || nbd_opt_go (h) == -1)
    die_nbd ("NBD_OPT_GO of lo0");
  close_handle (h);
}

static int
context_cb (void *opaque, const char *name)
{
  int *n = opaque;

  printf ("meta context %s\n", name);
  if (strcmp (name, "base:allocation") != 0)
    die ("unexpected meta context %s", name);
  (*n)++;
  return 0;
}

static void
opt_meta (void)
{
  struct nbd_handle *h = nbd_create ();
  int n = 0;

  if (h == NULL || nbd_set_opt_mode (h, true) == -1
      || nbd_add_meta_context (h, "base:allocation") == -1
      || nbd_connect_unix (h, sock) == -1)
    die_nbd ("connecting");
  if (nbd_opt_list_meta_context (h, (nbd_context_callback) {
        .callback = context_cb, .user_data = &n }) == -1)
    die_nbd ("nbd_opt_list_meta_context");
  if (n != 1)
    die ("%d meta contexts listed, expected 1", n);
  if (nbd_opt_go (h) == -1)
    die_nbd ("nbd_opt_go");
  expect_flag (nbd_can_meta_context (h, "base:allocation"), true,
               "can_meta_context base:allocation");
  close_handle (h);
}

static void
no_structured (void)
{
  struct nbd_handle *h = nbd_create ();
  char buf[4096];

  if (h == NULL || nbd_set_request_structured_replies (h, false) == -1
      || nbd_add_meta_context (h, "base:allocation") == -1
      || nbd_connect_unix (h, sock) == -1)
    die_nbd ("connecting");
  expect_flag (nbd_get_structured_replies_negotiated (h), false,
               "structured replies");
  expect_flag (nbd_can_df (h), false, "can_df without structured replies");
  expect_flag (nbd_can_meta_context (h, "base:allocation"), false,
               "can_meta_context without structured replies");
  if (nbd_pread (h, buf, sizeof buf, 1 * MiB, 0) == -1)
    die_nbd ("pread with simple replies");
  if (memcmp (buf, "DATA", 4) != 0)
    die ("wrong data at 1 MiB with simple replies");
  if (nbd_pread (h, buf, sizeof buf, 0, 0) == -1)
    die_nbd ("pread of a hole with simple replies");
  for (size_t i = 0; i < sizeof buf; i++)
    if (buf[i])
      die ("a hole read back non-zero with simple replies");
  close_handle (h);
}

static void
export_name (uint32_t hflags)
{
  struct nbd_handle *h = nbd_create ();
  char buf[512];

  /* Without fixed newstyle libnbd can only use NBD_OPT_EXPORT_NAME. */
  if (h == NULL || nbd_set_handshake_flags (h, hflags) == -1
      || nbd_set_export_name (h, "lo0") == -1
      || nbd_connect_unix (h, sock) == -1)
    die_nbd ("connecting with NBD_OPT_EXPORT_NAME");
  if (nbd_get_size (h) != 16 * MiB)
    die ("size %" PRIi64 " through NBD_OPT_EXPORT_NAME", nbd_get_size (h));
  if (nbd_pread (h, buf, sizeof buf, 1 * MiB, 0) == -1
      || memcmp (buf, "DATA", 4) != 0)
    die ("reading through NBD_OPT_EXPORT_NAME");
  close_handle (h);
}

static void
flags_rw (void)
{
  struct nbd_handle *h = open_export ("lo0");

  expect_flag (nbd_is_read_only (h), false, "is_read_only");
  expect_flag (nbd_can_flush (h), true, "can_flush");
  expect_flag (nbd_can_fua (h), true, "can_fua");
  expect_flag (nbd_can_multi_conn (h), true, "can_multi_conn");
  expect_flag (nbd_can_trim (h), true, "can_trim");
  expect_flag (nbd_can_zero (h), true, "can_zero");
  expect_flag (nbd_can_fast_zero (h), true, "can_fast_zero");
  expect_flag (nbd_can_cache (h), true, "can_cache");
  expect_flag (nbd_can_df (h), true, "can_df");
  expect_flag (nbd_is_rotational (h), false, "is_rotational");
  close_handle (h);
}

static void
flags_ro (void)
{
  struct nbd_handle *h = open_export ("lo1");
  char buf[4096] = { 0 };

  expect_flag (nbd_is_read_only (h), true, "is_read_only");
  expect_flag (nbd_can_trim (h), false, "can_trim");
  expect_flag (nbd_can_zero (h), false, "can_zero");
  expect_flag (nbd_can_fast_zero (h), false, "can_fast_zero");
  expect_flag (nbd_can_multi_conn (h), true, "can_multi_conn");
  expect_errno (nbd_pwrite (h, buf, sizeof buf, 0, 0), EPERM,
                "write to a read-only export");
  expect_errno (nbd_trim (h, 4096, 0, 0), EPERM,
                "trim of a read-only export");
  expect_errno (nbd_zero (h, 4096, 0, 0), EPERM,
                "zero of a read-only export");
  if (nbd_pread (h, buf, sizeof buf, 0, 0) == -1)
    die_nbd ("read of a read-only export");
  if (nbd_flush (h, 0) == -1)
    die_nbd ("flush of a read-only export");
  close_handle (h);
}

static void
no_fua (void)
{
  struct nbd_handle *h = open_export ("lo0");
  char buf[4096] = { 0 };

  expect_flag (nbd_can_fua (h), false, "can_fua at commit=none");
  expect_flag (nbd_can_flush (h), true, "can_flush at commit=none");
  expect_errno (nbd_pwrite (h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_FUA),
                EINVAL, "FUA write when FUA is not offered");
  if (nbd_pwrite (h, buf, sizeof buf, 0, 0) == -1 || nbd_flush (h, 0) == -1)
    die_nbd ("write and flush at commit=none");
  close_handle (h);
}

/* ---- commands ---- */

static void
fill (char *buf, size_t len, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (char) (seed * 31 + i * 7 + (i >> 9));
}

static void
read_write (void)
{
  struct nbd_handle *h = open_export ("ram0");
  char *w = malloc (MiB), *r = malloc (MiB);

  /* Aligned, with and without FUA. */
  fill (w, MiB, 1);
  if (nbd_pwrite (h, w, MiB, 0, 0) == -1
      || nbd_pwrite (h, w, 65536, 2 * MiB, LIBNBD_CMD_FLAG_FUA) == -1)
    die_nbd ("aligned writes");
  if (nbd_pread (h, r, MiB, 0, 0) == -1 || memcmp (w, r, MiB) != 0)
    die ("aligned read back differs");
  if (nbd_pread (h, r, 65536, 2 * MiB, 0) == -1 || memcmp (w, r, 65536) != 0)
    die ("FUA write read back differs");
  /* Unaligned: the minimum block is advertised but not enforced. */
  fill (w, 10000, 2);
  if (nbd_pwrite (h, w, 10000, 3 * MiB + 3, 0) == -1)
    die_nbd ("unaligned write");
  if (nbd_pread (h, r, 10006, 3 * MiB, 0) == -1)
    die_nbd ("unaligned read");
  if (r[0] || r[1] || r[2] || memcmp (r + 3, w, 10000) != 0
      || r[10003] || r[10004] || r[10005])
    die ("unaligned write read back differs");
  /* Zero-length requests are harmless. */
  if (nbd_pread (h, r, 0, 0, 0) == -1 || nbd_pwrite (h, w, 0, 0, 0) == -1)
    die_nbd ("zero-length read or write");
  free (w);
  free (r);
  close_handle (h);
}

static bool
all_zero (const char *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (buf[i])
      return false;
  return true;
}

static void
flush_trim_zero_cache (void)
{
  struct nbd_handle *h = open_export ("ram0");
  char *buf = malloc (MiB);

  fill (buf, MiB, 3);
  if (nbd_pwrite (h, buf, MiB, 0, 0) == -1 || nbd_flush (h, 0) == -1)
    die_nbd ("write and flush");
  /* WRITE_ZEROES in its three forms reads back as zeroes. */
  if (nbd_zero (h, 65536, 0, 0) == -1)
    die_nbd ("zero");
  if (nbd_zero (h, 65536, 65536, LIBNBD_CMD_FLAG_NO_HOLE) == -1)
    die_nbd ("zero with NO_HOLE");
  if (nbd_zero (h, 65536, 131072, LIBNBD_CMD_FLAG_FUA) == -1)
    die_nbd ("zero with FUA");
  if (nbd_zero (h, 65536, 196608, LIBNBD_CMD_FLAG_FAST_ZERO) == -1
      && nbd_get_errno () != ENOTSUP)
    die_nbd ("fast zero (may only fail with ENOTSUP)");
  if (nbd_pread (h, buf, 196608, 0, 0) == -1 || !all_zero (buf, 196608))
    die ("zeroed range does not read back as zeroes");
  /* TRIM and CACHE succeed; what follows a trim is unspecified. */
  if (nbd_trim (h, 65536, 512 * 1024, 0) == -1)
    die_nbd ("trim");
  if (nbd_trim (h, 65536, 512 * 1024, LIBNBD_CMD_FLAG_FUA) == -1)
    die_nbd ("trim with FUA");
  if (nbd_cache (h, MiB, 0, 0) == -1)
    die_nbd ("cache");
  /* FUA is accepted on commands that do not write, too. */
  if (nbd_flush (h, LIBNBD_CMD_FLAG_FUA) == -1)
    die_nbd ("flush with FUA");
  free (buf);
  close_handle (h);
}

static void
bounds (void)
{
  struct nbd_handle *h = open_export ("lo0");
  char buf[8192] = { 0 };
  const uint64_t size = 16 * MiB;

  expect_errno (nbd_pread (h, buf, 8192, size - 4096, 0), EINVAL,
                "read across the end");
  expect_errno (nbd_pwrite (h, buf, 8192, size - 4096, 0), ENOSPC,
                "write across the end");
  expect_errno (nbd_zero (h, 8192, size, 0), ENOSPC,
                "zero beyond the end");
  expect_errno (nbd_trim (h, 8192, size - 4096, 0), EINVAL,
                "trim across the end");
  expect_errno (nbd_cache (h, 8192, size, 0), EINVAL,
                "cache beyond the end");
  expect_errno (nbd_pread (h, buf, 512, UINT64_MAX - 100, 0), EINVAL,
                "read at an offset near 2^64");
  /* Requests right up to the end are fine. */
  if (nbd_pread (h, buf, 8192, size - 8192, 0) == -1)
    die_nbd ("read up to the end");
  close_handle (h);
}

static void
bad_flags (void)
{
  struct nbd_handle *h = open_export ("lo0");
  char buf[4096] = { 0 };

  expect_errno (nbd_pread (h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_REQ_ONE),
                EINVAL, "read with REQ_ONE");
  expect_errno (nbd_pwrite (h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_NO_HOLE),
                EINVAL, "write with NO_HOLE");
  expect_errno (nbd_pwrite (h, buf, sizeof buf, 0, LIBNBD_CMD_FLAG_DF),
                EINVAL, "write with DF");
  expect_errno (nbd_trim (h, 4096, 0, LIBNBD_CMD_FLAG_FAST_ZERO),
                EINVAL, "trim with FAST_ZERO");
  /* The connection goes on after errors. */
  if (nbd_pread (h, buf, sizeof buf, 0, 0) == -1)
    die_nbd ("read after bad flags");
  close_handle (h);
}

static void
large (void)
{
  struct nbd_handle *h = open_export ("ram0");
  size_t len = 64 * MiB;
  char *w = malloc (len), *r = malloc (len);

  /* Above the advertised 32 MiB maximum, within the 64 MiB served. */
  fill (w, len, 4);
  if (nbd_pwrite (h, w, len, 0, 0) == -1)
    die_nbd ("64 MiB write");
  if (nbd_pread (h, r, len, 0, 0) == -1)
    die_nbd ("64 MiB read");
  if (memcmp (w, r, len) != 0)
    die ("64 MiB read back differs");
  free (w);
  free (r);
  close_handle (h);
}

/* Many requests in flight on one connection, completing in any order. */
static void
inflight (void)
{
  struct nbd_handle *h = open_export ("ram0");
  enum { N = 64, LEN = 65536 };
  char *w = malloc (N * LEN), *r = malloc (N * LEN);
  int64_t cookies[N];
  int done;

  fill (w, N * LEN, 5);
  for (int i = 0; i < N; i++)
    if ((cookies[i] = nbd_aio_pwrite (h, w + i * LEN, LEN,
                                      (uint64_t) i * LEN,
                                      NBD_NULL_COMPLETION, 0)) == -1)
      die_nbd ("aio_pwrite");
  for (done = 0; done < N; ) {
    if (nbd_poll (h, 10000) == -1)
      die_nbd ("poll");
    done = 0;
    for (int i = 0; i < N; i++)
      if (nbd_aio_command_completed (h, cookies[i]) != 0 || cookies[i] == 0) {
        cookies[i] = 0;
        done++;
      }
  }
  memset (r, 0, N * LEN);
  for (int i = 0; i < N; i++)
    if ((cookies[i] = nbd_aio_pread (h, r + i * LEN, LEN, (uint64_t) i * LEN,
                                     NBD_NULL_COMPLETION, 0)) == -1)
      die_nbd ("aio_pread");
  printf ("%u requests in flight\n", nbd_aio_in_flight (h));
  while (nbd_aio_in_flight (h) > 0)
    if (nbd_poll (h, 10000) == -1)
      die_nbd ("poll");
  for (int i = 0; i < N; i++)
    if (nbd_aio_command_completed (h, cookies[i]) != 1)
      die_nbd ("aio_pread completion");
  if (memcmp (w, r, N * LEN) != 0)
    die ("data read with many requests in flight differs");
  free (w);
  free (r);
  close_handle (h);
}

/* ---- sparse files: block status and OFFSET_HOLE ---- */

struct extents {
  uint32_t e[64];
  size_t n;
};

static int
extent_cb (void *opaque, const char *ctx, uint64_t offset, uint32_t *e,
           size_t n, int *error)
{
  struct extents *x = opaque;

  if (strcmp (ctx, "base:allocation") != 0)
    die ("extents of context %s", ctx);
  for (size_t i = 0; i < n && x->n < 64; i++)
    x->e[x->n++] = e[i];
  return 0;
}

static void
block_status (void)
{
  struct nbd_handle *h = open_export ("lo0");
  struct extents x = { .n = 0 };
  const uint32_t hole = LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO;
  nbd_extent_callback cb = { .callback = extent_cb, .user_data = &x };

  /* The file: hole [0, 1M), data [1M, 1M+4K), hole up to 16M. */
  if (nbd_block_status (h, 16 * MiB, 0, cb, 0) == -1)
    die_nbd ("block_status");
  for (size_t i = 0; i < x.n; i += 2)
    printf ("extent %u flags %u\n", x.e[i], x.e[i + 1]);
  if (x.n != 6 || x.e[0] != MiB || x.e[1] != hole || x.e[2] != 4096
      || x.e[3] != 0 || x.e[4] != 15 * MiB - 4096 || x.e[5] != hole)
    die ("extents are not hole 1M, data 4K, hole");

  /* REQ_ONE: one extent, not beyond the request. */
  x.n = 0;
  if (nbd_block_status (h, 2 * MiB, 0, cb, LIBNBD_CMD_FLAG_REQ_ONE) == -1)
    die_nbd ("block_status with REQ_ONE");
  if (x.n != 2 || x.e[0] != MiB || x.e[1] != hole)
    die ("REQ_ONE gave %zu extents, first %u", x.n / 2, x.e[0]);

  /* A written block is data at once (the cache's dirty state). */
  if (nbd_pwrite (h, "written", 7, 8 * MiB, 0) == -1)
    die_nbd ("pwrite");
  x.n = 0;
  if (nbd_block_status (h, 4096, 8 * MiB, cb, 0) == -1)
    die_nbd ("block_status after a write");
  if (x.n != 2 || x.e[0] != 4096 || x.e[1] != 0)
    die ("a freshly written block is not reported as data");
  close_handle (h);
}

struct chunks {
  int data, hole;
};

static int
chunk_cb (void *opaque, const void *buf, size_t count, uint64_t offset,
          unsigned status, int *error)
{
  struct chunks *c = opaque;

  printf ("chunk offset %" PRIu64 " count %zu %s\n", offset, count,
          status == LIBNBD_READ_DATA ? "data"
          : status == LIBNBD_READ_HOLE ? "hole" : "error");
  if (status == LIBNBD_READ_DATA)
    c->data++;
  else if (status == LIBNBD_READ_HOLE)
    c->hole++;
  return 0;
}

static void
sparse_read (void)
{
  struct nbd_handle *h = open_export ("lo0");
  struct chunks c = { 0 };
  char *buf = malloc (2 * MiB);

  /* Holes travel as OFFSET_HOLE chunks ... */
  memset (buf, 'x', 2 * MiB);
  if (nbd_pread_structured (h, buf, 2 * MiB, 0, (nbd_chunk_callback) {
        .callback = chunk_cb, .user_data = &c }, 0) == -1)
    die_nbd ("pread_structured");
  if (c.hole != 2 || c.data != 1)
    die ("expected hole, data, hole chunks; got %d data %d hole",
         c.data, c.hole);
  if (!all_zero (buf, MiB) || memcmp (buf + MiB, "DATA", 4) != 0
      || !all_zero (buf + MiB + 4096, MiB - 4096))
    die ("sparse read returned the wrong bytes");

  /* ... except with DF: one data chunk. */
  c = (struct chunks) { 0 };
  if (nbd_pread_structured (h, buf, 2 * MiB, 0, (nbd_chunk_callback) {
        .callback = chunk_cb, .user_data = &c }, LIBNBD_CMD_FLAG_DF) == -1)
    die_nbd ("pread_structured with DF");
  if (c.hole != 0 || c.data != 1)
    die ("DF read came in %d data and %d hole chunks", c.data, c.hole);
  free (buf);
  close_handle (h);
}

/* Stay connected until stdin reaches EOF, then check the connection
 * still works: other clients' misdeeds must not disturb it.
 */
static void
hold (void)
{
  struct nbd_handle *h = open_export ("");
  char buf[512], c;

  if (nbd_pread (h, buf, sizeof buf, 0, 0) == -1)
    die_nbd ("first read");
  printf ("connected\n");
  fflush (stdout);
  while (read (STDIN_FILENO, &c, 1) > 0)
    ;
  if (nbd_pread (h, buf, sizeof buf, 0, 0) == -1)
    die_nbd ("read after the other clients were done");
  close_handle (h);
}

/* ---- durability: write, maybe flush, then kill -9 the server ----
 *
 * The data is the file $NBDL_DATA (1 MiB), written to lo0 at 4 MiB;
 * the server's PID is $NBDL_SERVER_PID.  The connection is still open
 * when the server dies, so nothing but the command under test can have
 * written the data back.  The script then looks in the host file.
 */

static char *
load_data (void)
{
  const char *path = getenv ("NBDL_DATA");
  char *buf = malloc (MiB);
  FILE *fp;

  if (path == NULL || buf == NULL || (fp = fopen (path, "r")) == NULL
      || fread (buf, 1, MiB, fp) != MiB)
    die ("cannot read 1 MiB from $NBDL_DATA");
  fclose (fp);
  return buf;
}

static void
kill_server (void)
{
  const char *pid = getenv ("NBDL_SERVER_PID");

  if (pid == NULL || kill ((pid_t) atol (pid), SIGKILL) == -1)
    die ("cannot kill $NBDL_SERVER_PID: %m");
}

static void
durability (bool flush, bool fua, bool other_connection)
{
  struct nbd_handle *h = open_export ("lo0"), *h2 = NULL;
  char *buf = load_data ();

  if (nbd_pwrite (h, buf, MiB, 4 * MiB, fua ? LIBNBD_CMD_FLAG_FUA : 0) == -1)
    die_nbd ("pwrite");
  if (flush) {
    /* With multi-conn, a FLUSH on any connection covers the write. */
    if (other_connection) {
      h2 = open_export ("lo0");
      expect_flag (nbd_can_multi_conn (h2), true, "can_multi_conn");
    }
    if (nbd_flush (h2 ? h2 : h, 0) == -1)
      die_nbd ("flush");
  }
  kill_server ();
  free (buf);
  nbd_close (h);
  if (h2)
    nbd_close (h2);
}

static void write_kill (void) { durability (false, false, false); }
static void fua_kill (void) { durability (false, true, false); }
static void flush_kill (void) { durability (true, false, false); }
static void multiconn_flush_kill (void) { durability (true, false, true); }

int
main (int argc, char *argv[])
{
  static const struct {
    const char *name;
    void (*fn) (void);
  } modes[] = {
    { "opt-list", opt_list },
    { "opt-info", opt_info },
    { "opt-meta", opt_meta },
    { "no-structured", no_structured },
    { "flags-rw", flags_rw },
    { "flags-ro", flags_ro },
    { "no-fua", no_fua },
    { "read-write", read_write },
    { "flush-trim-zero-cache", flush_trim_zero_cache },
    { "bounds", bounds },
    { "bad-flags", bad_flags },
    { "large", large },
    { "inflight", inflight },
    { "block-status", block_status },
    { "sparse-read", sparse_read },
    { "hold", hold },
    { "write-kill", write_kill },
    { "fua-kill", fua_kill },
    { "flush-kill", flush_kill },
    { "multiconn-flush-kill", multiconn_flush_kill },
  };

  if (argc != 3) {
    fprintf (stderr, "usage: client-libnbd SOCKET MODE\n");
    exit (2);
  }
  sock = argv[1];
  mode = argv[2];
  if (strcmp (mode, "export-name") == 0) {
    export_name (0);
    export_name (LIBNBD_HANDSHAKE_FLAG_FIXED_NEWSTYLE);
    return 0;
  }
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp (mode, modes[i].name) == 0) {
      modes[i].fn ();
      return 0;
    }
  fprintf (stderr, "client-libnbd: unknown mode %s\n", mode);
  return 2;
}
