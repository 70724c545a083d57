/* requests.jsonl records <-> JSON, log loading, and the client-side latency/throughput/
 * goodput/accuracy summary (definitions follow vLLM `bench serve`; docs/bench.md). */
#include "request_log.h"
#include "dataset.h"
#include "trace/utf8.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *kind_name(int k)
{
    return k == MC_ITEM_GSM8K ? "gsm8k" : k == MC_ITEM_CHOICE ? "choice" : "plain";
}

static void add_num_or_null(cJSON *o, const char *k, double v)
{
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

/* Strings come from servers and datasets: anything that is not UTF-8 is replaced, so every
 * line stays readable to strict JSON readers. */
static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
    if (!v) { cJSON_AddNullToObject(o, k); return; }
    size_t n = strlen(v);
    if (mc_utf8_valid(v, n)) { cJSON_AddStringToObject(o, k, v); return; }
    char *fixed = mc_utf8_sanitize(v, n);
    cJSON_AddStringToObject(o, k, fixed ? fixed : "");
    free(fixed);
}

cJSON *mc_req_record_to_json(const struct mc_req_record *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddBoolToObject(o, "ok", r->ok);
    add_str_or_null(o, "error", r->error);
    cJSON_AddNumberToObject(o, "http_status", r->http_status);
    if (r->prompt_tokens >= 0) cJSON_AddNumberToObject(o, "prompt_tokens", (double)r->prompt_tokens);
    else cJSON_AddNullToObject(o, "prompt_tokens");
    cJSON_AddStringToObject(o, "prompt_tokens_source", r->prompt_tokens_from_usage ? "usage" : "unknown");
    cJSON_AddNumberToObject(o, "output_tokens", (double)r->output_tokens);
    cJSON_AddStringToObject(o, "output_tokens_source", r->output_tokens_from_usage ? "usage" : "chunks");
    cJSON_AddNumberToObject(o, "chunks", (double)r->chunks);
    cJSON_AddNumberToObject(o, "start_ms", r->start_ms);
    char ns[32];                   /* exact integer (a double would round to ~256 ns) */
    snprintf(ns, sizeof ns, "%lld", (long long)r->send_unix_ns);
    cJSON_AddRawToObject(o, "send_unix_ns", ns);
    add_num_or_null(o, "ttft_ms", r->ttft_ms);
    add_num_or_null(o, "tpot_ms", r->tpot_ms);
    add_num_or_null(o, "e2el_ms", r->e2el_ms);
    cJSON *itl = cJSON_AddArrayToObject(o, "itl_ms");
    for (size_t i = 0; i < r->n_itl; i++) cJSON_AddItemToArray(itl, cJSON_CreateNumber(r->itl_ms[i]));
    add_str_or_null(o, "answer", r->answer);
    add_str_or_null(o, "expected", r->expected);
    cJSON_AddStringToObject(o, "kind", kind_name(r->kind));
    if (r->score >= 0) cJSON_AddNumberToObject(o, "score", r->score);
    else cJSON_AddNullToObject(o, "score");
    add_str_or_null(o, "finish_reason", r->finish_reason);
    add_str_or_null(o, "warning", r->warning);
    cJSON_AddNumberToObject(o, "max_tokens", r->requested_max_tokens);
    if (r->requested_input_len) cJSON_AddNumberToObject(o, "input_len", r->requested_input_len);
    return o;
}

static double num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* An integer field within [lo, hi], else dflt: a log is input too, and converting a double
 * outside the target type's range is undefined behaviour. */
static long long num_int(const cJSON *o, const char *k, long long dflt, long long lo, long long hi)
{
    double v = num(o, k, NAN);
    if (!(v >= (double)lo && v <= (double)hi)) return dflt;
    return (long long)v;
}

