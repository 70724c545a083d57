/* Expert parallelism in `moecap report` (docs/attribution.md §9): the steps whose routed
 * experts ran in several processes (fork children merged into the coordinator's step by the
 * attributor) — per step the processes' experts, weight bytes, FLOPs and GEMM calls and the
 * activation bytes exchanged; over the run the same per process plus its expert-load
 * heatmap (tokens per layer and expert). */
#ifndef MOECAP_REPORT_EXPERT_PARALLEL_VIEW_H
#define MOECAP_REPORT_EXPERT_PARALLEL_VIEW_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "report/attrib.h"
#include "report/model.h"

struct mc_ep_view;

struct mc_ep_view *mc_ep_view_new(const struct mc_model *m);
void mc_ep_view_free(struct mc_ep_view *v);
/* One finished step: appends `, "expert_parallel": {...}` to its JSON object when worker
 * processes took part. */
void mc_ep_view_step(struct mc_ep_view *v, const struct mc_step *s, FILE *o);
/* report.json "expert_parallel" (NULL when no step had worker processes). */
cJSON *mc_ep_view_json(const struct mc_ep_view *v);

#endif
