/* SPDX-License-Identifier: BSD-3-Clause */
/* stress-client soak and load: the workload for --seconds with no
 * error allowed.  soak starts the server, samples its memory and ends
 * with SIGTERM under load; load runs next to a server that is already
 * up (the hostile-client tests), bounds each request's latency and
 * ends with a FLUSH.  Either way the host file must then hold every
 * acknowledged write.
 */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libnbd.h>

#include "stress.h"

/* ---- soak mode ---- */

int
run_soak (void)
{
  uint64_t cseed = mix64 (seed);
  uint64_t *required;
  struct mem base, m, peak = { 0 };
  struct check ck = { 0 };
  double t0, t1, stall = 0;
  uint64_t ops = 0, bytes = 0, acked = 0, reads = 0, flushes = 0;
  int fd, status;

  fd = open (file_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1 || ftruncate (fd, 0) == -1 || ftruncate (fd, size) == -1)
    die ("%s: %m", file_path);
  close (fd);
  state_alloc ();
  state_reset (cseed, C_MEDIUM);
  start_server ("medium", soak_delwri, soak_nio, soak_cache);
  if (!server_memory (&base))
    die ("cannot read the server's /proc/PID/status");
  connect_all (cseed);
  t0 = now_s ();
  start_threads ();
  while (now_s () - t0 < seconds && !run.failed) {
    sleep_ms (50);
    if (server_memory (&m)) {
      if (m.rss > peak.rss)
        peak.rss = m.rss;
      if (m.hwm > peak.hwm)
        peak.hwm = m.hwm;
    }
    {
      double idle = (now_ms () - __atomic_load_n (&run.last_progress_ms,
                                                  __ATOMIC_RELAXED)) / 1e3;
      if (idle > stall)
        stall = idle;
    }
    if (stall > 30) {
      fail_at (NULL, "no request completed for 30 s: the server hangs");
      break;
    }
  }
  t1 = now_s ();
  /* SIGTERM with requests in flight: they are answered or cut off;
   * whatever was acknowledged must be written back.
   */
  __atomic_store_n (&run.terminating, true, __ATOMIC_SEQ_CST);
  kill (server_pid, SIGTERM);
  join_threads ();
  status = reap_server (60);
  for (unsigned i = 0; i < nconns; i++) {
    ops += threads[i].ops;
    bytes += threads[i].bytes;
    acked += threads[i].writes_acked;
    reads += threads[i].reads_checked;
    flushes += threads[i].flushes_acked;
  }
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    fail_at (NULL, "the server did not exit 0 after SIGTERM (wait status "
             "0x%x)", status);

  required = malloc (run.nsect * sizeof *required);
  if (required == NULL)
    die ("out of memory");
  for (uint64_t s = 0; s < run.nsect; s++)
    required[s] = run.last_acked[s];
  ck.durable_writes = acked;
  check_file (required, &ck, "after SIGTERM", read_file ());

  printf ("figures: soak %u connections x depth %u for %.1f s: %" PRIu64
          " requests (%.0f ops/s, %.1f MiB/s), %" PRIu64 " writes "
          "acknowledged and found in the host file, %" PRIu64
          " reads verified, %" PRIu64 " flushes, longest stall %.2f s\n",
          nconns, depth, t1 - t0, ops, ops / (t1 - t0),
          bytes / (t1 - t0) / 1048576.0, acked, reads, flushes, stall);
  printf ("figures: soak server memory: VmRSS at start %.1f MiB, peak "
          "VmRSS %.1f MiB, VmHWM %.1f MiB (growth %.1f MiB); allowed growth "
          "%.1f MiB (cache=%s plus the per-connection bound)\n",
          base.rss / 1048576.0, peak.rss / 1048576.0,
          peak.hwm / 1048576.0, (peak.hwm - base.rss) / 1048576.0,
          max_growth / 1048576.0, soak_cache);
  if (max_growth && peak.hwm > base.rss + max_growth)
    fail_at (NULL, "the server's resident memory grew by %.1f MiB, "
             "more than the %.1f MiB allowed",
             (peak.hwm - base.rss) / 1048576.0, max_growth / 1048576.0);
  free (required);
  close_all ();
  if (run.failed)
    say ("seed %" PRIu64, seed);
  return run.failed ? 1 : 0;
}

/* ---- load mode ---- */

int
run_load (void)
{
  uint64_t cseed = mix64 (seed);
  uint64_t *required;
  struct check ck = { 0 };
  struct nbd_handle *nbd;
  double t0, t1;
  uint64_t ops = 0, bytes = 0, acked = 0, reads = 0;

  state_alloc ();
  state_reset (cseed, C_MEDIUM);
  connect_all (cseed);
  t0 = now_s ();
  start_threads ();
  while (now_s () - t0 < seconds && !run.failed)
    sleep_ms (50);
  t1 = now_s ();
  /* Stop issuing, let what is in flight finish, then one FLUSH. */
  __atomic_store_n (&run.terminating, true, __ATOMIC_SEQ_CST);
  join_threads ();
  for (unsigned i = 0; i < nconns; i++) {
    ops += threads[i].ops;
    bytes += threads[i].bytes;
    acked += threads[i].writes_acked;
    reads += threads[i].reads_checked;
  }
  nbd = nbd_create ();
  if (nbd == NULL || nbd_set_export_name (nbd, export_name) == -1
      || nbd_connect_unix (nbd, sock_path) == -1 || nbd_flush (nbd, 0) == -1)
    fail_at (NULL, "the final FLUSH: %s", nbd_get_error ());
  nbd_close (nbd);

  required = malloc (run.nsect * sizeof *required);
  if (required == NULL)
    die ("out of memory");
  for (uint64_t s = 0; s < run.nsect; s++)
    required[s] = run.last_acked[s];
  check_file (required, &ck, "after the final FLUSH", read_file ());
  printf ("figures: well-behaved client: %u connections x depth %u for "
          "%.1f s: %" PRIu64 " requests (%.0f ops/s, %.1f MiB/s), %" PRIu64
          " writes acknowledged and found in the host file, %" PRIu64
          " reads verified, longest request %.2f s\n", nconns, depth,
          t1 - t0, ops, ops / (t1 - t0), bytes / (t1 - t0) / 1048576.0,
          acked, reads, run.max_latency_us / 1e6);
  if (run.max_latency_us / 1e6 > max_latency)
    fail_at (NULL, "a request took %.2f s (at most %g s allowed)",
             run.max_latency_us / 1e6, max_latency);
  free (required);
  close_all ();
  if (run.failed)
    say ("seed %" PRIu64, seed);
  return run.failed ? 1 : 0;
}