static char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static int is_src(const cJSON *o, const char *k, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

int mc_req_record_from_json(const cJSON *o, struct mc_req_record *r)
{
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "id"))) return -1;
    r->id = (long)num_int(o, "id", -1, 0, LONG_MAX / 2);
    r->ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"));
    r->error = str(o, "error");
    r->http_status = (int)num_int(o, "http_status", 0, 0, 999);
    r->prompt_tokens = (long)num_int(o, "prompt_tokens", -1, 0, MC_MAX_TOKEN_COUNT);
    r->prompt_tokens_from_usage = is_src(o, "prompt_tokens_source", "usage");
    r->output_tokens = (long)num_int(o, "output_tokens", 0, 0, MC_MAX_TOKEN_COUNT);
    r->output_tokens_from_usage = is_src(o, "output_tokens_source", "usage");
    r->chunks = (long)num_int(o, "chunks", 0, 0, LONG_MAX / 2);
    r->start_ms = num(o, "start_ms", 0);
    r->send_unix_ns = (int64_t)num_int(o, "send_unix_ns", 0, 0, INT64_MAX / 2);
    r->ttft_ms = num(o, "ttft_ms", NAN);
    r->tpot_ms = num(o, "tpot_ms", NAN);
    r->e2el_ms = num(o, "e2el_ms", NAN);
    const cJSON *itl = cJSON_GetObjectItemCaseSensitive(o, "itl_ms");
    if (cJSON_IsArray(itl) && cJSON_GetArraySize(itl) > 0) {
        r->itl_ms = malloc((size_t)cJSON_GetArraySize(itl) * sizeof(double));
        const cJSON *x;
        cJSON_ArrayForEach(x, itl) if (cJSON_IsNumber(x) && r->itl_ms) r->itl_ms[r->n_itl++] = x->valuedouble;
    }
    r->answer = str(o, "answer");
    r->expected = str(o, "expected");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
    r->kind = MC_ITEM_PLAIN;
    if (cJSON_IsString(k)) {
        if (!strcmp(k->valuestring, "gsm8k")) r->kind = MC_ITEM_GSM8K;
        else if (!strcmp(k->valuestring, "choice")) r->kind = MC_ITEM_CHOICE;
    }
    r->score = (int)num_int(o, "score", -1, 0, 1);
    r->finish_reason = str(o, "finish_reason");
    r->warning = str(o, "warning");
    r->requested_max_tokens = (int)num_int(o, "max_tokens", 0, 0, INT_MAX);
    r->requested_input_len = (int)num_int(o, "input_len", 0, 0, INT_MAX);
    return 0;
}

void mc_req_record_free(struct mc_req_record *r)
{
    free(r->error); free(r->itl_ms); free(r->answer); free(r->expected); free(r->finish_reason); free(r->warning);
    memset(r, 0, sizeof *r);
}

int mc_request_log_load(const char *path, struct mc_request_log *log, char *err, size_t errsz)
{
    memset(log, 0, sizeof *log);
    char file[4200];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(file, sizeof file, "%s/requests.jsonl", path);
    else snprintf(file, sizeof file, "%s", path);
    FILE *f = fopen(file, "r");
    if (!f) { snprintf(err, errsz, "cannot open %s: %s", file, strerror(errno)); return -1; }
    char *line = NULL;
    size_t cap = 0, rcap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0, pending_bad = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (pending_bad) {   /* a bad line followed by more lines: real corruption */
            snprintf(err, errsz, "%s:%ld: not a request record", file, lineno - 1);
            rc = -1; break;
        }
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        cJSON *o = cJSON_Parse(s);
        struct mc_req_record r;
        if (!o || mc_req_record_from_json(o, &r)) {
            cJSON_Delete(o);
            pending_bad = 1;           /* tolerated only as the (truncated) last line */
            continue;
        }
        cJSON_Delete(o);
        if (log->n == rcap) {
            rcap = rcap ? 2 * rcap : 64;
            struct mc_req_record *nr = realloc(log->recs, rcap * sizeof *nr);
            if (!nr) { mc_req_record_free(&r); snprintf(err, errsz, "out of memory"); rc = -1; break; }
            log->recs = nr;
        }
        log->recs[log->n++] = r;
    }
    free(line);
    fclose(f);
    if (rc) mc_request_log_free(log);
    return rc;
}

void mc_request_log_free(struct mc_request_log *log)
{
    for (size_t i = 0; i < log->n; i++) mc_req_record_free(&log->recs[i]);
    free(log->recs);
    memset(log, 0, sizeof *log);
}

