/* SPDX-License-Identifier: BSD-3-Clause */
/* power-client: the client and the checker of the power-cut tests
 * (tests/vm/host-power.sh).
 *
 *   power-client run SOCKET EXPORT SEED SECONDS
 *   power-client check FILE LOG SEED LEVEL
 *
 * run: inside the guest, against the export EXPORT of the server on
 * the Unix socket SOCKET: one connection, one request at a time, writes of 1 to 64
 * 512-byte sectors at random sector offsets (a quarter of them with
 * FUA when the export advertises it) and now and then a FLUSH, for at
 * most SECONDS (the host cuts the power long before).  Every reply is
 * recorded on stdout (the guest's serial console, which the host keeps
 * in a file), as one line written at once:
 *
 *   P READY <size> .              connected; the export's size
 *   P A <version> <sector> <count> <fua> .
 *                                 that write was acknowledged
 *   P F <version> .               a FLUSH sent after the write
 *                                 <version> was acknowledged
 *
 * A line cut short by the power cut lacks the final "." and is
 * ignored: the checker then knows of less, never of more, than was
 * acknowledged.  Every 512-byte sector written is self-describing
 * (magic, seed, sector number, the write's version, a checksum), so
 * the checker tells which write put it there.
 *
 * check: on the host, after the power cut: FILE is the export's file
 * as the disk image holds it, LOG the console.  By commit LEVEL
 * (high, medium, low-sync, none), a write is durable if it was
 * acknowledged and
 *   - it was written before an acknowledged FLUSH (every level);
 *   - it had FUA (medium, low-sync: the host file opened with
 *     O_SYNC);
 *   - always (high).
 * Every sector must hold the version of its newest durable write or a
 * newer one (a later write, acknowledged or not, may have reached the
 * disk); zeros only where no durable write covers it; anything else
 * is garbage.  Prints "figures: ..." (volatile_lost: sectors whose
 * newest acknowledged write was not durable and is not on the disk,
 * what the power cut took) and exits 1 on any loss of a durable write.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

#define SECTOR 512
#define MAX_SECTORS 64
#define SECTOR_MAGIC UINT64_C (0x504f574552435554) /* "POWERCUT" */

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  fprintf (stderr, "power-client: ");
  vfprintf (stderr, fs, args);
  fprintf (stderr, "\n");
  va_end (args);
  exit (1);
}

/* xorshift64*: the workload's random numbers. */
static uint64_t rng;
static uint64_t
next_random (void)
{
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * UINT64_C (0x2545F4914F6CDD1D);
}

static uint64_t
mix (uint64_t x)
{
  x ^= x >> 33;
  x *= UINT64_C (0xff51afd7ed558ccd);
  x ^= x >> 33;
  x *= UINT64_C (0xc4ceb9fe1a85ec53);
  x ^= x >> 33;
  return x;
}

/* A sector: 4 header words, filler derived from them, and a checksum
 * of everything before it in the last word.
 */
static void
fill_sector (uint8_t *p, uint64_t seed, uint64_t sector, uint64_t version)
{
  uint64_t w[SECTOR / 8], sum = 0;
  size_t i;

  w[0] = SECTOR_MAGIC;
  w[1] = seed;
  w[2] = sector;
  w[3] = version;
  for (i = 4; i < SECTOR / 8 - 1; ++i)
    w[i] = mix (seed ^ mix (sector * 64 + i) ^ version);
  for (i = 0; i < SECTOR / 8 - 1; ++i)
    sum = mix (sum ^ w[i]);
  w[SECTOR / 8 - 1] = sum;
  for (i = 0; i < SECTOR / 8; ++i)
    w[i] = htole64 (w[i]);
  memcpy (p, w, SECTOR);
}

/* The version in a sector read back: 0 for zeros, -1 for garbage. */
static int64_t
sector_version (const uint8_t *p, uint64_t seed, uint64_t sector)
{
  uint8_t want[SECTOR];
  uint64_t version;
  size_t i;

  for (i = 0; i < SECTOR && p[i] == 0; ++i)
    ;
  if (i == SECTOR)
    return 0;
  memcpy (&version, p + 24, 8);
  version = le64toh (version);
  if (version == 0 || version > INT64_MAX)
    return -1;
  fill_sector (want, seed, sector, version);
  return memcmp (p, want, SECTOR) == 0 ? (int64_t) version : -1;
}

