/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: option groups, tokens and the finished configuration.
 *
 * The command line is a sequence of groups, each a keyword followed by
 * one or more comma-separated option lists, in any order and any
 * number of times, exactly as devb-loopback takes them.  Loopback
 * options are either global (nio=, prefix=, user=: anywhere, once) or
 * order-dependent (modes that apply to every later fd=).  blk options
 * are global and may be given once each.  QNX driver and file-system
 * groups ("cam", "disk", "dos", "qnx6", ...) are skipped with one
 * warning, so QNX start-up lines paste in unchanged.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"

/* Groups of other QNX drivers and file-system modules that can appear
 * on a devb-* command line.  They configure things this server does
 * not have, so their options are ignored as a whole.
 */
static const char *const foreign_groups[] = {
  "cam", "cdrom", "disk", "eide", "ram", "sdmmc", "umass", "ahci", "mmc",
  "cd", "dos", "ext2", "fat", "mac", "nt", "qnx4", "qnx6", "udf", "etfs",
  NULL
};

static bool
is_foreign_group (const char *word)
{
  for (size_t i = 0; foreign_groups[i]; i++)
    if (strcmp (word, foreign_groups[i]) == 0)
      return true;
  return false;
}

int
opts_is_group_word (const char *word)
{
  return strcmp (word, "loopback") == 0 || strcmp (word, "blk") == 0 ||
    is_foreign_group (word);
}

struct opts *
opts_new (void)
{
  struct opts *o = calloc (1, sizeof *o);

  if (o == NULL)
    return NULL;
  o->current.access = ACCESS_RW;
  o->current.sync = SYNC_SYNC;
  o->current.deny = DENY_RW;
  o->current.io = IO_PROBE;
  o->current.blksz = 0;
  o->current.heads = 1;
  o->current.tracks = 1;
  o->nio = 1;
  o->blk.bufsz_min = 512;       /* bufsz=MIN alone keeps this MAX */
  o->blk.bufsz_max = 16 * 1024;
  return o;
}

void
opts_free (struct opts *o)
{
  if (o == NULL)
    return;
  for (size_t i = 0; i < o->exports.len; i++)
    free (o->exports.ptr[i].path);
  pending_exports_reset (&o->exports);
  free (o->prefix);
  free (o->trailing);
  for (size_t i = 0; i < o->cbtdirs.len; i++)
    free (o->cbtdirs.ptr[i]);
  string_vector_reset (&o->cbtdirs);
  free (o->blk.verbose_flags);
  for (size_t i = 0; i < MAX_SLOTS; i++)
    free (o->slot_text[i]);
  for (size_t i = 0; i < o->warnings.len; i++)
    free (o->warnings.ptr[i]);
  string_vector_reset (&o->warnings);
  free (o);
}

void
opts_set_physical_memory (struct opts *o, uint64_t bytes)
{
  o->physical_memory = bytes;
}

static const struct opt_def *
find_option (enum opts_group group, const char *name)
{
  for (size_t i = 0; i < opts_table_len; i++)
    if (opts_table[i].group == group && strcmp (opts_table[i].name, name) == 0)
      return &opts_table[i];
  return NULL;
}

int
opts_group_of (const char *name)
{
  if (find_option (OPTS_GROUP_LOOPBACK, name))
    return OPTS_GROUP_LOOPBACK;
  if (find_option (OPTS_GROUP_BLK, name))
    return OPTS_GROUP_BLK;
  return -1;
}

static const char *
group_name (enum opts_group group)
{
  return group == OPTS_GROUP_LOOPBACK ? "loopback" : "blk";
}

/* Claim the option's slot, or explain which earlier option holds it. */
static int
claim_slot (struct opts *o, const struct opt_def *def, const char *token,
            char **err)
{
  if (def->slot == SLOT_NONE)
    return 0;
  if (o->slot_text[def->slot]) {
    if (strcmp (o->slot_owner[def->slot], def->name) == 0)
      return opts_error (err, "%s: given twice (first as %s); "
                         "give each %s option once",
                         token, o->slot_text[def->slot], group_name (def->group));
    return opts_error (err, "%s: conflicts with %s given earlier",
                       token, o->slot_text[def->slot]);
  }
  o->slot_owner[def->slot] = def->name;
  o->slot_text[def->slot] = strdup (token);
  if (o->slot_text[def->slot] == NULL)
    return opts_error (err, "%s: out of memory", token);
  return 0;
}

