/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: QNX file-system level options.
 *
 * io-blk.so also configures the file systems it mounts (automount=,
 * vnode=, noatime, ...).  An NBD server mounts nothing, so these have
 * no effect here; they are still checked against their QNX syntax, so
 * a typo is reported rather than silently ignored, and then each name
 * warns once.  This lets QNX start-up lines paste in unchanged.
 */
#include <config.h>

#include <string.h>

#include "cleanup.h"
#include "internal.h"

/* Options whose value is one word of a fixed set. */
static const struct {
  const char *name;
  const char *const words[4];
} choices[] = {
  { "auto", { "none", "partition" } },
  { "fdinfo", { "never", "ncache", "always" } },
  { "naming", { "0#", "0a", "a1" } },
  { "devno", { "name", "class", "common" } },
  { "enumpart", { "forward", "reverse", "windows" } },
  { "error", { "ebadfsys", "mountro", "panic" } },
  { "marking", { "none", "mount", "dynamic" } },
  { "pregrow-fill", { "zero", "none" } },
};

static int
check_choice (const struct opt_def *def, const char *value, char **err,
              bool *found)
{
  *found = false;
  for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
    if (strcmp (def->name, choices[i].name) != 0)
      continue;
    *found = true;
    for (size_t j = 0; j < 4 && choices[i].words[j]; j++)
      if (strcmp (value, choices[i].words[j]) == 0)
        return 0;
    return opts_error (err, "%s=%s: expected %s", def->name, value,
                       def->syntax);
  }
  return 0;
}

/* "N[:M]" counts (vnode=, ncache=, map=). */
static int
check_counts (const struct opt_def *def, const char *value, char **err)
{
  CLEANUP_FREE char *copy = strdup (value);
  char *f[2];
  const char *why;
  uint64_t n;

  if (copy == NULL)
    return opts_error (err, "%s=%s: out of memory", def->name, value);
  if (split_fields (copy, f, 2) == -1 ||
      parse_uint (f[0], 0, UINT32_MAX, &n, &why) == -1 ||
      (f[1] && parse_uint (f[1], 0, UINT32_MAX, &n, &why) == -1))
    return opts_error (err, "%s=%s: expected %s", def->name, value,
                       def->syntax);
  return 0;
}

/* automount=[+]DEV[@PTYPE][:MOUNTPOINT[:FSTYPE[:OPTIONS]]] or @FILE. */
static int
check_automount (const char *value, char **err)
{
  const char *dev = value[0] == '+' ? value + 1 : value;

  if (value[0] == '@') {
    if (value[1] == '\0')
      return opts_error (err, "automount=%s: expected @FILE", value);
    return 0;
  }
  if (dev[0] == '\0' || dev[0] == ':' || dev[0] == '@')
    return opts_error (err, "automount=%s: expected "
                       "[+]DEV[@PTYPE][:MOUNTPOINT[:FSTYPE[:OPTIONS]]]",
                       value);
  return 0;
}

int
fs_option (struct opts *o, const struct opt_def *def, const char *value,
           char **err)
{
  const char *why;
  uint64_t n, ms;
  struct size_value size;
  bool found;

  if (check_choice (def, value, err, &found) == -1)
    return -1;
  if (found)
    ;
  else if (strcmp (def->name, "vnode") == 0 ||
           strcmp (def->name, "ncache") == 0 ||
           strcmp (def->name, "map") == 0) {
    if (check_counts (def, value, err) == -1)
      return -1;
  }
  else if (strcmp (def->name, "automount") == 0) {
    if (check_automount (value, err) == -1)
      return -1;
  }
  else if (strcmp (def->name, "rmvpoll") == 0 ||
           strcmp (def->name, "fse-period") == 0) {
    if (parse_time_ms (value, &ms, &why) == -1)
      return opts_error (err, "%s=%s: %s", def->name, value, why);
  }
  else if (strcmp (def->name, "fse-size") == 0) {
    if (parse_size (value, 0, &size, &why) == -1)
      return opts_error (err, "%s=%s: %s", def->name, value, why);
  }
  else if (strcmp (def->name, "mfu") == 0) {
    if (parse_size (value, SIZE_ALLOW_PERCENT, &size, &why) == -1)
      return opts_error (err, "mfu=%s: %s", value, why);
  }
  else if (strcmp (def->name, "priority") == 0 ||
           strcmp (def->name, "maxio") == 0 ||
           strcmp (def->name, "maxcio") == 0 ||
           strcmp (def->name, "mntuid") == 0 ||
           strcmp (def->name, "mntgid") == 0) {
    if (parse_uint (value, 0, UINT32_MAX, &n, &why) == -1)
      return opts_error (err, "%s=%s: %s", def->name, value, why);
  }
  else if (strcmp (def->name, "mntperms") == 0) {
    if (value[strspn (value, "01234567")] != '\0' || strlen (value) > 4)
      return opts_error (err, "mntperms=%s: expected an octal mode such as "
                         "0755", value);
  }
  /* devdir=, memory=, hookdll=, fse-device=: any non-empty text; flags:
   * nothing to check.
   */

  if (opts_warn_once (o, def->name, "blk option '%s' has no effect here: it "
                      "configures a QNX file system, and an NBD server "
                      "mounts none", def->name) == -1)
    return opts_error (err, "out of memory");
  return 0;
}
