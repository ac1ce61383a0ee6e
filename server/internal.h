/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd-loopback daemon: declarations shared inside server/.
 *
 * One section per file, holding what that file owns.  The threads:
 *
 * - loop threads (loop.c): each runs a libev loop owning its sockets
 *   and the protocol state of its connections; loop 0 is the main
 *   thread and also owns the listening sockets, signals and --run;
 * - workers (workers.c): run requests that may wait for host I/O
 *   through the cache, then hand the reply to the connection;
 * - the device I/O threads and the cache flusher, owned by device/
 *   and cache/.
 *
 * Every thread but loop 0 has the handled signals blocked.
 *
 * Which file calls which: each line calls only the lines below it
 * (and its own), the top first, the bottom last.
 *
 *   main.c          start-up and the end: exports, loops
 *   cli.c           the command line: daemon options, the groups
 *   loop.c captive.c listen.c signals.c
 *                   running the loops and the daemon's control; these
 *                   four call each other: server_shutdown stops
 *                   listen.c and captive.c, which (with signals.c) ask
 *                   for it, and listen.c hands sockets to loop_adopt_fd
 *   handshake.c     the first phase (loop.c gives it to new
 *                   connections); installs transmission_phase
 *   request.c       the transmission phase on the loop: decoding, the
 *                   fast paths, handing requests off
 *   uring.c         host I/O through the loop's io_uring
 *   request-work.c  a request after the handoff: workers, I/O threads,
 *                   io_uring completions;  stats.c
 *   request-done.c  requests coming back;  connection.c
 *   output.c admission.c control.c daemon.c tls.c
 *   reply.c framing.c transport.c loop-state.c workers.c exports.c
 *   notify.c access.c tls-creds.c config-file.c log-syslog.c
 *
 * Calls go up only through tables and callbacks: connection.c drives
 * a phase through struct phase_ops and moves bytes through struct
 * transport_ops (tls.c), a worker runs a struct job, an I/O thread
 * calls its io_request's done.  The options (opt, config) and loops[]
 * are read everywhere: data set at start-up, not calls.
 */
#ifndef NBDL_SERVER_INTERNAL_H
#define NBDL_SERVER_INTERNAL_H

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <ev.h>

#include "cache.h"
#include "configuration.h"
#include "protocol.h"

/* Limits. */
#define MAX_REQUEST_SIZE    (64 * 1024 * 1024) /* largest READ/WRITE served */
#define MAX_PAYLOAD_ADVERTISED (32 * 1024 * 1024) /* NBD_INFO_BLOCK_SIZE max */
#define MAX_OPTION_LENGTH   (64 * 1024)        /* longer: NBD_REP_ERR_TOO_BIG */
#define CONN_MAX_INFLIGHT   128                /* requests at workers */
#define MAX_META_BITMAPS    8                  /* dirty bitmaps one
                                                  connection may select */
#define CONN_MAX_BUFFERED   (64 * 1024 * 1024) /* payload + reply bytes */
#define MAX_BUFFERED_DEFAULT (64 * 1024 * 1024) /* --max-buffered */
#define MAX_HANDSHAKES_DEFAULT 128
#define MAX_HANDSHAKES_PER_ADDRESS_DEFAULT 16
#define MALLOC_TRIM_BELOW   (1024 * 1024)      /* see give_memory_back */
#define CONN_INBUF_SIZE     (64 * 1024)
#define FASTPATH_MAX        (1024 * 1024)      /* reads served on the loop */
#define FASTPATH_PIN_MIN    (64 * 1024)        /* ... sent from the cache */
#define CONN_SEND_IOV       256                /* iovecs per sendmsg */
#define CONN_BATCH_SIZE     (64 * 1024)        /* a batch of small replies */
#define SPARSE_READ_MIN     (64 * 1024)        /* smaller: never OFFSET_HOLE */
#define MAX_CONNECTIONS_DEFAULT 1000
#define SHUTDOWN_GRACE      10.0               /* seconds to drain on SIGTERM */

/* ---- cli.c: daemon options (read-only once serving) ---- */

enum tls_mode {
  TLS_OFF,                      /* STARTTLS: NBD_REP_ERR_UNSUP */
  TLS_ON,                       /* clients choose */
  TLS_REQUIRE,                  /* nothing but STARTTLS/ABORT before TLS */
};

