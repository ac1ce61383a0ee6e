/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client crash: kill cycles.  Each cycle starts the server on
 * a fresh host file, runs the workload, kills the server with SIGKILL
 * at a random moment and checks the host file (and, with --journal,
 * the power-cut image) against what every commit level promised to
 * make durable (see the top of stress-client.c for the rules).
 */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stress.h"

struct level_figures {
  unsigned cycles;
  uint64_t issued, acked, fua_acked, flushes_acked, reads_checked;
  struct check ck;              /* the host file after kill -9 */
  struct check pc;              /* the power-cut image (--journal) */
  uint64_t records, synced;     /* journal records, and those synced */
};

/* Did this write have to survive a kill -9 (power_cut false) or a
 * power cut (true)?  commit=low FUA writes reach the host file before
 * the reply, unsynced: they survive only the kill.
 */
static bool
durable (const struct wrec *w, enum commit c, uint64_t flushed_before,
         bool power_cut)
{
  if (w->ack_seq == 0)
    return false;
  if (w->ack_seq < flushed_before)
    return true;
  if (c == C_HIGH)
    return true;
  if (power_cut && c == C_LOW)
    return false;
  return w->fua && c != C_NONE;
}

/* The versions that had to survive, by sector. */
static void
compute_required (uint64_t *required, enum commit c, bool power_cut,
                  uint64_t *durable_writes)
{
  memset (required, 0, run.nsect * sizeof *required);
  *durable_writes = 0;
  for (unsigned i = 0; i < nconns; i++) {
    struct thread *t = &threads[i];
    for (size_t k = 0; k < t->nr_recs; k++) {
      const struct wrec *w = &t->recs[k];
      if (!durable (w, c, run.flushed_before, power_cut))
        continue;
      (*durable_writes)++;
      for (uint32_t j = 0; j < w->n; j++)
        if (required[w->start + j] < w->version)
          required[w->start + j] = w->version;
    }
  }
}

static const char *delwri_choices[] = { "0", "0.02", "0.3", "60" };
static const char *nio_choices[] = { "0", "1", "2" };
static const char *cache_choices[] = { "512k", "4m", "64m" };

