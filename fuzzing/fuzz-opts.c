/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the devb-loopback option parser (opts/).
 *
 * The input is a command line: words separated by NUL or newline,
 * given to opts_parse_words as the daemon gives its argv, or, when the
 * first byte is '@', each line given to opts_parse_group as the nbdkit
 * plugin gives its loopback=/blk= keys ("loopback:TEXT" or
 * "blk:TEXT").  Then opts_finish, --dump-config's printer and the
 * export descriptions run on whatever configuration came out.  Any
 * crash, leak, sanitizer report or hang is a bug; a rejected command
 * line is not.  Percentages resolve against a fixed 8 GiB so runs are
 * reproducible.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "opts.h"

#define MAX_WORDS 64

static void
quiet (enum log_level level, const char *msg)
{
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static FILE *devnull;
  char *text, *words[MAX_WORDS], *save = NULL, *w;
  int nwords = 0, r = 0;
  struct opts *o;
  struct config *cfg;
  char *err = NULL;
  bool groups = size > 0 && data[0] == '@';

  if (size > 4096)
    return 0;
  if (devnull == NULL) {
    devnull = fopen ("/dev/null", "w");
    log_set_sink (quiet);
  }
  text = malloc (size + 1);
  if (text == NULL)
    return 0;
  memcpy (text, data, size);
  text[size] = '\0';
  /* NULs become line ends: words may not contain them. */
  for (size_t i = 0; i < size; i++)
    if (text[i] == '\0')
      text[i] = '\n';

  o = opts_new ();
  if (o == NULL) {
    free (text);
    return 0;
  }
  opts_set_physical_memory (o, UINT64_C(8) << 30);
  for (w = strtok_r (text + groups, "\n", &save); w && nwords < MAX_WORDS;
       w = strtok_r (NULL, "\n", &save)) {
    if (groups) {
      int group = strncmp (w, "blk:", 4) == 0 ? OPTS_GROUP_BLK
        : OPTS_GROUP_LOOPBACK;
      char *value = strchr (w, ':') ? strchr (w, ':') + 1 : w;

      r = opts_parse_group (o, group, value, &err);
      if (r == -1)
        break;
      nwords++;
    }
    else
      words[nwords++] = w;
  }
  if (!groups && r == 0)
    r = opts_parse_words (o, nwords, words, &err);
  if (r == 0 && (cfg = opts_finish (o, &err)) != NULL) {
    config_dump (cfg, devnull, NULL);
    for (size_t i = 0; i < cfg->nr_exports; i++)
      free (export_description (&cfg->exports[i], 1 << 20,
                                cfg->exports[i].access == ACCESS_RO, 512));
    free (export_description (NULL, cfg->blk.ramdisk, false,
                              cfg->blk.ramdisk_sector));
    config_free (cfg);
  }
  free (err);
  opts_free (o);
  free (text);
  return 0;
}
