/* vllm-bench.json: `moecap bench`'s summary under the field names of `vllm bench serve
 * --save-result`, so dashboards and scripts that read vLLM's results read ours
 * (docs/bench.md, "vllm-bench.json"). */
#ifndef MOECAP_BENCH_VLLM_COMPAT_H
#define MOECAP_BENCH_VLLM_COMPAT_H
#include <cjson/cJSON.h>

/* Built from a bench-summary.json object (with its "config"); every number is copied from
 * it, none recomputed. Caller deletes. NULL on OOM. */
cJSON *mc_vllm_bench_json(const cJSON *summary);
#endif