struct daemon_options {
  bool foreground;              /* -f, also implied by --run */
  const char *port;             /* -p, NULL: 10809 */
  const char *ipaddr;           /* -i, NULL: every address */
  const char *unix_path;        /* -U PATH, or "-" for a private socket */
  char *pidfile;                /* -P, made absolute */
  const char *run;              /* --run CMD */
  const char *exportname;       /* -e: the export --run's $uri names */
  double timeout;               /* --timeout: handshake limit, seconds */
  double stall_timeout;         /* --stall-timeout: unread replies */
  unsigned loops;               /* --loops: event loop threads */
  unsigned poll_us;             /* --poll: busy-poll after input, usec */
  unsigned max_connections;     /* --max-connections */
  bool socket_activation;       /* LISTEN_PID/LISTEN_FDS were ours */
  enum tls_mode tls;            /* --tls, resolved by check_daemon_options */
  const char *tls_certificates; /* --tls-certificates DIR */
  const char *tls_psk;          /* --tls-psk FILE */
  bool tls_verify_peer;         /* --tls-verify-peer */
  const char *stats_file;       /* --stats-file */
  const char *control;          /* --control: the control socket */
  bool readonly;                /* -r: every export read-only */
  bool exit_with_parent;        /* --exit-with-parent */
  bool print_uri;               /* --print-uri */
  uint64_t max_buffered;        /* --max-buffered: bytes held, all clients */
  unsigned max_handshakes;      /* --max-handshakes */
  unsigned max_handshakes_per_address;  /* --max-handshakes-per-address */
};
extern struct daemon_options opt;

/* captive.c: the NBD URI of export name on the listening socket
 * (nbd:// or nbd+unix://; scheme_tls: nbds:// and nbds+unix://).
 * Malloc'd, NULL if out of memory.
 */
extern char *server_uri (const char *name, bool scheme_tls);
extern const struct config *config;     /* main.c sets it from cli_parse */

/* cli.c: the command line (and --config-file) into opt and a
 * configuration; exits 1 with the reason on any error.  cli_dump_config
 * prints --dump-config and returns the exit status; cli_check applies
 * the rules between daemon options (after the configuration's -v).
 */
extern struct config *cli_parse (int argc, char **argv, bool *dump_config);
extern int cli_dump_config (const struct config *cfg);
extern void cli_check (void);

/* ---- daemon.c: detaching, pidfile, privileges ---- */

/* Fork; the parent waits until the child calls daemon_ready (exit 0)
 * or exits (exit 1).  The child runs on in a new session.
 */
extern void daemon_start (void);
/* Detach stdio, log to syslog and release the waiting parent. */
extern void daemon_ready (void);
extern int pidfile_write (void);
extern void pidfile_remove (void);
/* user=: setgroups/setgid/setuid.  Returns -1 (logged) on failure. */
extern int drop_privileges (const struct config *cfg);

/* ---- control.c: the control socket (--control) ---- */

/* Bind the socket (before forking; logs errors). */
extern int control_open (const char *path);
/* Serve it on a thread of its own, once the exports are open. */
extern int control_start (void);
/* Stop serving, close and remove the socket. */
extern void control_stop (void);
/* `nbd-loopback ctl SOCKET WORDS...`: the exit status. */
extern int control_client (int argc, char **argv);

/* ---- log-syslog.c ---- */

extern void log_to_syslog (void);

/* ---- exports.c: the export table ---- */

struct export {
  /* Borrowed from exports.c's struct export_set. */
  char *name;                   /* "lo0", ..., "ram0" */
  char *description;            /* for LIST and NBD_INFO_DESCRIPTION */
  struct device *dev;           /* NULL for ram0 */
  struct cache_export *ce;      /* from cache_export_open{,_ram} */
  uint64_t size;
  uint32_t blksz;
  bool readonly;
  bool can_fua;
  int uring_fd;                 /* host fd an io_uring may read, or -1 */
  /* Counters, updated with atomics, reported by stats.c. */
  uint64_t fastpath_reads;      /* reads answered on a loop thread */
  uint64_t zero_copy_reads;     /* ... of them sent from cache blocks */
  uint64_t fastpath_writes;     /* writes answered on a loop thread */
  uint64_t worker_requests;     /* requests handed to workers */
  uint64_t host_io_requests;    /* misses and durable writes done in
                                   one hop: an I/O thread or io_uring */
  uint64_t uring_reads;         /* ... READs through the loop's io_uring */
  uint64_t uring_writes;        /* ... durable WRITEs through it */
  uint64_t uring_syncs;         /* ... and the fdatasyncs for them */
  uint64_t request_errors;      /* error replies (reply_error) */
};
extern struct export *exports;
extern size_t nr_exports;

