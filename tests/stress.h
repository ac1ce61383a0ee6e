/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client's internal header: what its files share, sectioned by
 * the file that owns each declaration.  The program and its command
 * line are described at the top of stress-client.c.
 */
#ifndef NBDL_TESTS_STRESS_H
#define NBDL_TESTS_STRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <libnbd.h>

#define SECTOR 512
#define CHUNK 64
#define CHUNKS_PER_SECTOR (SECTOR / CHUNK)
#define CHUNK_MAGIC UINT64_C(0x4e424c)     /* "NBL", above a 40-bit index */

enum commit { C_NONE, C_LOW, C_MEDIUM, C_HIGH, NR_COMMIT };

/* ---- stress-client.c: the command line and small helpers ---- */

extern const char *const commit_names[NR_COMMIT];

extern const char *mode;
extern bool crash_mode;
extern const char *file_path, *sock_path, *pidfile_path, *journal_path;
extern const char *export_name;
extern uint64_t size;
extern unsigned nconns, depth;
extern uint64_t seed;
extern unsigned cycles, first_cycle;
extern unsigned max_ms;
extern double seconds;
extern uint64_t max_growth;             /* bytes of VmHWM above the start */
extern uint32_t max_len;
extern unsigned commit_mask;            /* levels to rotate over */
extern const char *soak_delwri, *soak_nio, *soak_cache;
extern double max_latency;              /* load: seconds per request */
extern bool verbose;
extern char **server_argv;
extern int server_argc;

struct thread;

void say (const char *fs, ...) __attribute__ ((format (printf, 1, 2)));
void die (const char *fs, ...)
  __attribute__ ((noreturn, format (printf, 1, 2)));
/* Reports a failure (of connection t, if not NULL) and sets
 * run.failed; the caller goes on.
 */
void fail_at (struct thread *t, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
uint64_t mix64 (uint64_t z);
uint64_t rnd (uint64_t *state);
uint64_t below (uint64_t *state, uint64_t n);  /* uniform in [0, n) */
double now_s (void);
uint64_t now_ms (void);
void sleep_ms (double ms);

/* ---- stress-workload.c: the connections and their requests ---- */

struct wrec {                   /* one write or zero, for the checks */
  uint64_t version;
  uint64_t ack_seq;             /* 0: not acknowledged */
  uint32_t start, n;            /* sectors */
  bool fua, zero;
};

/* One connection, served by its own thread. */
struct thread {
  unsigned index;
  pthread_t tid;
  struct nbd_handle *nbd;
  uint64_t rng;
  unsigned inflight;
  bool can_fua, can_cache;
  struct wrec *recs;            /* crash mode only */
  size_t nr_recs, cap_recs;
  /* counters */
  uint64_t ops, writes, writes_acked, zeroes, fua_acked, reads_checked;
  uint64_t flushes, flushes_acked, caches, bytes;
  int error;                    /* first unexpected errno */
};

/* The shared state of one run (one crash cycle, one soak or load). */
struct run {
  uint64_t nsect;
  uint64_t cseed;
  enum commit commit;
  pthread_mutex_t lock;         /* guards busy[] and the arrays below */
  uint8_t *busy;
  uint64_t *last_acked;         /* version */
  uint8_t *last_zero;           /* last_acked was a zero write */
  uint64_t *max_zero;           /* newest zero write issued */
  uint64_t next_version;        /* atomic */
  uint64_t clock;               /* atomic: ack and flush sequence */
  uint64_t flushed_before;      /* atomic max: acked flush issue seq */
  bool stop;                    /* atomic */
  bool terminating;             /* atomic: errors expected from now */
  bool failed;                  /* atomic */
  uint64_t last_progress_ms;    /* atomic: a request completed */
  uint64_t max_latency_us;      /* atomic max */
};

extern struct run run;
extern struct thread *threads;  /* nconns of them */

void state_alloc (void);
void state_reset (uint64_t cseed, enum commit commit);
void connect_all (uint64_t cseed);
void start_threads (void);
void join_threads (void);
void close_all (void);

/* ---- stress-data.c: self-describing chunks, checking the host file ---- */

struct check {
  uint64_t durable_writes;      /* writes whose data had to be there */
  uint64_t sectors_required;    /* sectors with a required version */
  uint64_t chunks;              /* chunks checked */
  uint64_t newer;               /* sectors overwritten by a later write */
  uint64_t torn;                /* sectors holding two versions */
};

void fill_sectors (void *buf, uint64_t cseed, uint64_t sector, uint32_t n,
                   uint64_t version);
uint64_t chunk_version (const uint64_t *w, uint64_t cseed, uint64_t chunk);
void describe_chunk (const uint64_t *w, uint64_t chunk, char *out,
                     size_t len);
uint64_t *read_file (void);
bool check_file (const uint64_t *required, struct check *ck,
                 const char *what, uint64_t *buf);

/* ---- stress-server.c: the server process ---- */

struct mem {
  uint64_t rss, hwm;            /* bytes */
};

extern pid_t server_pid;
extern const char *sync_word;

void start_server (const char *commit, const char *delwri, const char *nio,
                   const char *cache);
int reap_server (double timeout);
bool server_memory (struct mem *m);

/* ---- stress-fault.c: the power-cut image of faultinject's journal ---- */

uint64_t *power_cut_image (uint64_t *records, uint64_t *synced);

/* ---- stress-crash.c, stress-load.c: the modes ---- */

int run_crash (void);
int run_soak (void);
int run_load (void);

#endif /* NBDL_TESTS_STRESS_H */
