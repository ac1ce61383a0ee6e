/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback tests: common/vector.h.
 *
 * A zeroed vector is empty; appends keep every element in order and
 * grow the capacity by doubling from VECTOR_FIRST_CAP; reserve makes
 * room without changing len, so appends into it do not move the
 * array; a request whose size overflows fails with ENOMEM and leaves
 * the vector as it was; reset frees and empties.
 */
#undef NDEBUG
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vector.h"

DEFINE_VECTOR (int_vector, int);

struct pair {
  uint64_t a;
  char name[8];
};
DEFINE_VECTOR (pair_vector, struct pair);

struct big {
  char b[1024];
};
DEFINE_VECTOR (big_vector, struct big);

static bool
is_doubled_first_cap (size_t cap)
{
  size_t c = VECTOR_FIRST_CAP;

  while (c < cap)
    c *= 2;
  return c == cap;
}

static void
test_append (void)
{
  struct int_vector v = { 0 };
  size_t reallocs = 0, cap = 0;

  assert (v.ptr == NULL && v.len == 0 && v.cap == 0);
  for (int i = 0; i < 10000; i++) {
    assert (int_vector_append (&v, i * 3) == 0);
    assert (v.len == (size_t) i + 1);
    assert (v.cap >= v.len && is_doubled_first_cap (v.cap));
    if (v.cap != cap) {
      reallocs++;
      cap = v.cap;
    }
  }
  for (int i = 0; i < 10000; i++)
    assert (v.ptr[i] == i * 3);
  /* 16, 32, ... 16384: amortised doubling, not one realloc an append. */
  assert (reallocs == 11);
  assert (v.cap == 16384);

  /* Emptied by len = 0, the memory stays. */
  v.len = 0;
  assert (int_vector_append (&v, 7) == 0);
  assert (v.cap == 16384 && v.len == 1 && v.ptr[0] == 7);

  int_vector_reset (&v);
  assert (v.ptr == NULL && v.len == 0 && v.cap == 0);
  int_vector_reset (&v);        /* twice is fine */
}

static void
test_reserve (void)
{
  struct pair_vector v = { 0 };
  struct pair *before;

  assert (pair_vector_reserve (&v, 0) == 0);
  assert (v.cap == 0);
  assert (pair_vector_reserve (&v, 1) == 0);
  assert (v.cap == VECTOR_FIRST_CAP && v.len == 0);
  assert (pair_vector_reserve (&v, 100) == 0);
  assert (v.cap == 128 && v.len == 0);

  /* Appends into reserved room do not move the array. */
  before = v.ptr;
  for (uint64_t i = 0; i < 128; i++) {
    struct pair p = { .a = i };
    snprintf (p.name, sizeof p.name, "p%" PRIu64, i);
    assert (pair_vector_append (&v, p) == 0);
  }
  assert (v.ptr == before && v.len == 128 && v.cap == 128);
  assert (v.ptr[127].a == 127 && strcmp (v.ptr[127].name, "p127") == 0);

  /* Room already there: nothing changes. */
  v.len = 28;
  assert (pair_vector_reserve (&v, 100) == 0);
  assert (v.ptr == before && v.cap == 128);
  /* One more than there is room for doubles. */
  assert (pair_vector_reserve (&v, 101) == 0);
  assert (v.cap == 256 && v.len == 28);
  assert (v.ptr[27].a == 27 && strcmp (v.ptr[27].name, "p27") == 0);
  pair_vector_reset (&v);
}

/* Sizes that do not fit in size_t fail before realloc is asked. */
static void
test_overflow (void)
{
  struct int_vector v = { 0 };
  struct big_vector b = { 0 };

  assert (int_vector_append (&v, 1) == 0);
  errno = 0;
  assert (int_vector_reserve (&v, SIZE_MAX) == -1);
  assert (errno == ENOMEM);
  errno = 0;
  assert (int_vector_reserve (&v, SIZE_MAX / 2 + 2) == -1);
  assert (errno == ENOMEM);
  assert (v.len == 1 && v.cap == VECTOR_FIRST_CAP && v.ptr[0] == 1);
  int_vector_reset (&v);

  errno = 0;
  assert (big_vector_reserve (&b, SIZE_MAX / sizeof (struct big) + 1) == -1);
  assert (errno == ENOMEM);
  assert (b.ptr == NULL && b.len == 0 && b.cap == 0);
}

int
main (void)
{
  test_append ();
  test_reserve ();
  test_overflow ();
  printf ("unit-vector: ok\n");
  return 0;
}