/* export_set_open_devices and export_set_open_cache (export-set.h),
 * then exports[] filled in.  -1 (logged) on failure.
 */
extern int exports_open_devices (const struct config *cfg);
extern int exports_open_cache (const struct config *cfg);
/* Write everything back and close: caches, cache_shutdown, I/O
 * threads, devices.  Returns -1 if any write-back failed.
 */
extern int exports_close (void);
/* NULL if unknown; the empty name is the first export. */
extern struct export *export_find (const char *name, size_t len);
extern uint16_t export_transmission_flags (const struct export *exp,
                                           bool structured);

/* ---- listen.c: listening sockets ---- */

extern int listen_open (void);
extern void listen_start (struct ev_loop *ev);
extern void listen_stop (void);
extern void listen_cleanup (void);
extern const char *listen_unix_path (void);   /* NULL if TCP */
extern int listen_tcp_port (void);             /* -1 if none */
extern const char *listen_tcp_host (void);     /* for $uri */

/* ---- loop.c: event loop threads ---- */

struct connection;

struct loop {
  unsigned index;
  struct ev_loop *ev;
  pthread_t thread;             /* not used for loop 0 */
  ev_async wake;                /* anything below changed */
  ev_timer grace;               /* SIGTERM: drop stragglers after this */
  ev_idle poll;                 /* active: poll for input, do not sleep */
  ev_tstamp poll_until;

  pthread_mutex_t lock;         /* guards the fields down to the blank */
  struct connection *attention; /* list of connections to look at */
  int *new_fds;                 /* accepted sockets handed to this loop */
  size_t nr_new_fds, cap_new_fds;
  bool stop;                    /* server shutting down */

  /* Loop thread only. */
  struct connection *conns;     /* doubly linked list of connections */
  size_t nr_conns;
  bool stopping;
  bool waits_for_child;         /* loop 0: the --run child runs (captive.c) */
  struct uring *uring;          /* host reads of misses, or NULL (uring.c) */
};

extern struct loop *loops;
extern unsigned nr_loops;

extern int loops_init (unsigned n);
extern int loops_start_threads (void);
/* Run loop 0 on the calling thread until the server stopped and every
 * loop has closed its connections; then join the other loops.
 */
extern void loops_run (void);
extern void loops_free (void);
/* An accepted socket: pick a loop and hand it over (loop 0 only). */
extern void loop_adopt_fd (int fd);
/* Begin the orderly shutdown (loop 0 only). */
extern void server_shutdown (void);

/* ---- loop-state.c: what the rest of the server asks of a loop ---- */

extern bool server_is_shutting_down (void);
/* Loop 0 (server_shutdown): note that the shutdown began; false if it
 * already had.
 */
extern bool server_begin_shutdown (void);

/* Ask a loop to look at a connection (any thread; conn->lock held). */
extern void loop_attention (struct loop *loop, struct connection *conn);
/* Loop thread: take a freed connection off the attention list. */
extern void loop_forget (struct loop *loop, struct connection *conn);
/* Loop thread: input arrived; poll (--poll) rather than sleep for a
 * while, as the next request is likely close behind.
 */
extern void loop_note_input (struct loop *loop);
/* loops_init: set up the poll watcher loop_note_input starts. */
extern void loop_poll_init (struct loop *loop);
/* A stopping loop ends once its connections (and for loop 0 the
 * captive child) are gone.
 */
extern void loop_maybe_finish (struct loop *loop);

/* ---- transport.c: how bytes move (plain sockets; tls.c for TLS) ---- */

struct transport_ops {
  const char *name;
  /* Return bytes moved, 0 on EOF (recv), -1 with errno (EAGAIN when
   * the socket is not ready).
   */
  ssize_t (*recv) (struct connection *conn, void *buf, size_t len);
  ssize_t (*send) (struct connection *conn, const struct iovec *iov,
                   int iovcnt);
  /* Bytes already decrypted but not yet returned by recv. */
  bool (*pending) (struct connection *conn);
  void (*shutdown) (struct connection *conn);
  /* Release the transport's state (conn_free); NULL if none. */
  void (*free) (struct connection *conn);
  /* May a worker thread call send directly (under conn->lock)? */
  bool send_from_any_thread;
};
extern const struct transport_ops plain_transport;
/* Is err what a socket says once the peer's host stopped answering
 * (--stall-timeout's TCP options gave up)?  Then log that, once.
 */
extern bool peer_vanished (int err);
extern void log_peer_vanished (struct connection *conn);

/* ---- reply.c: outgoing messages and errors ---- */

