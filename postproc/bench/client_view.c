/* Client view of a run for report.json (see client_view.h). The summary is recomputed
 * from requests.jsonl with the same function `moecap bench` used, so both agree; only the
 * measured duration and the SLOs come from bench-summary.json. */
#include "client_view.h"
#include "request_log.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            if (cap >= (64u << 20)) { free(b); b = NULL; break; }
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb; cap *= 2;
        }
        size_t k = fread(b + n, 1, cap - n - 1, f);
        n += k;
        if (!k) break;
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = 0;
    cJSON *o = cJSON_Parse(b);
    free(b);
    return o;
}

static int by_id(const void *a, const void *b)
{
    long x = ((const struct mc_req_record *)a)->id, y = ((const struct mc_req_record *)b)->id;
    return x < y ? -1 : x > y;
}

cJSON *mc_bench_client_view(const char *run_dir, int with_requests, char *err, size_t errsz)
{
    if (errsz) err[0] = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/requests.jsonl", run_dir);
    if (access(path, F_OK) != 0) return NULL;                /* no client data */
    struct mc_request_log log;
    if (mc_request_log_load(path, &log, err, errsz)) return NULL;
    char spath[4200];
    snprintf(spath, sizeof spath, "%s/bench-summary.json", run_dir);
    cJSON *bs = read_json(spath);
    struct mc_slo slo = {0};
    double duration = 0;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(bs, "goodput"), "slo_ms");
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(g, "ttft")) && cJSON_IsNumber(v)) slo.ttft_ms = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(g, "tpot")) && cJSON_IsNumber(v)) slo.tpot_ms = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(g, "e2el")) && cJSON_IsNumber(v)) slo.e2el_ms = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(bs, "duration_s")) && cJSON_IsNumber(v)) duration = v->valuedouble;
    qsort(log.recs, log.n, sizeof *log.recs, by_id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", "moecap bench");
    cJSON_AddStringToObject(o, "requests_file", path);
    cJSON_AddItemToObject(o, "summary", mc_request_log_summary(log.recs, log.n, &slo, duration));
    cJSON *cfg = bs ? cJSON_DetachItemFromObjectCaseSensitive(bs, "config") : NULL;
    if (cfg) cJSON_AddItemToObject(o, "config", cfg);
    if (with_requests) {
        cJSON *arr = cJSON_AddArrayToObject(o, "requests");
        for (size_t i = 0; i < log.n; i++) cJSON_AddItemToArray(arr, mc_req_record_to_json(&log.recs[i]));
    }
    cJSON_Delete(bs);
    mc_request_log_free(&log);
    return o;
}
