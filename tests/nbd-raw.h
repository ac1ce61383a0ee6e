/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-raw: the NBD protocol spoken by hand, for the test clients that
 * must see every byte or break the rules no real client breaks
 * (client-raw, client-extended, client-tls-raw, hostile-client).
 *
 * The wire format itself is server/protocol.h; this is the client's
 * side of it: connect, the fixed-newstyle greeting, options and their
 * replies, requests and simple replies.  Every function that fails
 * calls raw_die(), which names the program and mode and exits 1: a
 * test client has nothing to recover.  A connection is plain sockets
 * unless a TLS client sets its ops after STARTTLS, so OpenSSL stays in
 * client-tls-raw.c.
 */
#ifndef NBDL_TESTS_NBD_RAW_H
#define NBDL_TESTS_NBD_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"

/* raw_die() prints "PROGRAM MODE: message" (after raw_die_prefix, if
 * set) and calls raw_die_hook (if set) before exiting 1.
 */
extern const char *raw_program;
extern const char *raw_mode;
extern const char *raw_die_prefix;
extern void (*raw_die_hook) (void);

void raw_die (const char *fs, ...)
  __attribute__ ((noreturn, format (printf, 1, 2)));

struct raw_conn;

/* How a connection moves bytes when not over the plain socket.  Both
 * return the bytes moved, 0 for EOF (recv) or -1 with errno set.
 */
struct raw_ops {
  ssize_t (*send) (struct raw_conn *c, const void *buf, size_t len);
  ssize_t (*recv) (struct raw_conn *c, void *buf, size_t len);
};

struct raw_conn {
  int fd;
  const struct raw_ops *ops;    /* NULL: send(2) and recv(2) on fd */
  void *tls;                    /* for ops */
};

/* Connecting.  An address is a Unix socket path, or TCP as
 * tcp:HOST:PORT, HOST:PORT or [HOST]:PORT (numeric hosts; a path with
 * a '/' is always a socket).  source, if not NULL, is the numeric
 * address the client's end binds to first.
 */
int raw_connect (const char *address, const char *source);
void raw_timeouts (int fd, int recv_s, int send_s);

/* Bytes.  raw_recv_all returns false if the server closed (or reset)
 * the connection before the first byte; EOF later, a timeout or an
 * error is fatal.
 */
void raw_send_all (struct raw_conn *c, const void *buf, size_t len);
bool raw_recv_all (struct raw_conn *c, void *buf, size_t len);
void raw_expect_recv (struct raw_conn *c, void *buf, size_t len,
                      const char *what);
/* The server must close now, sending nothing more. */
void raw_expect_eof (struct raw_conn *c, const char *why);
/* The server must close; whatever it sends first is read and dropped. */
void raw_expect_hangup (struct raw_conn *c, const char *why);

/* Unaligned big-endian fields. */
uint16_t raw_get16 (const void *p);
uint32_t raw_get32 (const void *p);
uint64_t raw_get64 (const void *p);

/* The handshake.  raw_greeting reads the server's greeting, sends
 * client_flags and returns the handshake flags.
 */
uint16_t raw_greeting (struct raw_conn *c, uint32_t client_flags);
void raw_send_option (struct raw_conn *c, uint32_t option,
                      const void *data, uint32_t len);
/* Reads replies to option up to the final one and returns its type;
 * the transmission flags of an NBD_INFO_EXPORT go to *tflags if not
 * NULL.
 */
uint32_t raw_option_reply (struct raw_conn *c, uint32_t option,
                           uint16_t *tflags);
/* Sends an option and dies unless the final reply is want. */
void raw_option_expect (struct raw_conn *c, uint32_t option,
                        const void *data, uint32_t len, uint32_t want,
                        const char *what);
/* The data of LIST_ or SET_META_CONTEXT: the default export and n
 * queries.  Returns its length.
 */
size_t raw_meta_context_data (char *buf, size_t size,
                              const char *const *queries, size_t n);
/* NBD_OPT_GO to the default export; returns the transmission flags. */
uint16_t raw_go (struct raw_conn *c);
/* NBD_OPT_EXPORT_NAME (the server agreed to NO_ZEROES); returns the
 * export size, and the transmission flags in *tflags if not NULL.
 */
uint64_t raw_export_name (struct raw_conn *c, const char *name,
                          uint16_t *tflags);

/* Transmission, compact headers. */
void raw_make_request (struct nbd_request *r, uint16_t type, uint16_t flags,
                       uint64_t cookie, uint64_t offset, uint32_t count);
void raw_request (struct raw_conn *c, uint16_t type, uint16_t flags,
                  uint64_t cookie, uint64_t offset, uint32_t count);
/* Reads a simple reply (checking its magic) into host order; returns
 * its error.
 */
uint32_t raw_read_simple_reply (struct raw_conn *c, uint64_t *cookie);
/* The same, and the reply must be to cookie. */
uint32_t raw_simple_reply (struct raw_conn *c, uint64_t cookie);

/* Transmission, extended headers: the header, then plen bytes. */
void raw_request_ext (struct raw_conn *c, uint16_t type, uint16_t flags,
                      uint64_t cookie, uint64_t offset, uint64_t length,
                      const void *payload, size_t plen);

#endif /* NBDL_TESTS_NBD_RAW_H */