/* One message queued on a connection: a reply, or option replies.
 * Small headers live in the arena after the struct; data buffers are
 * referenced and freed once the message has been sent.
 */
struct outmsg {
  struct outmsg *next;
  void *data;                   /* freed once sent, or NULL */
  size_t acct;                  /* bytes to take off conn->buffered */
  size_t niov, max_iov;
  size_t cur;                   /* first iovec not completely sent */
  size_t hdr_used, hdr_cap;
  struct iovec *iov;
  char *hdr;
  struct cache_pin **pins;      /* cache blocks the iovecs point into, */
  size_t npins;                 /* given back once sent (or dropped) */
  bool reusable;                /* a batch buffer: kept once sent */
};

extern struct outmsg *outmsg_new (size_t max_iov, size_t hdr_cap);
extern void outmsg_free (struct outmsg *msg);
/* Reserve len bytes of header and add them as the next iovec. */
extern void *outmsg_put (struct outmsg *msg, size_t len);
extern void outmsg_put_data (struct outmsg *msg, const void *buf, size_t len);
extern size_t outmsg_bytes (const struct outmsg *msg);

/* The one errno to NBD error map. */
extern uint32_t nbd_errno (int err, uint16_t cmd_flags);

struct request;
/* Success without data: a simple reply (with extended headers, a
 * NBD_REPLY_TYPE_NONE chunk: they have no simple replies).
 */
extern struct outmsg *reply_ok (const struct request *req);
/* An error, structured (with the message) when negotiated. */
extern struct outmsg *reply_error (const struct request *req, bool structured,
                                   int err, const char *msg);
/* Replies written into a buffer of the caller's (a batch): the
 * header of a successful READ reply (data follows it; size from
 * reply_read_header_size), and a simple reply.
 */
extern size_t reply_read_header_size (const struct request *req,
                                      bool structured);
extern void reply_read_header (void *p, const struct request *req,
                               bool structured);
/* A simple reply (with extended headers: a NONE or ERROR chunk, which
 * replaces it) of reply_simple_size bytes.
 */
extern size_t reply_simple_size (const struct request *req, uint32_t error);
extern void reply_simple_header (void *p, const struct request *req,
                                 uint32_t error);
/* A READ reply of at most MAX_PAYLOAD_ADVERTISED bytes with room for
 * the data inside the message (one allocation, one iovec): *data is
 * where to read it to.
 */
extern struct outmsg *reply_read_inline (const struct request *req,
                                         bool structured, void **data);
/* A READ reply whose data the cache describes in place
 * (cache_read_pinned): the header is written; the iovecs from
 * msg->niov on, up to max_iov, and msg->pins (room for pins) are for
 * the cache to fill.  count must be at most MAX_PAYLOAD_ADVERTISED.
 */
extern struct outmsg *reply_read_pinned (const struct request *req,
                                         bool structured, size_t pins);
/* The data of a READ, whole (a simple reply, or OFFSET_DATA chunks);
 * takes buf (freed when sent).
 */
extern struct outmsg *reply_read_data (const struct request *req,
                                       bool structured, void *buf);

/* A run of a sparse READ: data (at buf + offset - req->offset) or a
 * hole.
 */
struct read_run {
  uint64_t offset;
  uint64_t length;
  bool hole;
};
extern struct outmsg *reply_read_runs (const struct request *req, void *buf,
                                       const struct read_run *runs,
                                       size_t nr_runs);
/* One extent of a BLOCK_STATUS reply, in host byte order: sent as
 * 32-bit descriptors, or 64-bit ones with extended headers.
 */
struct status_extent {
  uint64_t length;
  uint32_t status;              /* NBD_STATE_* */
};
/* One chunk per context, the last one flagged DONE. */
struct status_reply {
  uint32_t context_id;
  const struct status_extent *d;
  size_t nr;
};
extern struct outmsg *reply_block_status (const struct request *req,
                                          const struct status_reply *parts,
                                          size_t nparts);

/* ---- workers.c: the request worker pool (blk thread=) ---- */

struct job {
  struct job *next;
  void (*run) (struct job *job);
};

extern int workers_start (unsigned max, unsigned low, unsigned high);
extern void workers_submit (struct job *job);
extern void workers_stop (void);

/* ---- connection.c: one client ---- */

/* What the phase a connection is in does with it, as transport_ops is
 * for bytes: connection.c drives the handshake (handshake.c) and then
 * transmission (request.c) only through this.
 * Set by conn_new (the first phase, from the loop) and
 * conn_enter_transmission; loop thread only, and fixed before any
 * worker sees the connection.
 */
