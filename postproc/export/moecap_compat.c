/* cap_metrics.json: MoE-CAP's result shape from the report document (see moecap_compat.h). */
#include "export/moecap_compat.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/report_reader.h"

static const cJSON *get(const cJSON *o, const char *path)   /* "a.b.c" */
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, k);
    return cur;
}

/* a number from the report, or null when the report has none */
static void add_from(cJSON *o, const char *key, const cJSON *v)
{
    if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(o, key, v->valuedouble);
    else cJSON_AddNullToObject(o, key);
}

static void add_mean(cJSON *o, const char *key, double sum, long n)
{
    if (n > 0) cJSON_AddNumberToObject(o, key, sum / (double)n);
    else cJSON_AddNullToObject(o, key);
}

/* MoE-CAP names the precision as torch does */
static const char *precision_name(const char *dt)
{
    static const char *map[][2] = {{"f32", "float32"}, {"bf16", "bfloat16"}, {"f16", "float16"}, {"f64", "float64"},
                                   {"fp8", "float8"}, {"f8e4m3", "float8_e4m3fn"}, {"f8e5m2", "float8_e5m2"}, {"i8", "int8"}};
    for (size_t i = 0; dt && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(dt, map[i][0])) return map[i][1];
    return dt;
}

/* gpu_type: "<devices>x<short name>", the short name as MoE-CAP takes it from the device
 * name ("NVIDIA H100 80GB HBM3" -> "H100"), else the hardware profile's name. */
static void add_gpu_type(cJSON *o, const cJSON *hw)
{
    const cJSON *model = get(hw, "model"), *name = get(hw, "name");
    char shortname[64] = "";
    if (cJSON_IsString(model)) {
        regex_t re;
        regmatch_t m[3];
        if (regcomp(&re, "NVIDIA[[:space:]]+(RTX[[:space:]]+)?([A-Z0-9]+)", REG_EXTENDED) == 0) {
            if (regexec(&re, model->valuestring, 3, m, 0) == 0) {
                int a = m[1].rm_so >= 0 ? (int)(m[1].rm_eo - m[1].rm_so) : 0;
                char rtx[16] = "";
                if (a) snprintf(rtx, sizeof rtx, "RTX");   /* MoE-CAP joins the groups and strips spaces */
                snprintf(shortname, sizeof shortname, "%s%.*s", rtx, (int)(m[2].rm_eo - m[2].rm_so),
                         model->valuestring + m[2].rm_so);
            }
            regfree(&re);
        }
    }
    if (!shortname[0]) snprintf(shortname, sizeof shortname, "%s", cJSON_IsString(name) ? name->valuestring : "Unknown");
    char s[96];
    snprintf(s, sizeof s, "%dx%s", (int)(cJSON_IsNumber(get(hw, "devices")) ? get(hw, "devices")->valuedouble : 1), shortname);
    cJSON_AddStringToObject(o, "gpu_type", s);
}

/* KV elements per token as MoE-CAP counts them: 2 x layers x head_dim x kv_heads (no element
 * size). MLA models need kv_lora_rank, which report.json does not carry: 0 = unknown. */
static double kv_elements_per_token(const cJSON *model)
{
    const cJSON *arch = get(model, "architecture");
    if (cJSON_IsString(arch) && !strncmp(arch->valuestring, "deepseek", 8)) return 0;
    const cJSON *l = get(model, "num_layers"), *hd = get(model, "head_dim"), *kv = get(model, "num_kv_heads");
    if (!cJSON_IsNumber(l) || !cJSON_IsNumber(hd) || !cJSON_IsNumber(kv)) return 0;
    return 2.0 * l->valuedouble * hd->valuedouble * kv->valuedouble;
}