int mc_slo_parse(const char *spec, struct mc_slo *slo, char *err, size_t errsz)
{
    const char *p = spec;
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        char key[16] = {0};
        size_t k = 0;
        while (*p && *p != ':' && *p != '=' && k < sizeof key - 1) key[k++] = *p++;
        if (*p != ':' && *p != '=') { snprintf(err, errsz, "goodput: expected NAME:MS in '%s'", spec); return -1; }
        p++;
        char *end;
        double v = strtod(p, &end);
        if (end == p || v <= 0 || !(*end == 0 || *end == ',' || *end == ' ')) {
            snprintf(err, errsz, "goodput: '%s' needs a positive number of milliseconds", key);
            return -1;
        }
        p = end;
        if (!strcmp(key, "ttft")) slo->ttft_ms = v;
        else if (!strcmp(key, "tpot")) slo->tpot_ms = v;
        else if (!strcmp(key, "e2el")) slo->e2el_ms = v;
        else { snprintf(err, errsz, "goodput: unknown metric '%s' (ttft, tpot, e2el)", key); return -1; }
    }
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double mc_bench_percentile(const double *v, size_t n, double p)
{
    if (n == 0) return NAN;
    double pos = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    if (lo >= n - 1) return v[n - 1];
    double frac = pos - (double)lo;
    return v[lo] + (v[lo + 1] - v[lo]) * frac;
}

/* {count, mean, std, min, max, p50, p90, p99} of v (sorted in place); nulls when empty. */
static cJSON *stats(double *v, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)n);
    if (n == 0) {
        const char *k[] = {"mean", "std", "min", "max", "p50", "p90", "p99"};
        for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) cJSON_AddNullToObject(o, k[i]);
        return o;
    }
    qsort(v, n, sizeof *v, cmp_d);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    double mean = s / (double)n;
    for (size_t i = 0; i < n; i++) s2 += (v[i] - mean) * (v[i] - mean);
    cJSON_AddNumberToObject(o, "mean", mean);
    cJSON_AddNumberToObject(o, "std", sqrt(s2 / (double)n));   /* population std, as numpy */
    cJSON_AddNumberToObject(o, "min", v[0]);
    cJSON_AddNumberToObject(o, "max", v[n - 1]);
    cJSON_AddNumberToObject(o, "p50", mc_bench_percentile(v, n, 50));
    cJSON_AddNumberToObject(o, "p90", mc_bench_percentile(v, n, 90));
    cJSON_AddNumberToObject(o, "p99", mc_bench_percentile(v, n, 99));
    return o;
}