struct phase_ops {
  const char *name;
  /* The phase begins: queue what the server says first (or NULL). */
  void (*start) (struct connection *conn);
  /* Consume buffered input; -1 drops the connection. */
  int (*input) (struct connection *conn);
  /* The payload of conn->rx_req has all arrived (transmission only). */
  void (*payload_done) (struct connection *conn);
  /* conn_free: release what the phase holds. */
  void (*free) (struct connection *conn);
};

enum conn_phase {
  PHASE_HANDSHAKE,              /* handshake.c has the input */
  PHASE_TRANSMISSION,           /* request.c has the input */
  PHASE_FINISHING,              /* no more input: answer what is in flight */
  PHASE_DEAD,                   /* nothing more is sent; free when idle */
};

/* The handshake's named states (handshake.c). */
enum hs_state {
  HS_CLIENT_FLAGS,              /* waiting for the 32-bit client flags */
  HS_OPTION,                    /* waiting for a 16-byte option header */
  HS_OPTION_DATA,               /* collecting the option's data */
  HS_OPTION_SKIP,               /* discarding an over-long option */
  HS_DONE,                      /* transmission entered, or closing */
};

struct request;

struct connection {
  /* Set when created, read-only afterwards. */
  struct loop *loop;
  int fd;
  uint64_t id;                  /* "conn 7" in messages */
  char peer[80];
  bool refused;                 /* over --max-connections */
  /* Changed by STARTTLS only, in the handshake, before any worker can
   * see the connection.
   */
  const struct transport_ops *ops;
  struct tls_conn *tls;         /* tls.c's state, NULL until STARTTLS */

  /* Loop thread only. */
  struct connection *prev, *next;  /* loop->conns */
  ev_io rw, ww;
  ev_timer timer;               /* handshake limit, then write stall */
  enum conn_phase phase;
  const struct phase_ops *phase_ops;  /* who has the input */
  char *inbuf;                  /* CONN_INBUF_SIZE bytes */
  size_t in_start, in_end;
  /* Handshake state (handshake.c). */
  enum hs_state hs;
  bool no_zeroes;
  struct nbd_option opt_hdr;    /* host byte order */
  char *opt_data;
  size_t opt_got;
  uint64_t opt_skip;
  bool structured;              /* NBD_OPT_STRUCTURED_REPLY acked, or ... */
  bool extended;                /* ... NBD_OPT_EXTENDED_HEADERS: 32-byte
                                   requests and replies, 64-bit lengths */
  bool meta_allocation;         /* base:allocation selected ... */
  char *meta_bitmaps[MAX_META_BITMAPS]; /* qemu:dirty-bitmap:NAME (names),
                                   context id DIRTY_BITMAP_ID + index ... */
  unsigned nr_meta_bitmaps;
  char *meta_export;            /* ... for this export */
  /* Transmission state (request.c). */
  struct export *exp;
  uint16_t tflags;
  struct request *rx_req;       /* WRITE whose payload is arriving */
  size_t rx_got;
  uint64_t discard;             /* payload bytes of a refused WRITE left */
  struct outmsg *batch;         /* replies answered on the loop, in one
                                   buffer, queued by conn_flush */
  bool wrote;                   /* sent a write, zero or trim */

  /* Guarded by lock.  Lock order: conn->lock, then loop->lock. */
  pthread_mutex_t lock;
  struct outmsg *out_head, *out_tail;
  uint32_t inflight;            /* requests at workers */
  uint64_t buffered;            /* bytes held: payloads and queued replies */
  struct outmsg *spare_batch;   /* a sent batch buffer, for the next */
  bool dead;                    /* socket failed: drop replies */
  bool read_paused;             /* over the limits: rw stopped */
  bool want_write;              /* output waits: the loop must start ww */
  bool phase_closing;           /* FINISHING or DEAD: wake the loop at 0 */
  bool attention;               /* on loop->attention (guarded by loop->lock) */
  struct connection *attention_next;  /* (guarded by loop->lock) */

  /* admission.c: waiting for the handshake (its mutex). */
  struct connection *hs_prev, *hs_next;
  bool hs_listed;
  char addr_key[64];            /* the address (or user) counted */
  uint64_t hs_last_input_ms;    /* atomic; 0: nothing received yet */
  bool hs_evicted;              /* atomic: close it, its loop does */
  const char *hs_evicted_why;
};

/* admission.c: the budget of connections still in their handshake
 * (--max-handshakes, --max-handshakes-per-address).
 */