/* Parse one "name" or "name=value" token. */
static int
parse_token (struct opts *o, enum opts_group group, const char *token,
             char **err)
{
  CLEANUP_FREE char *name = strdup (token);
  const struct opt_def *def;
  char *eq;
  const char *value = NULL;

  if (name == NULL)
    return opts_error (err, "%s: out of memory", token);
  eq = strchr (name, '=');
  if (eq) {
    *eq = '\0';
    value = eq + 1;
  }

  def = find_option (group, name);
  if (def == NULL) {
    const struct opt_def *other =
      find_option (group == OPTS_GROUP_LOOPBACK ? OPTS_GROUP_BLK
                   : OPTS_GROUP_LOOPBACK, name);
    if (other)
      return opts_error (err, "%s: is a %s option, not a %s one "
                         "(write it after the keyword '%s')",
                         token, group_name (other->group), group_name (group),
                         group_name (other->group));
    return opts_error (err, "%s: unknown %s option (nbd-loopback --help "
                       "lists them)", token, group_name (group));
  }
  if (def->takes_value == 0 && value)
    return opts_error (err, "%s: %s takes no value", token, name);
  if (def->takes_value == 1 && value == NULL)
    return opts_error (err, "%s: needs a value: %s", token, def->syntax);
  if (def->takes_value == 1 && value[0] == '\0' &&
      strcmp (def->name, "blksz") != 0 && strcmp (def->name, "cbtdir") != 0)
    return opts_error (err, "%s: empty value; expected %s", token, def->syntax);

  if (claim_slot (o, def, token, err) == -1)
    return -1;
  /* Remember an order-dependent option until an fd= follows it. */
  if (def->scope == SCOPE_ORDER || def->scope == SCOPE_EXPORT) {
    free (o->trailing);
    o->trailing = def->scope == SCOPE_ORDER ? strdup (token) : NULL;
  }
  return def->handler (o, def, value, err);
}

int
opts_parse_group (struct opts *o, enum opts_group group, const char *text,
                  char **err)
{
  CLEANUP_FREE char *copy = strdup (text);
  char *p, *comma;

  if (copy == NULL)
    return opts_error (err, "out of memory");
  if (copy[0] == '\0')
    return opts_error (err, "%s: empty option list", group_name (group));

  for (p = copy; ; p = comma + 1) {
    comma = strchr (p, ',');
    if (comma)
      *comma = '\0';
    if (*p == '\0')
      return opts_error (err, "%s: empty option in '%s' (stray comma?)",
                         group_name (group), text);
    if (parse_token (o, group, p, err) == -1)
      return -1;
    if (comma == NULL)
      return 0;
  }
}

/* A word before any group keyword: say where it belongs. */
static int
not_in_a_group (const char *w, char **err)
{
  CLEANUP_FREE char *name = strdup (w);
  const struct opt_def *def = NULL;

  if (name == NULL)
    return opts_error (err, "out of memory");
  name[strcspn (name, "=")] = '\0';
  if ((def = find_option (OPTS_GROUP_LOOPBACK, name)) == NULL)
    def = find_option (OPTS_GROUP_BLK, name);
  if (def)
    return opts_error (err, "'%s': options must follow a group keyword: "
                       "write '%s %s'", w, group_name (def->group), w);
  return opts_error (err, "'%s': options must follow a group keyword, "
                     "'loopback' or 'blk'; to serve a file, write "
                     "'loopback fd=%s'", w, w);
}

int
opts_parse_words (struct opts *o, int nwords, char *const *words, char **err)
{
  enum { NONE, LOOPBACK, BLK, FOREIGN } state = NONE;
  const char *foreign = NULL;

  for (int i = 0; i < nwords; i++) {
    const char *w = words[i];
    const char *base = strrchr (w, '/');

    /* A QNX line pasted whole starts with the program's name. */
    if (i == 0 && strcmp (base ? base + 1 : w, "devb-loopback") == 0)
      continue;
    if (strcmp (w, "loopback") == 0) {
      state = LOOPBACK;
      if (i + 1 == nwords || opts_is_group_word (words[i + 1]))
        return opts_error (err, "loopback: no options follow the keyword "
                           "(e.g. loopback fd=/path/to/disk.img)");
    }
    else if (strcmp (w, "blk") == 0) {
      state = BLK;
      if (i + 1 == nwords || opts_is_group_word (words[i + 1]))
        return opts_error (err, "blk: no options follow the keyword "
                           "(e.g. blk cache=64m)");
    }
    else if (is_foreign_group (w)) {
      state = FOREIGN;
      foreign = w;
      if (opts_warn_once (o, w, "'%s' options configure a QNX driver or "
                          "file system, which has no meaning for an NBD "
                          "server: ignored", w) == -1)
        return opts_error (err, "out of memory");
    }
    else if (state == LOOPBACK) {
      if (opts_parse_group (o, OPTS_GROUP_LOOPBACK, w, err) == -1)
        return -1;
    }
    else if (state == BLK) {
      if (opts_parse_group (o, OPTS_GROUP_BLK, w, err) == -1)
        return -1;
    }
    else if (state == FOREIGN)
      (void) foreign;         /* the whole group is ignored */
    else
      return not_in_a_group (w, err);
  }
  return 0;
}

