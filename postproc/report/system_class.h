/* The MoE-CAP system class of a profiled run (docs/attribution.md §7): CA (cost + accuracy:
 * expert offloading — routed experts brought into memory during the run), PC (performance +
 * cost: quantized weights — GEMM weight operands of one byte or less per element), PA
 * (performance + accuracy: expert parallelism — the experts of one step computed in several
 * processes or devices), each with the evidence the trace gave. A run can show none or
 * several. */
#ifndef MOECAP_REPORT_SYSTEM_CLASS_H
#define MOECAP_REPORT_SYSTEM_CLASS_H

#include <cjson/cJSON.h>

#include "report/attrib.h"
#include "report/model.h"
#include "report/offload_traffic.h"

/* report.json "system_class": {"classes": [...], "evidence": {"CA": "...", ...}}.
 * gemm_processes: processes that issued GEMMs; step_processes: those whose threads ran whole
 * forward steps (lm_head included) — more of the former means processes computed parts of
 * other processes' steps; devices: distinct GPU devices of the GEMMs (0 = CPU only). */
cJSON *mc_system_class_json(const struct mc_offload_view *v, const struct mc_attrib_stats *ast,
                            const struct mc_model *m, int gemm_processes, int step_processes, int devices);

#endif
