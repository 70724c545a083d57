/* lm-evaluation-harness results JSON -> normalised accuracy object (see lmeval.h). */
#include "lmeval.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t max, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errsz, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            if (cap >= max) { free(b); b = NULL; snprintf(err, errsz, "%s is larger than %zu bytes", path, max); break; }
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; snprintf(err, errsz, "out of memory"); break; }
            b = nb; cap *= 2;
        }
        size_t k = fread(b + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) { b[n] = 0; break; }
    }
    fclose(f);
    return b;
}

static const char *const primary[] = {
    "exact_match,strict-match", "exact_match,flexible-extract", "acc_norm,none", "acc,none",
    "exact_match,none", "acc_norm", "acc", "exact_match",
};

static int is_stderr_key(const char *k) { return strstr(k, "stderr") != NULL; }

int mc_lmeval_read(const char *path, cJSON **out, char *err, size_t errsz)
{
    *out = NULL;
    char *text = slurp(path, 256u << 20, err, errsz);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) { snprintf(err, errsz, "%s is not valid JSON", path); return -1; }
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    if (!cJSON_IsObject(results)) {
        snprintf(err, errsz, "%s has no \"results\" object: not an lm-evaluation-harness results file", path);
        cJSON_Delete(root);
        return -1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", "lm-evaluation-harness");
    cJSON_AddStringToObject(o, "path", path);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
    const cJSON *ma = cJSON_GetObjectItemCaseSensitive(cfg, "model_args");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(root, "model_name");
    if (cJSON_IsString(ma)) cJSON_AddStringToObject(o, "model", ma->valuestring);
    else if (cJSON_IsString(mn)) cJSON_AddStringToObject(o, "model", mn->valuestring);
    else cJSON_AddNullToObject(o, "model");
    const cJSON *nsamp = cJSON_GetObjectItemCaseSensitive(root, "n-samples");
    cJSON *tasks = cJSON_AddArrayToObject(o, "tasks");
    const cJSON *t;
    cJSON_ArrayForEach(t, results) {
        if (!cJSON_IsObject(t) || !t->string) continue;
        cJSON *metrics = cJSON_CreateObject();
        const cJSON *m, *first = NULL;
        cJSON_ArrayForEach(m, t) {
            if (!cJSON_IsNumber(m) || !m->string) continue;
            cJSON_AddNumberToObject(metrics, m->string, m->valuedouble);
            if (!first && !is_stderr_key(m->string)) first = m;
        }
        const cJSON *pm = NULL;
        for (size_t i = 0; i < sizeof primary / sizeof primary[0] && !pm; i++) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(t, primary[i]);
            if (cJSON_IsNumber(c)) pm = c;
        }
        if (!pm) pm = first;
        if (!pm) { cJSON_Delete(metrics); continue; }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "task", t->string);
        cJSON_AddStringToObject(e, "metric", pm->string);
        cJSON_AddNumberToObject(e, "value", pm->valuedouble);
        /* stderr key: "acc,none" -> "acc_stderr,none"; "acc" -> "acc_stderr" */
        char sk[256];
        const char *comma = strchr(pm->string, ',');
        if (comma) snprintf(sk, sizeof sk, "%.*s_stderr%s", (int)(comma - pm->string), pm->string, comma);
        else snprintf(sk, sizeof sk, "%s_stderr", pm->string);
        const cJSON *se = cJSON_GetObjectItemCaseSensitive(t, sk);
        if (cJSON_IsNumber(se)) cJSON_AddNumberToObject(e, "stderr", se->valuedouble);
        else cJSON_AddNullToObject(e, "stderr");   /* "N/A" strings included */
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(nsamp, t->string);
        const cJSON *eff = cJSON_GetObjectItemCaseSensitive(ns, "effective");
        if (cJSON_IsNumber(eff)) cJSON_AddNumberToObject(e, "n", eff->valuedouble);
        else cJSON_AddNullToObject(e, "n");
        cJSON_AddItemToObject(e, "metrics", metrics);
        cJSON_AddItemToArray(tasks, e);
    }
    cJSON_Delete(root);
    *out = o;
    return 0;
}
