/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: numbers, sizes and times as QNX spells them.
 *
 * Sizes: a decimal integer and an optional case-insensitive suffix,
 * b (bytes), k, m, g (binary multiples), p (pages) or % (of physical
 * memory or of the cache, resolved later by the caller).  Times: a
 * decimal number, fractions allowed, and an optional h, m or s; a
 * plain number is seconds.  Everything is checked for overflow.
 */
#include <config.h>

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The longest time any option accepts: one week. */
#define MAX_TIME_MS (7ULL * 24 * 3600 * 1000)

/* Parse the leading decimal digits of s into *v; returns the number
 * of digits, 0 if none, -1 on overflow.
 */
static int
parse_digits (const char *s, uint64_t *v)
{
  int n = 0;

  *v = 0;
  while (isdigit ((unsigned char) s[n])) {
    unsigned d = s[n] - '0';
    if (*v > (UINT64_MAX - d) / 10)
      return -1;
    *v = *v * 10 + d;
    n++;
  }
  return n;
}

int
parse_uint (const char *s, uint64_t min, uint64_t max, uint64_t *out,
            const char **why)
{
  uint64_t v;
  int n = parse_digits (s, &v);

  if (n == -1 || (n > 0 && s[n] == '\0' && v > max)) {
    *why = "number out of range";
    return -1;
  }
  if (n == 0 || s[n] != '\0') {
    *why = "expected a non-negative decimal integer";
    return -1;
  }
  if (v < min) {
    *why = "number out of range";
    return -1;
  }
  *out = v;
  return 0;
}

int
parse_size (const char *s, unsigned flags, struct size_value *out,
            const char **why)
{
  uint64_t v, mult = 1;
  int n = parse_digits (s, &v);

  if (n == -1) {
    *why = "size too large";
    return -1;
  }
  if (n == 0) {
    *why = "expected a size: a number with an optional suffix b, k, m, g or p";
    return -1;
  }
  out->percent = false;
  switch (tolower ((unsigned char) s[n])) {
  case '\0': mult = 1; break;
  case 'b': mult = 1; break;
  case 'k': mult = 1024; break;
  case 'm': mult = 1024 * 1024; break;
  case 'g': mult = 1024 * 1024 * 1024; break;
  case 'p': mult = sysconf (_SC_PAGESIZE); break;
  case '%':
    if (!(flags & SIZE_ALLOW_PERCENT)) {
      *why = "a percentage is not allowed here";
      return -1;
    }
    if (v > 100) {
      *why = "a percentage must be at most 100%";
      return -1;
    }
    out->percent = true;
    break;
  default:
    *why = "unknown size suffix (use b, k, m, g, p or %)";
    return -1;
  }
  if (s[n] != '\0' && s[n + 1] != '\0') {
    *why = "unexpected characters after the size suffix";
    return -1;
  }
  if (v > UINT64_MAX / mult) {
    *why = "size too large";
    return -1;
  }
  out->value = out->percent ? v : v * mult;
  return 0;
}

int
parse_time_ms (const char *s, uint64_t *ms, const char **why)
{
  uint64_t whole, frac = 0, frac_scale = 1, unit;
  int n = parse_digits (s, &whole), i = 0;

  if (n == -1 || whole > MAX_TIME_MS) {
    *why = "time too long (at most 168h)";
    return -1;
  }
  if (n == 0) {
    *why = "expected a time: a number with an optional suffix h, m or s";
    return -1;
  }
  if (s[n] == '.') {
    n++;
    /* Milliseconds are the resolution; further digits must be zero. */
    for (i = 0; isdigit ((unsigned char) s[n]); i++, n++) {
      if (i < 3) {
        frac = frac * 10 + (s[n] - '0');
        frac_scale *= 10;
      }
    }
    if (i == 0) {
      *why = "expected digits after the decimal point";
      return -1;
    }
  }
  switch (tolower ((unsigned char) s[n])) {
  case '\0': case 's': unit = 1000; break;
  case 'm': unit = 60 * 1000; break;
  case 'h': unit = 3600 * 1000; break;
  default:
    *why = "unknown time suffix (use h, m or s)";
    return -1;
  }
  if (s[n] != '\0' && s[n + 1] != '\0') {
    *why = "unexpected characters after the time suffix";
    return -1;
  }
  if (whole > MAX_TIME_MS / unit) {
    *why = "time too long (at most 168h)";
    return -1;
  }
  *ms = whole * unit + frac * unit / frac_scale;
  if (*ms > MAX_TIME_MS) {
    *why = "time too long (at most 168h)";
    return -1;
  }
  return 0;
}

int
split_fields (char *s, char **fields, int max)
{
  int n = 0;

  for (int i = 0; i < max; i++)
    fields[i] = NULL;
  for (;;) {
    char *colon = strchr (s, ':');
    if (n == max)
      return -1;
    fields[n++] = s;
    if (colon == NULL)
      return n;
    *colon = '\0';
    s = colon + 1;
  }
}
