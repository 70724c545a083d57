/* The client-side part of report.json, built from a run directory written by
 * `moecap bench`: one call for `moecap report` to join requests.jsonl (docs/bench.md). */
#ifndef MOECAP_BENCH_CLIENT_VIEW_H
#define MOECAP_BENCH_CLIENT_VIEW_H
#include <stddef.h>
#include <cjson/cJSON.h>

/* Returns a new object (caller deletes)
 *   {"source": "moecap bench", "requests_file": PATH,
 *    "summary": {...mc_request_log_summary, with the run's measured duration and the
 *                goodput SLOs of RUN_DIR/bench-summary.json when that file exists...},
 *    "config": {...bench-summary.json "config"...}        (absent without the file)
 *    "requests": [...one requests.jsonl object per request, sorted by id...]}  (with_requests)
 * or NULL: with err[0] == 0 when RUN_DIR has no requests.jsonl (no client data: not an
 * error), with a message in err when the log is damaged. */
cJSON *mc_bench_client_view(const char *run_dir, int with_requests, char *err, size_t errsz);
#endif
