/* bench-summary.json -> vLLM `bench serve` result fields (see vllm_compat.h). vLLM's
 * definitions are the ones bench already uses (docs/bench.md): mean, median (= p50),
 * population std and p99 of TTFT, TPOT, ITL and E2EL in ms; duration in s. */
#include "vllm_compat.h"
#include <stdio.h>
#include <time.h>

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* Copies o[k] (a number, or null when absent or not a number) to out[name]. */
static void copy_num(cJSON *out, const char *name, const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(out, name, v->valuedouble);
    else cJSON_AddNullToObject(out, name);
}

cJSON *mc_vllm_bench_json(const cJSON *s)
{
    const cJSON *cfg = get(s, "config");
    cJSON *v = cJSON_CreateObject();
    if (!v) return NULL;
    char date[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    cJSON_AddStringToObject(v, "date", date);
    cJSON_AddStringToObject(v, "backend", cJSON_IsTrue(get(cfg, "chat")) ? "openai-chat" : "openai");
    const cJSON *model = get(cfg, "model");
    cJSON_AddStringToObject(v, "model_id", cJSON_IsString(model) ? model->valuestring : "");
    cJSON_AddStringToObject(v, "endpoint_type", "moecap-bench");
    copy_num(v, "num_prompts", cfg, "num_requests");
    /* vLLM writes "inf" for a closed loop (no arrival rate) */
    const cJSON *rate = get(cfg, "rate");
    if (cJSON_IsNumber(rate)) cJSON_AddNumberToObject(v, "request_rate", rate->valuedouble);
    else cJSON_AddStringToObject(v, "request_rate", "inf");
    cJSON_AddNumberToObject(v, "burstiness", 1.0);     /* Poisson arrivals, as vLLM's default */
    copy_num(v, "max_concurrency", cfg, "max_concurrency");
    copy_num(v, "duration", s, "duration_s");
    copy_num(v, "completed", s, "completed");
    copy_num(v, "failed", s, "failed");
    copy_num(v, "total_input_tokens", s, "total_input_tokens");
    copy_num(v, "total_output_tokens", s, "total_output_tokens");
    copy_num(v, "request_throughput", s, "request_throughput");
    copy_num(v, "request_goodput", get(s, "goodput"), "request_goodput");
    copy_num(v, "output_throughput", s, "output_throughput");
    copy_num(v, "total_token_throughput", s, "total_token_throughput");
    const char *metrics[] = {"ttft", "tpot", "itl", "e2el"};
    const char *stat[][2] = {{"mean", "mean"}, {"median", "p50"}, {"std", "std"}, {"p99", "p99"}};
    for (size_t m = 0; m < 4; m++) {
        char k[32], name[48];
        snprintf(k, sizeof k, "%s_ms", metrics[m]);
        const cJSON *st = get(s, k);
        for (size_t i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "%s_%s_ms", stat[i][0], metrics[m]);
            copy_num(v, name, st, stat[i][1]);
        }
    }
    return v;
}
