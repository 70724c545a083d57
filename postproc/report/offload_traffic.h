/* Offload traffic of `moecap report` (docs/attribution.md §6): what an expert-offloading
 * engine moved to make its experts resident. From the routed-expert tensors that reads into
 * host memory brought in (mc_attrib_expert_loads: the shim's FILE_MAP records of read /
 * pread, each valid until the buffer is read into again), per step: experts and bytes loaded
 * since the process's previous step ended, hits and misses of the experts the step computed
 * (a miss = loaded in that window), and the resident expert bytes at the step's end; over the
 * run: totals, hit rate, resident bytes peak and mean, and the bandwidth the moves used
 * next to the step's S-MBU (which counts only what compute read). */
#ifndef MOECAP_REPORT_OFFLOAD_TRAFFIC_H
#define MOECAP_REPORT_OFFLOAD_TRAFFIC_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "report/attrib.h"
#include "report/model.h"

struct mc_offload_view;

/* Takes ownership of loads (may be NULL with n = 0: no offloading seen). bw = the
 * utilisation denominator in bytes/s (devices x peak bandwidth; 0 = unknown). */
struct mc_offload_view *mc_offload_view_new(const struct mc_model *m, struct mc_expert_load *loads, size_t n,
                                            double bw);
void mc_offload_view_free(struct mc_offload_view *v);
/* Did the run read routed experts into memory at all? */
int mc_offload_view_any(const struct mc_offload_view *v);
/* One finished step (steps of a process arrive in time order): appends
 * `, "offload": {...}` to the step's JSON object being written to o. */
void mc_offload_step(struct mc_offload_view *v, const struct mc_step *s, FILE *o);
/* report.json "offload" section (NULL when no step loaded or held offloaded experts). */
cJSON *mc_offload_json(const struct mc_offload_view *v);
/* For the class decision: steps after the first that loaded experts, bytes they loaded,
 * and the peak resident expert bytes against all routed expert bytes of the model. */
void mc_offload_summary(const struct mc_offload_view *v, uint64_t *steps_loading, uint64_t *bytes_loaded,
                        uint64_t *resident_peak, uint64_t *all_expert_bytes);
/* Processes whose threads ran forward steps (lm_head and all). */
int mc_offload_step_processes(const struct mc_offload_view *v);

#endif
