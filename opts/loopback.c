/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the "loopback" group (devb-loopback's own options).
 *
 * Global options (nio=, prefix=, user=) may appear anywhere and once.
 * Order-dependent options change the modes in force for every later
 * fd=, and may be repeated with new values: "ro,fd=/a,rw,fd=/b" gives
 * a read-only lo0 and a read-write lo1.  An empty blksz= returns later
 * fd= to the probed block size.
 */
#include <config.h>

#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"

#define MAX_NIO 64
#define MAX_PREFIX 32
#define MAX_GEOMETRY 255

static int
parse_user (struct opts *o, const char *value, char **err)
{
  CLEANUP_FREE char *copy = strdup (value);
  char *fields[2];
  const char *why;
  struct passwd *pw;
  uint64_t n;

  if (copy == NULL)
    return opts_error (err, "user=%s: out of memory", value);
  if (split_fields (copy, fields, 2) == -1 || fields[0][0] == '\0' ||
      (fields[1] && fields[1][0] == '\0'))
    return opts_error (err, "user=%s: expected user=UID[:GID] "
                       "(numbers or names)", value);

  /* A user known to the system brings its primary group along. */
  if (parse_uint (fields[0], 0, UINT32_MAX - 1, &n, &why) == 0) {
    o->uid = n;
    pw = getpwuid (n);
  }
  else {
    pw = getpwnam (fields[0]);
    if (pw == NULL)
      return opts_error (err, "user=%s: no such user '%s'", value, fields[0]);
    o->uid = pw->pw_uid;
  }
  if (pw && fields[1] == NULL) {
    o->gid = pw->pw_gid;
    o->have_gid = true;
  }
  o->have_user = true;

  if (fields[1]) {
    if (parse_uint (fields[1], 0, UINT32_MAX - 1, &n, &why) == 0)
      o->gid = n;
    else {
      struct group *gr = getgrnam (fields[1]);
      if (gr == NULL)
        return opts_error (err, "user=%s: no such group '%s'", value,
                           fields[1]);
      o->gid = gr->gr_gid;
    }
    o->have_gid = true;
  }
  return 0;
}

static int
parse_prefix (struct opts *o, const char *value, char **err)
{
  size_t len = strlen (value);

  if (len > MAX_PREFIX)
    return opts_error (err, "prefix=%s: too long (at most %d characters)",
                       value, MAX_PREFIX);
  for (size_t i = 0; i < len; i++)
    if (!isalnum ((unsigned char) value[i]) && value[i] != '_' &&
        value[i] != '-' && value[i] != '.')
      return opts_error (err, "prefix=%s: only letters, digits, '_', '-' "
                         "and '.' are allowed in export names", value);
  o->prefix = strdup (value);
  if (o->prefix == NULL)
    return opts_error (err, "prefix=%s: out of memory", value);
  return 0;
}

int
lo_global (struct opts *o, const struct opt_def *def, const char *value,
           char **err)
{
  const char *why;
  uint64_t n;

  if (strcmp (def->name, "nio") == 0) {
    if (parse_uint (value, 0, MAX_NIO, &n, &why) == -1)
      return opts_error (err, "nio=%s: must be a number from 0 to %d",
                         value, MAX_NIO);
    o->nio = n;
    return 0;
  }
  if (strcmp (def->name, "prefix") == 0)
    return parse_prefix (o, value, err);
  return parse_user (o, value, err);
}

int
lo_mode (struct opts *o, const struct opt_def *def, const char *value,
         char **err)
{
  static const struct {
    const char *name;
    int field;                  /* 0 access, 1 sync, 2 deny, 3 io, 4 direct */
    int mode;
  } modes[] = {
    { "rw", 0, ACCESS_RW }, { "ro", 0, ACCESS_RO },
    { "sync", 1, SYNC_SYNC }, { "async", 1, SYNC_ASYNC },
    { "denyno", 2, DENY_NO }, { "denyrd", 2, DENY_RD },
    { "denywr", 2, DENY_WR }, { "denyrw", 2, DENY_RW },
    { "seek", 3, IO_SEEK }, { "xtype", 3, IO_XTYPE },
    { "direct", 4, DIRECT_ON }, { "nodirect", 4, DIRECT_OFF },
  };

  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    if (strcmp (def->name, modes[i].name) != 0)
      continue;
    switch (modes[i].field) {
    case 0: o->current.access = modes[i].mode; break;
    case 1: o->current.sync = modes[i].mode; break;
    case 2: o->current.deny = modes[i].mode; break;
    case 3: o->current.io = modes[i].mode; break;
    case 4: o->current.direct = modes[i].mode; break;
    }
    return 0;
  }
  return opts_error (err, "%s: unhandled mode", def->name);
}

int
lo_fd (struct opts *o, const struct opt_def *def, const char *value,
       char **err)
{
  struct pending_export e = { .path = strdup (value), .modes = o->current };

  if (e.path == NULL || pending_exports_append (&o->exports, e) == -1) {
    free (e.path);
    return opts_error (err, "fd=%s: out of memory", value);
  }
  return 0;
}

int
lo_blksz (struct opts *o, const struct opt_def *def, const char *value,
          char **err)
{
  const char *why;
  uint64_t n;

  if (value[0] == '\0') {
    o->current.blksz = 0;       /* back to the probed value */
    return 0;
  }
  if (parse_uint (value, 0, UINT32_MAX, &n, &why) == -1 ||
      (n != 512 && n != 1024 && n != 2048 && n != 4096))
    return opts_error (err, "blksz=%s: must be 512, 1024, 2048 or 4096 "
                       "(or empty for the probed size)", value);
  o->current.blksz = n;
  return 0;
}

int
lo_geometry (struct opts *o, const struct opt_def *def, const char *value,
             char **err)
{
  const char *why;
  uint64_t n;

  if (parse_uint (value, 1, MAX_GEOMETRY, &n, &why) == -1)
    return opts_error (err, "%s=%s: must be a number from 1 to %d",
                       def->name, value, MAX_GEOMETRY);
  if (strcmp (def->name, "heads") == 0)
    o->current.heads = n;
  else
    o->current.tracks = n;
  return 0;
}

/* Changed-block tracking: nbd-loopback's own, no QNX counterpart.  The
 * granularity is checked against the export's block size when the
 * export opens (cache_export_track).
 */
#define CBT_DEFAULT (64 * 1024)
#define CBT_MIN 512
#define CBT_MAX (64 * 1024 * 1024)

int
lo_cbt (struct opts *o, const struct opt_def *def, const char *value,
        char **err)
{
  struct size_value v;
  const char *why;
  char *dir;

  if (strcmp (def->name, "nocbt") == 0) {
    o->current.cbt = 0;
    return 0;
  }
  if (strcmp (def->name, "cbtdir") == 0) {
    if (value[0] == '\0') {
      o->current.cbtdir = NULL;         /* beside the file again */
      return 0;
    }
    dir = strdup (value);
    if (dir == NULL || string_vector_append (&o->cbtdirs, dir) == -1) {
      free (dir);
      return opts_error (err, "cbtdir=%s: out of memory", value);
    }
    o->current.cbtdir = dir;
    return 0;
  }
  if (value == NULL || value[0] == '\0') {
    o->current.cbt = CBT_DEFAULT;
    return 0;
  }
  if (parse_size (value, 0, &v, &why) == -1 || v.value < CBT_MIN ||
      v.value > CBT_MAX || (v.value & (v.value - 1)) != 0)
    return opts_error (err, "cbt=%s: the granularity must be a power of two "
                       "from 512 to 64m (default 64k)", value);
  o->current.cbt = v.value;
  return 0;
}
