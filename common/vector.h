/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback: the one growable array.
 *
 * DEFINE_VECTOR (name, type); defines
 *
 *   struct name { type *ptr; size_t len, cap; };
 *
 * and, on it:
 *
 *   int name_reserve (struct name *v, size_t n);
 *       Room for n more elements past len.
 *   int name_append (struct name *v, type elem);
 *       elem added at ptr[len], len one more.
 *   void name_reset (struct name *v);
 *       The array freed, the vector empty again.
 *
 * reserve and append return 0, or -1 with errno ENOMEM (the vector is
 * unchanged then).  A zeroed struct is an empty vector; setting len to
 * 0 empties it and keeps the memory.  The capacity starts at
 * VECTOR_FIRST_CAP elements and doubles, so n appends copy O(n)
 * elements.  Growing moves the array: pointers into ptr do not
 * survive a reserve or an append.  Elements that own memory are the
 * caller's to free before reset.  Nothing here locks.
 */
#ifndef NBDL_VECTOR_H
#define NBDL_VECTOR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define VECTOR_FIRST_CAP 16

/* The capacity for len + n elements of size elem (cap now): cap, or
 * cap doubled (from VECTOR_FIRST_CAP) until it is enough.  0 with
 * errno ENOMEM if that overflows.
 */
static inline size_t
vector_grown_cap (size_t len, size_t cap, size_t n, size_t elem)
{
  size_t want = len + n;

  if (want < len)
    goto overflow;
  if (cap == 0)
    cap = VECTOR_FIRST_CAP;
  while (cap < want) {
    if (cap > SIZE_MAX / 2)
      goto overflow;
    cap *= 2;
  }
  if (cap > SIZE_MAX / elem)
    goto overflow;
  return cap;

 overflow:
  errno = ENOMEM;
  return 0;
}

#define DEFINE_VECTOR(name, type)                                       \
  struct name {                                                         \
    type *ptr;                                                          \
    size_t len, cap;                                                    \
  };                                                                    \
                                                                        \
  static inline __attribute__ ((unused)) int                            \
  name##_reserve (struct name *v, size_t n)                             \
  {                                                                     \
    size_t cap;                                                         \
    type *p;                                                            \
                                                                        \
    if (n <= v->cap - v->len)                                           \
      return 0;                                                         \
    cap = vector_grown_cap (v->len, v->cap, n, sizeof (type));          \
    if (cap == 0)                                                       \
      return -1;                                                        \
    p = realloc (v->ptr, cap * sizeof (type));                          \
    if (p == NULL) {                                                    \
      errno = ENOMEM;                                                   \
      return -1;                                                        \
    }                                                                   \
    v->ptr = p;                                                         \
    v->cap = cap;                                                       \
    return 0;                                                           \
  }                                                                     \
                                                                        \
  static inline __attribute__ ((unused)) int                            \
  name##_append (struct name *v, type elem)                             \
  {                                                                     \
    if (v->len == v->cap && name##_reserve (v, 1) == -1)                \
      return -1;                                                        \
    v->ptr[v->len++] = elem;                                            \
    return 0;                                                           \
  }                                                                     \
                                                                        \
  static inline __attribute__ ((unused)) void                           \
  name##_reset (struct name *v)                                         \
  {                                                                     \
    free (v->ptr);                                                      \
    v->ptr = NULL;                                                      \
    v->len = v->cap = 0;                                                \
  }                                                                     \
  struct name

#endif /* NBDL_VECTOR_H */