cJSON *mc_request_log_summary(const struct mc_req_record *recs, size_t n,
                              const struct mc_slo *slo, double duration_s)
{
    size_t completed = 0, failed = 0, n_itl = 0;
    long long in_tok = 0, out_tok = 0;
    int in_tok_known = 1;
    double last = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        const struct mc_req_record *r = &recs[i];
        double end = r->start_ms + (isnan(r->e2el_ms) ? 0 : r->e2el_ms);
        if (end > last) last = end;
        if (!r->ok) { failed++; continue; }
        completed++;
        out_tok += r->output_tokens;
        if (r->prompt_tokens >= 0) in_tok += r->prompt_tokens;
        else in_tok_known = 0;
        n_itl += r->n_itl;
    }
    if (duration_s <= 0) duration_s = n && last > 0 ? last / 1000.0 : 0;   /* start_ms 0 = bench start */
    double *ttft = malloc((completed + 1) * sizeof(double));
    double *tpot = malloc((completed + 1) * sizeof(double));
    double *e2el = malloc((completed + 1) * sizeof(double));
    double *itl = malloc((n_itl + 1) * sizeof(double));
    size_t nt = 0, np = 0, ne = 0, ni = 0, good = 0;
    size_t with_ref = 0, scored = 0, correct = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mc_req_record *r = &recs[i];
        if (r->expected && r->kind != MC_ITEM_PLAIN) {
            with_ref++;
            if (r->ok && r->score >= 0) { scored++; correct += r->score > 0; }
        }
        if (!r->ok) continue;
        if (!isnan(r->ttft_ms)) ttft[nt++] = r->ttft_ms;
        if (!isnan(r->tpot_ms)) tpot[np++] = r->tpot_ms;
        if (!isnan(r->e2el_ms)) e2el[ne++] = r->e2el_ms;
        for (size_t k = 0; k < r->n_itl; k++) itl[ni++] = r->itl_ms[k];
        if (slo) {
            /* vLLM: a one-token request has TPOT 0 for the SLO check */
            double tp = isnan(r->tpot_ms) ? 0 : r->tpot_ms;
            int g = 1;
            if (slo->ttft_ms > 0 && !(r->ttft_ms <= slo->ttft_ms)) g = 0;
            if (slo->tpot_ms > 0 && !(tp <= slo->tpot_ms)) g = 0;
            if (slo->e2el_ms > 0 && !(r->e2el_ms <= slo->e2el_ms)) g = 0;
            good += g;
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", MC_BENCH_SUMMARY_SCHEMA);
    cJSON_AddNumberToObject(o, "requests", (double)n);
    cJSON_AddNumberToObject(o, "completed", (double)completed);
    cJSON_AddNumberToObject(o, "failed", (double)failed);
    cJSON_AddNumberToObject(o, "duration_s", duration_s);
    if (in_tok_known) cJSON_AddNumberToObject(o, "total_input_tokens", (double)in_tok);
    else cJSON_AddNullToObject(o, "total_input_tokens");
    cJSON_AddNumberToObject(o, "total_output_tokens", (double)out_tok);
    if (duration_s > 0) {
        cJSON_AddNumberToObject(o, "request_throughput", (double)completed / duration_s);
        cJSON_AddNumberToObject(o, "output_throughput", (double)out_tok / duration_s);
        if (in_tok_known) cJSON_AddNumberToObject(o, "total_token_throughput", (double)(in_tok + out_tok) / duration_s);
        else cJSON_AddNullToObject(o, "total_token_throughput");
    } else {
        cJSON_AddNullToObject(o, "request_throughput");
        cJSON_AddNullToObject(o, "output_throughput");
        cJSON_AddNullToObject(o, "total_token_throughput");
    }
    cJSON_AddItemToObject(o, "ttft_ms", stats(ttft, nt));
    cJSON_AddItemToObject(o, "tpot_ms", stats(tpot, np));
    cJSON_AddItemToObject(o, "itl_ms", stats(itl, ni));
    cJSON_AddItemToObject(o, "e2el_ms", stats(e2el, ne));
    if (slo && (slo->ttft_ms > 0 || slo->tpot_ms > 0 || slo->e2el_ms > 0)) {
        cJSON *g = cJSON_AddObjectToObject(o, "goodput");
        cJSON *s = cJSON_AddObjectToObject(g, "slo_ms");
        if (slo->ttft_ms > 0) cJSON_AddNumberToObject(s, "ttft", slo->ttft_ms);
        if (slo->tpot_ms > 0) cJSON_AddNumberToObject(s, "tpot", slo->tpot_ms);
        if (slo->e2el_ms > 0) cJSON_AddNumberToObject(s, "e2el", slo->e2el_ms);
        cJSON_AddNumberToObject(g, "good_requests", (double)good);
        if (duration_s > 0) cJSON_AddNumberToObject(g, "request_goodput", (double)good / duration_s);
        else cJSON_AddNullToObject(g, "request_goodput");
    } else {
        cJSON_AddNullToObject(o, "goodput");
    }
    if (with_ref) {
        cJSON *a = cJSON_AddObjectToObject(o, "accuracy");
        cJSON_AddNumberToObject(a, "with_reference", (double)with_ref);
        cJSON_AddNumberToObject(a, "scored", (double)scored);
        cJSON_AddNumberToObject(a, "correct", (double)correct);
        if (scored) cJSON_AddNumberToObject(a, "accuracy", (double)correct / (double)scored);
        else cJSON_AddNullToObject(a, "accuracy");
        cJSON_AddNumberToObject(a, "accuracy_failed_as_wrong", (double)correct / (double)with_ref);
    } else {
        cJSON_AddNullToObject(o, "accuracy");
    }
    free(ttft); free(tpot); free(e2el); free(itl);
    return o;
}