void
config_force_readonly (struct config *cfg)
{
  cfg->blk.readonly = true;
  for (size_t i = 0; i < cfg->nr_exports; i++)
    cfg->exports[i].access = ACCESS_RO;
}

/* Defaults, percentages and cross-option rules. */
/* PATH made absolute against the current directory (not resolved:
 * a missing directory is reported when the file is written).
 */
static char *
absolute (const char *path)
{
  char *cwd, *r;

  if (path[0] == '/')
    return strdup (path);
  cwd = getcwd (NULL, 0);
  if (cwd == NULL)
    return NULL;
  if (asprintf (&r, "%s/%s", cwd, path) == -1)
    r = NULL;
  free (cwd);
  return r;
}

/* The image and tracking file of a cbt export: IMAGE.cbt beside it, or
 * DIR/BASENAME.cbt with cbtdir=DIR.
 */
static int
cbt_paths (struct export_config *ec)
{
  const char *base = strrchr (ec->path, '/');

  base = base ? base + 1 : ec->path;
  ec->cbt_image = absolute (ec->path);
  if (ec->cbt_image == NULL)
    return -1;
  if (ec->cbtdir && ec->cbtdir[0]) {
    char *dir = absolute (ec->cbtdir);

    if (dir == NULL || asprintf (&ec->cbt_file, "%s/%s.cbt", dir, base) == -1)
      ec->cbt_file = NULL;
    free (dir);
  }
  else if (asprintf (&ec->cbt_file, "%s.cbt", ec->cbt_image) == -1)
    ec->cbt_file = NULL;
  return ec->cbt_file ? 0 : -1;
}

struct config *
opts_finish (struct opts *o, char **err)
{
  struct config *cfg = calloc (1, sizeof *cfg);
  const char *prefix = o->prefix ? o->prefix : "lo";
  const struct pending_export *last =
    o->exports.len ? &o->exports.ptr[o->exports.len - 1] : NULL;

  if (cfg == NULL) {
    opts_error (err, "out of memory");
    return NULL;
  }
  if (blk_resolve (o, &cfg->blk, err) == -1)
    goto fail;

  if (o->trailing && o->exports.len > 0 &&
      opts_warn_once (o, o->trailing, "loopback option '%s' comes after "
                      "the last fd= and applies to no export "
                      "(order-dependent options apply to the fd= after "
                      "them: write it before fd=)", o->trailing) == -1)
    goto oom;
  if (o->exports.len == 0 && cfg->blk.ramdisk == 0) {
    opts_error (err, "nothing to export: give at least one file, e.g. "
                "'loopback fd=/path/to/disk.img' (or 'blk ramdisk=64m')");
    goto fail;
  }

  /* A trailing 'ro' is the one that cannot stay a warning: the file
   * it was meant for would be served writable.
   */
  if (o->current.access == ACCESS_RO && !cfg->blk.readonly &&
      (last == NULL || last->modes.access != ACCESS_RO)) {
    if (last == NULL)
      opts_error (err, "loopback option 'ro' applies to no export: it "
                  "makes the fd= after it read-only (e.g. 'loopback "
                  "ro,fd=/path/to/disk.img'); for every export and the "
                  "RAM disk, write 'blk ro'");
    else
      opts_error (err, "loopback option 'ro' comes after the last fd= and "
                  "would leave %s writable: order-dependent options apply "
                  "to the fd= after them, so write 'loopback ro,fd=%s'",
                  last->path, last->path);
    goto fail;
  }
  cfg->nio = o->nio;
  cfg->prefix = strdup (prefix);
  cfg->have_user = o->have_user;
  cfg->uid = o->uid;
  cfg->have_gid = o->have_gid;
  cfg->gid = o->gid;
  if (cfg->prefix == NULL)
    goto oom;

  cfg->exports = calloc (o->exports.len ? o->exports.len : 1,
                         sizeof *cfg->exports);
  if (cfg->exports == NULL)
    goto oom;
  for (size_t i = 0; i < o->exports.len; i++) {
    struct export_config *ec = &cfg->exports[i];

    *ec = o->exports.ptr[i].modes;
    ec->name = NULL;
    ec->path = NULL;
    ec->cbt_image = ec->cbt_file = NULL;
    if (!ec->cbt)
      ec->cbtdir = NULL;
    cfg->nr_exports++;
    if (asprintf (&ec->name, "%s%zu", prefix, i) == -1) {
      ec->name = NULL;
      goto oom;
    }
    ec->path = strdup (o->exports.ptr[i].path);
    if (ec->path == NULL)
      goto oom;
    if (ec->cbtdir && (ec->cbtdir = strdup (ec->cbtdir)) == NULL)
      goto oom;
    /* Absolute now: the daemon and nbdkit chdir to / when they detach. */
    if (ec->cbt && cbt_paths (ec) == -1)
      goto oom;
    for (size_t j = 0; ec->cbt && j < i; j++)
      if (cfg->exports[j].cbt && strcmp (cfg->exports[j].cbt_file,
                                         ec->cbt_file) == 0) {
        opts_error (err, "fd=%s and fd=%s would share the tracking file "
                    "%s: give one of them another cbtdir=",
                    cfg->exports[j].path, ec->path, ec->cbt_file);
        goto fail;
      }
    if (cfg->blk.readonly)
      ec->access = ACCESS_RO;
    ec->blksz_min = cfg->blk.bufsz_min;
    ec->blksz_max = cfg->blk.bufsz_max;
    if (ec->blksz &&
        (ec->blksz < cfg->blk.bufsz_min || ec->blksz > cfg->blk.bufsz_max)) {
      opts_error (err, "blksz=%" PRIu32 " (for fd=%s): outside the allowed "
                  "block sizes bufsz=%" PRIu32 ":%" PRIu32,
                  ec->blksz, ec->path, cfg->blk.bufsz_min, cfg->blk.bufsz_max);
      goto fail;
    }
  }
  if (cfg->blk.ramdisk &&
      (cfg->blk.ramdisk_sector < cfg->blk.bufsz_min ||
       cfg->blk.ramdisk_sector > cfg->blk.bufsz_max)) {
    opts_error (err, "ramdisk=: sector size %" PRIu32 " outside the allowed "
                "block sizes bufsz=%" PRIu32 ":%" PRIu32,
                cfg->blk.ramdisk_sector, cfg->blk.bufsz_min,
                cfg->blk.bufsz_max);
    goto fail;
  }

  /* Hand the warnings over without their dedup keys. */
  cfg->warnings = calloc (o->warnings.len + 1, sizeof *cfg->warnings);
  if (cfg->warnings == NULL)
    goto oom;
  for (size_t i = 0; i < o->warnings.len; i++) {
    cfg->warnings[i] = strdup (strchr (o->warnings.ptr[i], '\t') + 1);
    if (cfg->warnings[i] == NULL)
      goto oom;
    cfg->nr_warnings++;
  }
  return cfg;

 oom:
  opts_error (err, "out of memory");
 fail:
  config_free (cfg);
  return NULL;
}