cJSON *moecap_cap_metrics(const struct report_doc *doc)
{
    struct report_reader d;
    report_reader_open(&d, doc);
    const cJSON *h = d.root;
    double kv_tok = kv_elements_per_token(get(h, "model"));
    /* per-step sums over prefill and decode steps (MoE-CAP's records are one or the other) */
    double ttft = 0, tpot = 0, prefill_tp = 0, decode_tp = 0, kv = 0;
    long n_pre = 0, n_dec = 0, n_kv = 0;
    for (cJSON *s; (s = report_reader_next_step(&d)); cJSON_Delete(s)) {
        const cJSON *kind = get(s, "kind"), *t = get(s, "time_s"), *seqs = get(s, "sequences"), *c;
        if (!cJSON_IsString(kind) || !cJSON_IsNumber(t) || t->valuedouble <= 0) continue;
        int pre = !strcmp(kind->valuestring, "prefill"), dec = !strcmp(kind->valuestring, "decode");
        if (!pre && !dec) continue;
        double seq_lens_sum = 0;   /* MoE-CAP's seq_lens_sum: the batch's sequence lengths */
        cJSON_ArrayForEach(c, get(s, "context")) if (cJSON_IsNumber(c)) seq_lens_sum += c->valuedouble;
        if (pre) { ttft += t->valuedouble; prefill_tp += seq_lens_sum / t->valuedouble; n_pre++; }
        else { tpot += t->valuedouble; decode_tp += (cJSON_IsNumber(seqs) ? seqs->valuedouble : 0) / t->valuedouble; n_dec++; }
        if (kv_tok > 0) { kv += (seq_lens_sum + 1) * kv_tok / 1e6; n_kv++; }
    }

    cJSON *o = cJSON_CreateObject();
    add_from(o, "prefill_smbu", get(h, "moecap_compat.prefill.s_mbu"));
    add_from(o, "prefill_smfu", get(h, "moecap_compat.prefill.s_mfu"));
    add_from(o, "decoding_smbu", get(h, "moecap_compat.decode.s_mbu"));
    add_from(o, "decoding_smfu", get(h, "moecap_compat.decode.s_mfu"));
    add_mean(o, "kv_size", kv, n_kv);
    add_mean(o, "decoding_throughput", decode_tp, n_dec);
    add_mean(o, "prefill_tp", prefill_tp, n_pre);
    add_mean(o, "ttft", ttft, n_pre);
    add_mean(o, "tpot", tpot, n_dec);
    /* Room for more CAP figures taken from the report (a cost figure, ...): add them here. */
    const cJSON *client = get(h, "client");
    if (client) {
        add_from(o, "total_requests", get(client, "summary.requests"));
        add_from(o, "successful_requests", get(client, "summary.completed"));
        add_from(o, "failed_requests", get(client, "summary.failed"));
    }
    const cJSON *mp = get(h, "model.path");
    if (cJSON_IsString(mp)) {   /* the model, as MoE-CAP names it: its directory, not the config file */
        char name[1024];
        snprintf(name, sizeof name, "%s", mp->valuestring);
        size_t l = strlen(name), c = strlen("/config.json");
        if (l > c && !strcmp(name + l - c, "/config.json")) name[l - c] = 0;
        cJSON_AddStringToObject(o, "model_name", name);
    }
    const cJSON *exe = get(h, "run.processes") ? get(h, "run.processes")->child : NULL;
    exe = exe ? get(exe, "exe") : NULL;
    if (cJSON_IsString(exe)) {
        const char *b = strrchr(exe->valuestring, '/');
        cJSON_AddStringToObject(o, "method", b ? b + 1 : exe->valuestring);
    }
    const cJSON *dt = get(h, "model.weight_dtype");
    if (cJSON_IsString(dt)) cJSON_AddStringToObject(o, "precision", precision_name(dt->valuestring));
    /* e2e_s: the benchmark's duration (MoE-CAP: first send -> last reply, rounded to 10 ms),
     * else the traced steps' span */
    const cJSON *dur = client ? get(client, "summary.duration_s") : NULL;
    if (!cJSON_IsNumber(dur)) dur = get(h, "run.span_s");
    if (cJSON_IsNumber(dur)) cJSON_AddNumberToObject(o, "e2e_s", round(dur->valuedouble * 100) / 100);
    add_from(o, "batch_size", client ? get(client, "config.max_concurrency") : NULL);
    add_gpu_type(o, get(h, "hardware"));
    const cJSON *ds = client ? get(client, "config.dataset") : NULL;
    if (cJSON_IsString(ds)) cJSON_AddStringToObject(o, "dataset", ds->valuestring);
    else cJSON_AddNullToObject(o, "dataset");
    cJSON *prov = cJSON_AddObjectToObject(o, "moecap");
    cJSON_AddStringToObject(prov, "view", "MoE-CAP cap_metrics compatibility view of report.json (docs/report-schema.md)");
    cJSON_AddNumberToObject(prov, "prefill_steps", (double)n_pre);
    cJSON_AddNumberToObject(prov, "decode_steps", (double)n_dec);
    report_reader_close(&d);
    return o;
}

int moecap_cap_metrics_write(const struct report_doc *doc, const char *dir, char *err, size_t errlen)
{
    char out[4096];
    snprintf(out, sizeof out, "%s/cap_metrics.json", dir);
    cJSON *o = moecap_cap_metrics(doc);
    char *s = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    FILE *f = s ? fopen(out, "w") : NULL;
    int rc = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(s);
    if (rc) snprintf(err, errlen, "cannot write %s", out);
    return rc;
}
