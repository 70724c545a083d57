/* Timeline export in the Trace Event Format (the JSON that Perfetto's UI and
 * chrome://tracing open): `moecap report --format perfetto` writes report.perfetto.json.
 * Layout (docs/timeline.md):
 *   - per profiled process (pid) and thread (tid): "X" events for forward steps, the layers
 *     inside them and the GEMMs inside those; GPU kernels on one track per device stream;
 *   - "C" counters per process: tokens per step, activated experts per MoE layer, S-MBU /
 *     S-MFU per step, and the shim's sampled counters (RSS, CPU, power as rates);
 *   - "M" metadata naming processes and threads;
 *   - client requests (a `moecap bench` log joined in report.json) on their own process,
 *     one track per lane of non-overlapping requests.
 * ts/dur are microseconds of the profiled processes' CLOCK_MONOTONIC (3 decimals: exact ns).
 *
 * The report's pass over the traces feeds it (mc_perfetto_record for every record, the
 * attributor's GEMM observer for classified GEMMs), events stream to the file as they come;
 * mc_perfetto_finish adds what the report document holds (steps, counters per step,
 * requests), so the timeline's step figures are the report's.
 * Size stays bounded: past `max_events` per kind, GEMMs and layers are no longer drawn one
 * by one (layers keep their GEMM count and time in args), kernels are merged per stream into
 * spans of >= 1 ms, and sampled counters thin to one sample per second; otherData.aggregated
 * says what was aggregated. */
#ifndef MOECAP_EXPORT_PERFETTO_H
#define MOECAP_EXPORT_PERFETTO_H

#include <stddef.h>
#include <stdint.h>

#include "report/attrib.h"
#include "report/report_doc.h"
#include "trace/trace_reader.h"

#define MC_PERFETTO_DEFAULT_MAX_EVENTS 200000

struct mc_perfetto;

/* Starts writing `path` (through path.tmp, renamed at finish). NULL with a message in err. */
struct mc_perfetto *mc_perfetto_open(const char *path, uint64_t max_events, char *err, size_t errlen);
/* Every trace record of process `pid` (t resolves its strings; user = struct mc_perfetto *):
 * processes, threads, GPU kernels, counters; other types are ignored. */
void mc_perfetto_record(void *user, struct mc_trace *t, int32_t pid, const struct mc_trace_rec *rec);
/* mc_gemm_observer (user = struct mc_perfetto *). */
void mc_perfetto_gemm(void *user, int32_t pid, const struct mc_rec_gemm *g, enum mc_role role, int layer, int expert);
/* Adds steps, per-step counters and client requests from the report document, closes the
 * file. Frees p. 0 ok; -1 with a message in err (the partial file is removed). */
int mc_perfetto_finish(struct mc_perfetto *p, const struct report_doc *doc, char *err, size_t errlen);
/* For `moecap report`: when `formats` names perfetto, opens OUT_DIR/report.perfetto.json and
 * registers the GEMM observer with the attributor. NULL when not asked for, or on error
 * (then *failed is set and err says why). */
struct mc_perfetto *mc_perfetto_for_report(const char *formats, const char *out_dir, uint64_t max_events,
                                           struct mc_attrib *at, int *failed, char *err, size_t errlen);
/* Drops the export (error path of the report). */
void mc_perfetto_abort(struct mc_perfetto *p);

#endif