/* --- run --- */

static int sock = -1;

static void
write_all (const void *buf, size_t n)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t r = write (sock, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      die ("write to the server: %s", r < 0 ? strerror (errno) : "closed");
    p += r;
    n -= r;
  }
}

static void
read_all (void *buf, size_t n)
{
  char *p = buf;
  while (n > 0) {
    ssize_t r = read (sock, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      die ("read from the server: %s", r < 0 ? strerror (errno) : "closed");
    p += r;
    n -= r;
  }
}

/* One line on stdout, in one write. */
static void __attribute__ ((format (printf, 1, 2)))
record (const char *fs, ...)
{
  char line[256];
  va_list args;
  int n;

  va_start (args, fs);
  n = vsnprintf (line, sizeof line, fs, args);
  va_end (args);
  if (n < 0 || (size_t) n >= sizeof line)
    die ("record line too long");
  if (write (STDOUT_FILENO, line, n) != n)
    die ("writing the record: %s", strerror (errno));
}

/* NBD_OPT_GO for the default export; returns its size and flags. */
static void
handshake (const char *name, uint64_t *size, uint16_t *eflags)
{
  struct nbd_greeting g;
  struct nbd_option opt;
  struct nbd_option_reply rep;
  uint32_t cflags = htobe32 (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  char data[4 + 256 + 2];
  uint32_t nlen = strlen (name), dlen = 4 + nlen + 2;
  bool have_export = false;

  if (nlen > 256)
    die ("export name too long");

  read_all (&g, sizeof g);
  if (be64toh (g.magic) != NBD_MAGIC || be64toh (g.ihaveopt) != NBD_IHAVEOPT)
    die ("not a fixed-newstyle server");
  write_all (&cflags, sizeof cflags);
  /* The export name, no information requests. */
  memset (data, 0, sizeof data);
  data[0] = nlen >> 24;
  data[1] = nlen >> 16;
  data[2] = nlen >> 8;
  data[3] = nlen;
  memcpy (data + 4, name, nlen);
  opt.magic = htobe64 (NBD_IHAVEOPT);
  opt.option = htobe32 (NBD_OPT_GO);
  opt.length = htobe32 (dlen);
  write_all (&opt, sizeof opt);
  write_all (data, dlen);
  for (;;) {
    uint32_t len, type;
    char buf[1024];

    read_all (&rep, sizeof rep);
    if (be64toh (rep.magic) != NBD_REP_MAGIC)
      die ("bad option reply magic");
    len = be32toh (rep.length);
    type = be32toh (rep.reply);
    if (len > sizeof buf)
      die ("option reply of %" PRIu32 " bytes", len);
    read_all (buf, len);
    if (type == NBD_REP_ACK)
      break;
    if (type & (UINT32_C (1) << 31))
      die ("NBD_OPT_GO refused (%#" PRIx32 ")", type);
    if (type == NBD_REP_INFO && len >= 12) {
      struct nbd_info_export ie;
      memcpy (&ie, buf, sizeof ie);
      if (be16toh (ie.info) == 0 /* NBD_INFO_EXPORT */) {
        *size = be64toh (ie.size);
        *eflags = be16toh (ie.flags);
        have_export = true;
      }
    }
  }
  if (!have_export)
    die ("no NBD_INFO_EXPORT in the reply to NBD_OPT_GO");
}

static void
request (uint16_t type, uint16_t flags, uint64_t cookie, uint64_t offset,
         uint32_t count, const void *payload)
{
  struct nbd_request rq;
  struct nbd_simple_reply rp;

  rq.magic = htobe32 (NBD_REQUEST_MAGIC);
  rq.flags = htobe16 (flags);
  rq.type = htobe16 (type);
  rq.cookie = htobe64 (cookie);
  rq.offset = htobe64 (offset);
  rq.count = htobe32 (count);
  write_all (&rq, sizeof rq);
  if (payload)
    write_all (payload, count);
  read_all (&rp, sizeof rp);
  if (be32toh (rp.magic) != NBD_SIMPLE_REPLY_MAGIC)
    die ("bad reply magic");
  if (be64toh (rp.cookie) != cookie)
    die ("reply to cookie %" PRIu64 ", expected %" PRIu64,
         (uint64_t) be64toh (rp.cookie), cookie);
  if (rp.error != 0)
    die ("request type %u failed with error %" PRIu32,
         type, (uint32_t) be32toh (rp.error));
}

static int
run (const char *path, const char *name, uint64_t seed, unsigned seconds)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  uint8_t buf[MAX_SECTORS * SECTOR];
  uint64_t size = 0, sectors, version = 0, cookie = 0;
  uint16_t eflags = 0;
  bool fua_ok;
  time_t end = time (NULL) + seconds;

  if (strlen (path) >= sizeof sun.sun_path)
    die ("socket path too long");
  strcpy (sun.sun_path, path);
  sock = socket (AF_UNIX, SOCK_STREAM, 0);
  if (sock < 0 || connect (sock, (struct sockaddr *) &sun, sizeof sun) < 0)
    die ("connect %s: %s", path, strerror (errno));
  handshake (name, &size, &eflags);
  sectors = size / SECTOR;
  if (sectors < MAX_SECTORS)
    die ("the export is too small (%" PRIu64 " bytes)", size);
  fua_ok = (eflags & NBD_FLAG_SEND_FUA) != 0;
  record ("P READY %" PRIu64 " %d .\n", size, fua_ok);
  rng = mix (seed) | 1;
  while (time (NULL) < end) {
    uint64_t r = next_random ();
    if (r % 16 == 0) {
      request (NBD_CMD_FLUSH, 0, ++cookie, 0, 0, NULL);
      record ("P F %" PRIu64 " .\n", version);
    }
    else {
      uint32_t n = 1 + (r >> 8) % MAX_SECTORS, i;
      uint64_t s = (r >> 16) % (sectors - n + 1);
      bool fua = fua_ok && (r >> 4) % 4 == 0;
      ++version;
      for (i = 0; i < n; ++i)
        fill_sector (buf + i * SECTOR, seed, s + i, version);
      request (NBD_CMD_WRITE, fua ? NBD_CMD_FLAG_FUA : 0, ++cookie,
               s * SECTOR, n * SECTOR, buf);
      record ("P A %" PRIu64 " %" PRIu64 " %" PRIu32 " %d .\n",
              version, s, n, fua);
    }
  }
  record ("P END .\n");
  return 0;
}

/* --- check --- */

static int
check (const char *file, const char *log, uint64_t seed, const char *level)
{
  enum { HIGH, MEDIUM, NONE } lv;
  FILE *fp;
  char line[512];
  uint64_t size = 0, nsect = 0, acked = 0, durable_w = 0, flushes = 0;
  uint64_t top = 0;             /* the newest version acknowledged */
  int64_t *want = NULL;         /* newest durable version per sector */
  int64_t *newest = NULL;       /* newest acknowledged version */
  /* Acknowledged writes not yet durable, to make so at a FLUSH. */
  struct w { uint64_t v, s; uint32_t n; } *pend = NULL;
  size_t npend = 0, apend = 0;
  uint8_t sec[SECTOR];
  uint64_t checked = 0, lost = 0, garbage = 0, newer = 0, zero_ok = 0;
  uint64_t volatile_lost = 0;
  int fd;
  uint64_t i;
  bool ready = false;

  if (strcmp (level, "high") == 0)
    lv = HIGH;
  else if (strcmp (level, "medium") == 0 || strcmp (level, "low-sync") == 0)
    lv = MEDIUM;
  else if (strcmp (level, "none") == 0)
    lv = NONE;
  else
    die ("level %s: high, medium, low-sync or none", level);

  fp = fopen (log, "r");
  if (!fp)
    die ("%s: %s", log, strerror (errno));
  while (fgets (line, sizeof line, fp)) {
    uint64_t v, s;
    uint32_t n;
    int fua, k;
    char *p = strstr (line, "P ");
    size_t len = strlen (line);

    /* Only complete lines, ending in " ." (the console may add \r). */
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = 0;
    if (!p || len < 2 || strcmp (line + len - 2, " .") != 0)
      continue;
    if (sscanf (p, "P READY %" SCNu64 " %d .", &v, &k) == 2) {
      if (ready)
        die ("two READY lines in %s", log);
      ready = true;
      size = v;
      nsect = size / SECTOR;
      want = calloc (nsect, sizeof *want);
      newest = calloc (nsect, sizeof *newest);
      if (!want || !newest)
        die ("out of memory");
    }
    else if (sscanf (p, "P A %" SCNu64 " %" SCNu64 " %" SCNu32 " %d .",
                     &v, &s, &n, &fua) == 4) {
      if (!ready || s + n > nsect || v != top + 1)
        die ("bad line in %s: %s", log, line);
      top = v;
      ++acked;
      for (i = s; i < s + n; ++i)
        newest[i] = v;
      if (lv == HIGH || (lv == MEDIUM && fua)) {
        ++durable_w;
        for (i = s; i < s + n; ++i)
          if (want[i] < (int64_t) v)
            want[i] = v;
      }
      else {
        if (npend == apend) {
          apend = apend ? apend * 2 : 1024;
          pend = realloc (pend, apend * sizeof *pend);
          if (!pend)
            die ("out of memory");
        }
        pend[npend++] = (struct w) { v, s, n };
      }
    }
    else if (sscanf (p, "P F %" SCNu64 " .", &v) == 1) {
      size_t j;
      if (!ready || v != top)
        die ("bad line in %s: %s", log, line);
      ++flushes;
      for (j = 0; j < npend; ++j) {
        ++durable_w;
        for (i = pend[j].s; i < pend[j].s + pend[j].n; ++i)
          if (want[i] < (int64_t) pend[j].v)
            want[i] = pend[j].v;
      }
      npend = 0;
    }
  }
  fclose (fp);
  if (!ready)
    die ("no READY line in %s: the client never connected", log);

  fd = open (file, O_RDONLY);
  if (fd < 0)
    die ("%s: %s", file, strerror (errno));
  for (i = 0; i < nsect; ++i) {
    int64_t got;
    ssize_t r = pread (fd, sec, SECTOR, i * SECTOR);
    if (r == 0)
      memset (sec, 0, SECTOR); /* past a shorter file: zeros */
    else if (r != SECTOR)
      die ("%s: read sector %" PRIu64 ": %s", file, i,
           r < 0 ? strerror (errno) : "short");
    got = sector_version (sec, seed, i);
    if (got < 0) {
      if (garbage++ < 10)
        fprintf (stderr, "power-client: sector %" PRIu64 ": garbage\n", i);
      continue;
    }
    /* An acknowledged write that did not have to survive, and did
     * not: what the power cut took (it shows the cut is real).
     */
    if (got < newest[i])
      ++volatile_lost;
    if (want[i] == 0) {
      if (got == 0)
        ++zero_ok;
      continue;
    }
    ++checked;
    if (got < want[i]) {
      if (lost++ < 10)
        fprintf (stderr, "power-client: sector %" PRIu64 ": version %" PRId64
                 " on disk, the durable version is %" PRId64 "\n",
                 i, got, want[i]);
    }
    else if (got > want[i])
      ++newer;
  }
  close (fd);
  printf ("figures: level=%s acked=%" PRIu64 " flushes=%" PRIu64
          " durable=%" PRIu64 " sectors_checked=%" PRIu64
          " newer=%" PRIu64 " lost=%" PRIu64 " garbage=%" PRIu64
          " volatile_lost=%" PRIu64 "\n",
          level, acked, flushes, durable_w, checked, newer, lost, garbage,
          volatile_lost);
  free (want);
  free (newest);
  free (pend);
  return lost || garbage ? 1 : 0;
}

int
main (int argc, char *argv[])
{
  if (argc == 6 && strcmp (argv[1], "run") == 0)
    return run (argv[2], argv[3], strtoull (argv[4], NULL, 0), atoi (argv[5]));
  if (argc == 6 && strcmp (argv[1], "check") == 0)
    return check (argv[2], argv[3], strtoull (argv[4], NULL, 0), argv[5]);
  fprintf (stderr, "usage: power-client run SOCKET EXPORT SEED SECONDS\n"
           "       power-client check FILE LOG SEED LEVEL\n");
  return 2;
}