extern void admission_enter (struct connection *conn);
extern void admission_leave (struct connection *conn);
extern void admission_note_input (struct connection *conn);
/* Loop thread: whether conn was chosen to make room (logged). */
extern bool admission_evicted (struct connection *conn);
extern uint64_t admission_evictions (void);

/* A new client, in its first phase (handshake_phase). */
extern struct connection *conn_new (struct loop *loop, int fd,
                                    const struct phase_ops *first);
/* Loop thread: look at a connection after others changed it. */
extern void conn_check (struct connection *conn);
/* Loop thread: stop reading; close once everything is answered. */
extern void conn_finish (struct connection *conn, const char *why);
/* Loop thread: drop the connection now (replies are discarded). */
extern void conn_kill (struct connection *conn, const char *why);
/* Loop thread: transmission entered: stop the handshake timer, and
 * hand the input to the next phase.
 */
extern void conn_enter_transmission (struct connection *conn,
                                     const struct phase_ops *transmission);
extern void conn_free (struct connection *conn);
extern uint64_t nr_connections_total (void);
extern unsigned nr_connections_now (void);

/* ---- output.c: the output queue and the memory budget ---- */

/* Loop thread: queue a message without writing it yet, so replies to
 * a batch of requests leave in one sendmsg; conn_flush writes them.
 */
extern void conn_queue (struct connection *conn, struct outmsg *msg);
/* The same with conn->lock held (the connection is not dead). */
extern void conn_queue_locked (struct connection *conn, struct outmsg *msg);
/* Loop thread: an empty batch buffer of CONN_BATCH_SIZE bytes, reused
 * from one already sent if there is one.
 */
extern struct outmsg *conn_batch_buffer (struct connection *conn);
/* Loop thread: write what is queued; watch the socket for the rest. */
extern void conn_flush (struct connection *conn);
/* Write as much of the queue as the socket takes (conn->lock held).
 * Returns the bytes written, or -1 when the socket failed (conn->dead
 * is then set and the queue dropped).
 */
extern ssize_t conn_send_locked (struct connection *conn);
/* Drop everything queued (conn->lock held). */
extern void conn_drop_output_locked (struct connection *conn);
/* Count delta bytes (payloads, replies) as held by the connection,
 * and in the process's budget (conn->lock held).
 */
extern void conn_hold_locked (struct connection *conn, int64_t delta);
/* Bytes held by every connection together. */
extern uint64_t conn_total_held (void);
/* conn may read another request: its own limits and the budget. */
extern bool conn_under_limits_locked (const struct connection *conn);

/* ---- request-done.c: requests coming back to their connection ---- */

extern void request_free (struct request *req);
/* A worker finished a request: queue its reply (sending it from this
 * thread if the socket is idle), wake the loop if it has something to
 * do.
 */
extern void conn_request_done (struct connection *conn, struct request *req,
                               struct outmsg *reply);
/* The same, for any thread; with send_here false the reply is left to
 * the loop, which sends the replies of many such requests together
 * (an I/O thread's completions, unless noaiod).
 */
extern void conn_request_back (struct connection *conn, struct request *req,
                               struct outmsg *reply, bool send_here);
/* Loop thread: a request handed to the loop's io_uring is done: queue
 * its reply without sending it (the caller flushes, for many replies
 * at once).
 */
extern void conn_request_back_loop (struct connection *conn,
                                    struct request *req,
                                    struct outmsg *reply);
