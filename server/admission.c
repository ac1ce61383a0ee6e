/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: room for connections still in their handshake.
 *
 * A client that connects and never finishes the handshake costs a
 * socket, a slot of --max-connections and an input buffer until
 * --timeout ends it; a thousand of them, reopened as they are closed,
 * would keep everyone else out.  So connections in the handshake have
 * a budget of their own, --max-handshakes in all and
 * --max-handshakes-per-address from one address (one user, for the
 * Unix socket).  A new connection over either limit makes room by
 * closing one waiting in the same group: the oldest of those that have
 * sent nothing at all, else of those that have sent nothing for a
 * second, else simply the oldest.  A real client answers the greeting
 * at once and finishes its handshake in milliseconds, so under such an
 * attack it is the silent ones that go.
 *
 * The list is process-wide (loops accept in turn), under one mutex.
 * A connection is closed by its own loop: it is marked and handed to
 * that loop with loop_attention, while the mutex still guarantees it
 * exists (conn_free takes it off the list first).
 */
#include <config.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cleanup.h"
#include "internal.h"
#include "log.h"

#define IDLE_MS 1000            /* "has sent nothing for a second" */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct connection *head, *tail;  /* oldest first */
static unsigned count;
static uint64_t evictions;              /* atomic */

static uint64_t
now_ms (void)
{
  return (uint64_t) (ev_time () * 1000);
}

/* What --max-handshakes-per-address counts by: the IP address of a
 * TCP client, the user of a Unix-socket one.
 */
static void
set_key (struct connection *conn)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;

  if (getpeername (conn->fd, (struct sockaddr *) &ss, &len) == -1) {
    snprintf (conn->addr_key, sizeof conn->addr_key, "?");
    return;
  }
  switch (ss.ss_family) {
  case AF_INET:
    inet_ntop (AF_INET, &((struct sockaddr_in *) &ss)->sin_addr,
               conn->addr_key, sizeof conn->addr_key);
    break;
  case AF_INET6:
    inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr,
               conn->addr_key, sizeof conn->addr_key);
    break;
  case AF_UNIX: {
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt (conn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
      snprintf (conn->addr_key, sizeof conn->addr_key, "uid %ld",
                (long) cred.uid);
    else
      snprintf (conn->addr_key, sizeof conn->addr_key, "unix");
    break;
  }
  default:
    snprintf (conn->addr_key, sizeof conn->addr_key, "family %d",
              ss.ss_family);
  }
}

static void
unlink_locked (struct connection *conn)
{
  if (conn->hs_prev)
    conn->hs_prev->hs_next = conn->hs_next;
  else
    head = conn->hs_next;
  if (conn->hs_next)
    conn->hs_next->hs_prev = conn->hs_prev;
  else
    tail = conn->hs_prev;
  conn->hs_prev = conn->hs_next = NULL;
  conn->hs_listed = false;
  count--;
}

/* The connection to close among those waiting (same key as key if
 * key is not NULL), other than newcomer: the oldest silent one, else
 * the oldest idle one, else the oldest.
 */
static struct connection *
pick_locked (const struct connection *newcomer, const char *key)
{
  uint64_t t = now_ms ();
  struct connection *oldest = NULL, *idle = NULL;

  for (struct connection *c = head; c; c = c->hs_next) {
    uint64_t last;

    if (c == newcomer || (key && strcmp (c->addr_key, key) != 0))
      continue;
    last = __atomic_load_n (&c->hs_last_input_ms, __ATOMIC_RELAXED);
    if (last == 0)
      return c;                 /* has sent nothing: the first choice */
    if (oldest == NULL)
      oldest = c;
    if (idle == NULL && t - last >= IDLE_MS)
      idle = c;
  }
  return idle ? idle : oldest;
}

static void
evict_locked (struct connection *victim, const char *why)
{
  unlink_locked (victim);
  victim->hs_evicted_why = why;
  __atomic_store_n (&victim->hs_evicted, true, __ATOMIC_RELEASE);
  __atomic_add_fetch (&evictions, 1, __ATOMIC_RELAXED);
  loop_attention (victim->loop, victim);
}

void
admission_enter (struct connection *conn)
{
  unsigned same = 0;

  set_key (conn);
  conn->hs_last_input_ms = 0;   /* nothing received yet */
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  conn->hs_prev = tail;
  conn->hs_next = NULL;
  if (tail)
    tail->hs_next = conn;
  else
    head = conn;
  tail = conn;
  conn->hs_listed = true;
  count++;

  for (struct connection *c = head; c; c = c->hs_next)
    same += strcmp (c->addr_key, conn->addr_key) == 0;
  if (same > opt.max_handshakes_per_address) {
    struct connection *v = pick_locked (conn, conn->addr_key);
    if (v)
      evict_locked (v, "--max-handshakes-per-address");
  }
  if (count > opt.max_handshakes) {
    struct connection *v = pick_locked (conn, NULL);
    if (v)
      evict_locked (v, "--max-handshakes");
  }
}

void
admission_leave (struct connection *conn)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  if (conn->hs_listed)
    unlink_locked (conn);
}

void
admission_note_input (struct connection *conn)
{
  __atomic_store_n (&conn->hs_last_input_ms, now_ms (), __ATOMIC_RELAXED);
}

/* Under attack there are thousands a second: one line, then a count
 * every LOG_EVERY_MS at most, so the log cannot be flooded.
 */
#define LOG_EVERY_MS 10000

bool
admission_evicted (struct connection *conn)
{
  static uint64_t last_log_ms, unlogged;        /* under lock */
  uint64_t t, more = 0;
  bool log_it = false;

  if (!__atomic_load_n (&conn->hs_evicted, __ATOMIC_ACQUIRE))
    return false;
  t = now_ms ();
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
    if (last_log_ms == 0 || t - last_log_ms >= LOG_EVERY_MS) {
      log_it = true;
      more = unlogged;
      unlogged = 0;
      last_log_ms = t;
    }
    else
      unlogged++;
  }
  if (log_it) {
    char since[80] = "";

    if (more)
      snprintf (since, sizeof since, "; %" PRIu64 " more since the last "
                "such message", more);
    log_warning ("conn %" PRIu64 " (%s): closed before it finished the "
                 "handshake, to make room for a newer one (%s %u)%s",
                 conn->id, conn->peer, conn->hs_evicted_why,
                 strcmp (conn->hs_evicted_why, "--max-handshakes") == 0
                 ? opt.max_handshakes : opt.max_handshakes_per_address,
                 since);
  }
  return true;
}

uint64_t
admission_evictions (void)
{
  return __atomic_load_n (&evictions, __ATOMIC_RELAXED);
}
