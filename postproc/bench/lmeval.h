/* Reader for lm-evaluation-harness results JSON (`lm_eval --output_path`), so `moecap
 * report` can show accuracy measured by the harness next to the run's performance. */
#ifndef MOECAP_BENCH_LMEVAL_H
#define MOECAP_BENCH_LMEVAL_H
#include <stddef.h>
#include <cjson/cJSON.h>

/* Reads an lm-eval results file (new style "acc,none"/"exact_match,strict-match" keys or
 * old style "acc") and returns, in *out (caller deletes), a normalised object:
 *   {"source": "lm-evaluation-harness", "path": P, "model": model_args|null,
 *    "tasks": [{"task": T, "metric": M, "value": V, "stderr": S|null, "n": N|null,
 *               "metrics": {every numeric metric of the task}}]}
 * `metric` is the task's primary metric: the first present of exact_match,strict-match;
 * exact_match,flexible-extract; acc_norm,none; acc,none; exact_match,none; acc_norm; acc;
 * exact_match; else the first numeric non-stderr entry. Tasks without any numeric
 * metric are left out. Returns 0, or -1 with a message in err (missing file, not JSON,
 * no "results" object). */
int mc_lmeval_read(const char *path, cJSON **out, char *err, size_t errsz);
#endif