void
config_free (struct config *cfg)
{
  if (cfg == NULL)
    return;
  for (size_t i = 0; i < cfg->nr_exports; i++) {
    free (cfg->exports[i].name);
    free (cfg->exports[i].path);
    free (cfg->exports[i].cbtdir);
    free (cfg->exports[i].cbt_image);
    free (cfg->exports[i].cbt_file);
  }
  free (cfg->exports);
  free (cfg->prefix);
  free (cfg->blk.verbose_flags);
  for (size_t i = 0; i < cfg->nr_warnings; i++)
    free (cfg->warnings[i]);
  free (cfg->warnings);
  free (cfg);
}

void
opts_print_help (FILE *fp)
{
  static const struct {
    enum opts_group group;
    enum opt_scope scope;
    const char *title;
  } sections[] = {
    { OPTS_GROUP_LOOPBACK, SCOPE_GLOBAL, "loopback options, global (anywhere in the group):" },
    { OPTS_GROUP_LOOPBACK, SCOPE_EXPORT, "loopback options, one export each:" },
    { OPTS_GROUP_LOOPBACK, SCOPE_ORDER, "loopback options, order-dependent (apply to every later fd=):" },
    { OPTS_GROUP_BLK, SCOPE_BLK, "blk options (cache and server):" },
  };

  for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
    fprintf (fp, "\n%s\n", sections[s].title);
    for (size_t i = 0; i < opts_table_len; i++) {
      const struct opt_def *d = &opts_table[i];
      if (d->group == sections[s].group && d->scope == sections[s].scope)
        fprintf (fp, "  %-26s %s\n", d->syntax, d->help);
    }
  }
  fprintf (fp, "\nblk options accepted for QNX compatibility, with no effect "
           "(each warns once):\n ");
  for (size_t i = 0, col = 1; i < opts_table_len; i++) {
    const struct opt_def *d = &opts_table[i];
    if (d->scope != SCOPE_NO_EFFECT)
      continue;
    if (col + strlen (d->name) + 1 > 78) {
      fprintf (fp, "\n ");
      col = 1;
    }
    col += fprintf (fp, " %s", d->name);
  }
  fprintf (fp, "\n\nSizes take b, k, m, g, p (pages) or %% (of RAM for "
           "cache= and alloc=, of the cache for wipe=); times take h, m, s "
           "(plain number: seconds).\n");
}