#define conn_debug(conn, fs, ...) \
  log_debug ("conn %" PRIu64 ": " fs, (conn)->id, ##__VA_ARGS__)

/* ---- handshake.c: fixed newstyle negotiation ---- */

/* The first phase of every connection (conn_new). */
extern const struct phase_ops handshake_phase;

/* ---- request.c: the transmission phase ---- */

#define BASE_ALLOCATION_ID 1    /* our context id for base:allocation */
#define DIRTY_BITMAP_ID 2       /* ... and for the first dirty bitmap */

#define URING_MAX_IO 4          /* host transfers of one request by io_uring */
#define URING_MAX_OPS (URING_MAX_IO + 1)   /* ... and an fdatasync */

struct request {
  struct job job;               /* first: workers see a job */
  struct connection *conn;
  uint16_t flags;               /* NBD_CMD_FLAG_* */
  uint16_t type;                /* NBD_CMD_* */
  uint64_t cookie;
  uint64_t offset;
  uint64_t count;               /* effect or payload length: above 2^32
                                   only with extended headers */
  uint32_t contexts;            /* BLOCK_STATUS: bit per context id to
                                   report (a payload's filter); 0: all */
  void *buf;                    /* WRITE payload or READ data, or NULL */
  struct outmsg *msg;           /* small READ: the reply, data inside ... */
  void *msg_data;               /* ... here */
  size_t acct;                  /* bytes counted in conn->buffered */
  /* A miss or durable write in one hop: the cache's part still to
   * do, and its handoff to an I/O thread.
   */
  struct cache_io *io;
  struct io_request ioreq;
  /* ... or the host I/O issued through the loop's io_uring. */
  unsigned host_ops;            /* still in flight */
  int host_err;                 /* a read's first errno */
  bool write_failed;            /* a write failed or fell short */
  struct device *writing;       /* io_uring writes to it in flight */
  int sync_err;                 /* the fdatasync's errno */
  bool group_sync;              /* made durable by its loop's group commit */
  struct request *sync_next;    /* ... in the list of its group (uring.c) */
  struct uring_op {
    struct request *req;        /* NULL for a group's fdatasync */
    enum { URING_READ, URING_WRITE, URING_SYNC, URING_GROUP_SYNC,
           URING_NOP } kind;
    uint64_t offset;
    struct iovec *iov;
    unsigned niov;
  } ops[URING_MAX_OPS];
};

/* The phase after the handshake (conn_enter_transmission): its input
 * is request_input, its payload_done request_payload_done.
 */
extern const struct phase_ops transmission_phase;
extern int request_input (struct connection *conn);
/* A WRITE payload completed (read straight into rx_req->buf). */
extern void request_payload_done (struct connection *conn);

/* ---- request-work.c: a request after the loop handed it off ---- */

/* Whether loops hand host I/O straight to I/O threads (nio= > 0):
 * set once at start-up.
 */
extern bool request_host_io_threads;
/* blk noaiod: I/O threads send the replies of their completions. */
extern bool request_noaiod;

/* The job of a request handed to a worker: run it, send its reply. */
extern void request_run (struct job *job);
/* The io_request done callback of a miss or durable write handed to
 * an I/O thread with its cache part started (req->io): finish it,
 * send its reply.
 */
extern void request_host_io_done (struct io_request *ioreq, int unused);
/* Hand a request counted in flight, its cache part started (req->io),
 * to an I/O thread, which runs request_host_io_done.
 */
extern void request_to_iothread (struct request *req);
/* A READ whose host reads are done (uring.c): finish it and queue the
 * reply, on the loop.
 */
extern void request_reads_done (struct request *req);
/* The same for a durable WRITE's write-back and sync. */
extern void request_writes_done (struct request *req);

/* ---- framing.c: request headers, payloads, validity ---- */

extern const char *command_name (uint16_t type);
/* Parse the header at the start of conn's input into r without
 * consuming it.  Returns its size, 0 if more input is needed, or -1 if
 * the connection must be dropped (logged).
 */
extern int parse_header (struct connection *conn, struct request *r);
/* Extended headers: the payload of a request other than a WRITE (the
 * header hlen bytes long).  Returns 0 (consumed; r is a plain request
 * now), 1 (more input needed, nothing consumed), or the errno for the
 * client with why in what (header consumed, payload to be discarded).
 */
extern int take_payload (struct connection *conn, struct request *r,
                         size_t hlen, char *what, size_t whatlen);
/* Is this metadata context id selected on the connection? */
extern bool context_selected (const struct connection *conn, uint32_t id);
/* Forget every selected metadata context (the handshake, conn_free). */
extern void meta_clear (struct connection *conn);
/* The one validity check: 0, or the errno for the client with why in
 * what (logged).
 */
extern int validate_request (struct connection *conn,
                             const struct request *req, char *what,
                             size_t whatlen);

/* ---- uring.c: host reads of cache misses through io_uring ---- */

/* Set up the loop's ring (loop->uring stays NULL where io_uring is not
 * built in or the kernel refuses it: the I/O threads read instead).
 */
extern void uring_init (struct loop *loop);
extern void uring_free (struct loop *loop);
/* Loop thread: issue the host reads of req->io (a READ), counting it
 * in flight.  False if the ring cannot take them: nothing was done.
 */
extern bool uring_read (struct loop *loop, struct request *req);
/* The same for the write-back and sync of a durable write (req->io). */
extern bool uring_write (struct loop *loop, struct request *req);
/* Loop thread: submit what was issued and complete what is done;
 * sends the replies.  At the end of every round of input.
 */
extern void uring_kick (struct loop *loop);

/* ---- notify.c: the service manager's notify socket ---- */

/* Connect to NOTIFY_SOCKET, if set, and take it out of the
 * environment; -1 (logged) if it is set but unusable.
 */
extern int notify_init (void);
extern bool notify_enabled (void);
/* One datagram of VARIABLE=VALUE lines ("READY=1", "STATUS=...");
 * nothing without NOTIFY_SOCKET.  Any thread.
 */
extern void notify_send (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
extern void notify_close (void);

/* ---- signals.c ---- */

extern void signals_block (void);
extern void signals_unblock_for_child (void);
extern void signals_start (struct ev_loop *ev);
extern void signals_stop (struct ev_loop *ev);

/* ---- stats.c: statistics and the final write-back ---- */

/* Resolve --stats-file before detaching; -1 (logged) on error. */
extern int stats_init (void);
/* Log the statistics (SIGUSR1, and at exit with -v). */
extern void stats_log (void);
/* Write the --stats-file JSON, if asked for; event is "start",
 * "SIGUSR1" or "exit".  Returns -1 (logged) if it could not.
 */
extern int stats_write_file (const char *event);
/* SIGUSR1: both of the above. */
extern void stats_report (void);
/* Once serving has stopped, with a dirty cache: report the bytes left
 * to write back and the rate once a second until stats_shutdown (the
 * workers may still be writing back for clients that left).  With -v
 * in the log, also at once; on a terminal, from the first second on;
 * to the service manager as its STATUS.
 */
extern void stats_progress_start (void);
/* Before exports_close: write every export back, end the progress
 * reports, then log (-v) and write the statistics.  Returns -1 if a
 * write-back failed.
 */
extern int stats_shutdown (void);
extern void stats_free (void);

/* ---- config-file.c: --config-file ---- */

/* FILE's words, after argv0, NULL-terminated, for getopt; NULL
 * (logged) if it cannot be read.
 */
extern char **config_file_read (const char *path, const char *argv0);
/* words then more, NULL-terminated (exits if out of memory). */
extern char **config_file_join (char **words, int nwords, char **more,
                                int nmore);
/* Free what the two above returned. */
extern void config_file_free (void);

/* ---- tls-creds.c: TLS credentials and the SSL_CTX (OpenSSL) ---- */

struct ssl_st;                  /* OpenSSL's SSL, for tls*.c only */

/* What the credential callbacks learn about one client during its
 * handshake (the session's app data; tls.c logs it).
 */
struct tls_peer {
  const char *psk_user;         /* the PSK identity used, if any */
  char unknown_user[64];        /* a PSK identity we do not know */
};
/* Make the credentials' paths absolute (before detaching); -1 (logged)
 * if they are not there.
 */
extern int tls_resolve_paths (void);
/* Load the credentials opt names into the SSL_CTX (tls_init calls it).
 * Returns -1 (logged, everything freed) on failure.
 */
extern int tls_creds_init (void);
extern void tls_creds_cleanup (void);
/* A server session for one client, noting what it learns in *peer;
 * NULL if out of memory.
 */
extern struct ssl_st *tls_session_new (struct tls_peer *peer);
/* The most useful line OpenSSL has about the last failure; logging
 * OpenSSL's error queue at start-up.
 */
extern void tls_describe_error (struct ssl_st *ssl, char *buf, size_t len);
extern void tls_log_ssl_error (const char *what);

/* ---- tls.c: TLS with OpenSSL, the transport ---- */

struct tls_conn;
/* Load the credentials opt names (before privileges are dropped) and
 * set up the transport; nothing with --tls=off.  Returns -1 (logged)
 * on failure.
 */
extern int tls_init (void);
extern void tls_cleanup (void);
/* STARTTLS acknowledged: switch conn to TLS (the replies already
 * queued still leave in the clear).  Returns -1 (logged) on failure.
 */
extern int tls_start (struct connection *conn);

/* ---- access.c: --allow ---- */

struct sockaddr;

/* Add ADDR[/PREFIX]; -1 (logged) if malformed. */
extern int access_allow (const char *spec);
extern bool access_restricted (void);
/* May a client from this address connect?  Unix sockets always may. */
extern bool access_allowed (const struct sockaddr *sa);
extern void access_describe (const struct sockaddr *sa, char *buf,
                             size_t len);
extern void access_free (void);

/* ---- captive.c: --run ---- */

extern int captive_start (struct ev_loop *ev);
/* Ask the child to exit (shutdown by signal). */
extern void captive_terminate (void);
/* The exit status --run asks for, or -1 without --run. */
extern int captive_status (void);

#endif /* NBDL_SERVER_INTERNAL_H */