int
run_crash (void)
{
  struct level_figures fig[NR_COMMIT] = { { 0 } };
  uint64_t *required = malloc (size / SECTOR * sizeof *required);
  unsigned levels[NR_COMMIT], nlevels = 0;
  double t0 = now_s ();

  if (required == NULL)
    die ("out of memory");
  for (int c = 0; c < NR_COMMIT; c++)
    if (commit_mask & (1u << c))
      levels[nlevels++] = c;
  state_alloc ();

  for (unsigned cycle = first_cycle; cycle < first_cycle + cycles; cycle++) {
    uint64_t cseed = mix64 (seed ^ mix64 (cycle));
    uint64_t rng = cseed;
    enum commit c = levels[cycle % nlevels];
    const char *delwri = delwri_choices[below (&rng, 4)];
    const char *nio = nio_choices[below (&rng, 3)];
    const char *cache = cache_choices[below (&rng, 3)];
    double delay;
    int status, fd;
    struct level_figures *f = &fig[c];
    struct check ck = { 0 }, pc = { 0 };
    uint64_t records = 0, synced = 0;
    char what[200], what_pc[220];
    bool ok;

    sync_word = below (&rng, 4) == 0 ? "sync" : "async";
    if (journal_path) {
      fd = open (journal_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd == -1)
        die ("%s: %m", journal_path);
      close (fd);
    }

    /* A fresh sparse host file. */
    fd = open (file_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1 || ftruncate (fd, 0) == -1
        || ftruncate (fd, size) == -1)
      die ("%s: %m", file_path);
    close (fd);

    state_reset (cseed, c);
    start_server (commit_names[c], delwri, nio, cache);
    connect_all (cseed);
    /* Kill within a few ms, or at a random later moment. */
    delay = below (&rng, 10) == 0 ? below (&rng, 5000) / 1000.0
      : 5 + below (&rng, (max_ms > 5 ? max_ms - 5 : 1) * 1000) / 1000.0;
    start_threads ();
    sleep_ms (delay);
    __atomic_store_n (&run.stop, true, __ATOMIC_SEQ_CST);
    kill (server_pid, SIGKILL);
    join_threads ();
    status = reap_server (60);
    if (!WIFSIGNALED (status) || WTERMSIG (status) != SIGKILL)
      die ("seed %" PRIu64 " cycle %u: the server died on its own before "
           "the kill (wait status 0x%x): see its output above",
           seed, cycle, status);

    for (unsigned i = 0; i < nconns; i++) {
      struct thread *t = &threads[i];
      f->issued += t->writes + t->zeroes;
      f->acked += t->writes_acked;
      f->fua_acked += t->fua_acked;
      f->flushes_acked += t->flushes_acked;
      f->reads_checked += t->reads_checked;
    }
    snprintf (what, sizeof what, "seed %" PRIu64 " cycle %u (commit=%s "
              "delwri=%s nio=%s cache=%s %s, killed after %.1f ms)", seed,
              cycle, commit_names[c], delwri, nio, cache, sync_word, delay);
    /* The host file after kill -9. */
    compute_required (required, c, false, &ck.durable_writes);
    ok = check_file (required, &ck, what, read_file ());
    /* The image a power cut would have left. */
    if (ok && journal_path) {
      snprintf (what_pc, sizeof what_pc, "%s, power-cut image", what);
      compute_required (required, c, true, &pc.durable_writes);
      ok = check_file (required, &pc, what_pc,
                       power_cut_image (&records, &synced));
    }
    if (!ok || run.failed) {
      say ("replay this cycle: stress-client crash --seed %" PRIu64
           " --first-cycle %u --cycles 1 (same other options)", seed, cycle);
      close_all ();
      return 1;
    }
    if (verbose)
      say ("%s: %" PRIu64 " writes had to survive: ok", what,
           ck.durable_writes);
    f->cycles++;
    f->ck.durable_writes += ck.durable_writes;
    f->ck.sectors_required += ck.sectors_required;
    f->ck.chunks += ck.chunks;
    f->ck.newer += ck.newer;
    f->ck.torn += ck.torn;
    f->pc.durable_writes += pc.durable_writes;
    f->pc.sectors_required += pc.sectors_required;
    f->pc.newer += pc.newer;
    f->records += records;
    f->synced += synced;
    close_all ();
  }

  for (int c = 0; c < NR_COMMIT; c++) {
    struct level_figures *f = &fig[c];
    if (f->cycles == 0)
      continue;
    printf ("figures: crash commit=%-6s %4u kill cycles, %7" PRIu64
            " writes issued, %7" PRIu64 " acknowledged (%" PRIu64 " FUA), %6"
            PRIu64 " flushes acknowledged, %7" PRIu64 " writes had to "
            "survive and did (%" PRIu64 " sectors; %" PRIu64 " overwritten "
            "by a later write, %" PRIu64 " sectors torn between two legal "
            "versions), %" PRIu64 " reads verified\n",
            commit_names[c], f->cycles, f->issued, f->acked, f->fua_acked,
            f->flushes_acked, f->ck.durable_writes, f->ck.sectors_required,
            f->ck.newer, f->ck.torn, f->reads_checked);
    if (journal_path)
      printf ("figures: crash commit=%-6s power-cut images: %7" PRIu64
              " writes had to survive a power cut and did (%" PRIu64
              " sectors; %" PRIu64 " host writes/fallocates journalled, %"
              PRIu64 " of them synced before the kill)\n",
              commit_names[c], f->pc.durable_writes, f->pc.sectors_required,
              f->records, f->synced);
  }
  printf ("figures: crash total %u cycles in %.1f s, seed %" PRIu64 "\n",
          cycles, now_s () - t0, seed);
  free (required);
  return 0;
}
