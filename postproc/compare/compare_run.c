/* Loading a report for `moecap compare`, its headline figures and its class (see compare_run.h). */
#include "compare/compare_run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "render/render_util.h"

static const struct { const char *title; enum mc_fmt fmt; } metrics[MC_M_COUNT] = {
    [MC_M_TTFT] = {"TTFT (server)", MC_F_TIME},
    [MC_M_TPOT] = {"TPOT (server)", MC_F_TIME},
    [MC_M_TTFT_CLIENT] = {"TTFT (client)", MC_F_TIME},
    [MC_M_TPOT_CLIENT] = {"TPOT (client)", MC_F_TIME},
    [MC_M_TPUT] = {"output tokens/s (server, busy)", MC_F_RATE},
    [MC_M_TPUT_CLIENT] = {"output tokens/s (client)", MC_F_RATE},
    [MC_M_SMBU] = {"S-MBU", MC_F_PCT},
    [MC_M_SMFU] = {"S-MFU", MC_F_PCT},
    [MC_M_MBU] = {"MBU (dense)", MC_F_PCT},
    [MC_M_MFU] = {"MFU (dense)", MC_F_PCT},
    [MC_M_ACCURACY] = {"accuracy", MC_F_PCT},
    [MC_M_ENERGY] = {"energy (J)", MC_F_NUM},
    [MC_M_COST_1M] = {"USD / 1M tokens", MC_F_NUM},
    [MC_M_COST_1M_IN] = {"USD / 1M input tokens", MC_F_NUM},
    [MC_M_COST_1M_OUT] = {"USD / 1M output tokens", MC_F_NUM},
    [MC_M_CLOUD_1M] = {"cloud USD / 1M tokens", MC_F_NUM},
    [MC_M_MEMORY] = {"memory used", MC_F_BYTES},
};

const char *mc_cmp_metric_title(int m) { return m >= 0 && m < MC_M_COUNT ? metrics[m].title : "?"; }
int mc_cmp_metric_fmt(int m) { return m >= 0 && m < MC_M_COUNT ? (int)metrics[m].fmt : MC_F_NUM; }

/* Index just past the JSON string starting at s[i] == '"' (len when unterminated). */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return len;
}

/* Index just past the JSON value starting at s[i] (after white space). */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    if (i >= len) return len;
    if (s[i] == '"') return skip_string(s, len, i);
    if (s[i] != '[' && s[i] != '{') {
        while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']') i++;
        return i;
    }
    int depth = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') { i = skip_string(s, len, i); continue; }
        if (c == '[' || c == '{') depth++;
        else if ((c == ']' || c == '}') && --depth == 0) return i + 1;
        i++;
    }
    return len;
}

char *mc_cmp_strip_steps(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] != '{') {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && (unsigned char)s[i] != 0xef &&
            (unsigned char)s[i] != 0xbb && (unsigned char)s[i] != 0xbf) return NULL;
        i++;
    }
    if (i >= len) return NULL;
    char *out = malloc(len + 3);
    if (!out) return NULL;
    size_t o = 0;
    out[o++] = '{';
    i++;
    /* top level: "key": value pairs; copy each unless the key is "steps" */
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != '"' && s[i] != '}') i++;
        if (i >= len || s[i] == '}') {
            memcpy(out + o, s + start, i - start + (i < len));
            o += i - start + (i < len);
            break;
        }
        size_t key_start = i;
        i = skip_string(s, len, i);
        int is_steps = i - key_start == 7 && !memcmp(s + key_start, "\"steps\"", 7);
        while (i < len && s[i] != ':') i++;
        if (i < len) i++;
        i = skip_value(s, len, i);
        while (i < len && s[i] != ',' && s[i] != '}') i++;
        if (is_steps) {
            /* drop the pair and its comma; keep the JSON valid when it was the last pair */
            if (i < len && s[i] == ',') i++;
            else {
                while (o > 1 && (out[o - 1] == ' ' || out[o - 1] == '\n' || out[o - 1] == '\t' || out[o - 1] == '\r')) o--;
                if (o > 1 && out[o - 1] == ',') o--;
            }
            continue;
        }
        memcpy(out + o, s + start, i - start);
        o += i - start;
        if (i < len && s[i] == ',') out[o++] = s[i++];
    }
    out[o] = 0;
    return out;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 && (buf = malloc((size_t)st.st_size + 1))) {
        *len = fread(buf, 1, (size_t)st.st_size, f);
        buf[*len] = 0;
    }
    fclose(f);
    return buf;
}

static double num(const cJSON *doc, const char *path)
{
    double v;
    return mc_rj_num(doc, path, &v) ? v : NAN;
}

static void headline(struct mc_cmp_run *r)
{
    const cJSON *d = r->doc;
    r->v[MC_M_TTFT] = num(d, "aggregate.ttft_server_s.mean");
    r->v[MC_M_TPOT] = num(d, "aggregate.tpot_server_s.mean");
    r->v[MC_M_TTFT_CLIENT] = num(d, "client.summary.ttft_ms.mean") / 1e3;
    r->v[MC_M_TPOT_CLIENT] = num(d, "client.summary.tpot_ms.mean") / 1e3;
    r->v[MC_M_TPUT] = num(d, "aggregate.tokens_per_s.output");
    r->v[MC_M_TPUT_CLIENT] = num(d, "client.summary.output_throughput");
    r->v[MC_M_SMBU] = num(d, "aggregate.s_mbu");
    r->v[MC_M_SMFU] = num(d, "aggregate.s_mfu");
    r->v[MC_M_MBU] = num(d, "aggregate.mbu");
    r->v[MC_M_MFU] = num(d, "aggregate.mfu");
    r->v[MC_M_ACCURACY] = num(d, "client.summary.accuracy.accuracy");
    if (isnan(r->v[MC_M_ACCURACY])) {
        const cJSON *t = cJSON_GetArrayItem(mc_rj(d, "lm_eval.tasks"), 0);
        r->v[MC_M_ACCURACY] = num(t, "value");
    }
    r->v[MC_M_ENERGY] = num(d, "energy.joules");
    r->energy_estimated = mc_rj_bool(d, "energy.estimated") == 1;
    r->v[MC_M_COST_1M] = num(d, "cost.owned.per_1m_tokens_usd");
    r->v[MC_M_COST_1M_IN] = num(d, "cost.owned.per_1m_input_tokens_usd");
    r->v[MC_M_COST_1M_OUT] = num(d, "cost.owned.per_1m_output_tokens_usd");
    r->v[MC_M_CLOUD_1M] = num(d, "cost.cloud.per_1m_tokens_usd");
    const char *kind = mc_rj_str(d, "hardware.kind");
    r->v[MC_M_MEMORY] = num(d, kind && !strcmp(kind, "gpu") ? "memory.peak_device_bytes" : "memory.peak_rss_bytes");

    const char *arch = mc_rj_str(d, "model.architecture"), *mp = mc_rj_str(d, "model.path");
    /* the model's name: its directory (a path to config.json names the directory holding it) */
    char mname[256] = "?";
    if (mp) {
        snprintf(mname, sizeof mname, "%s", mp);
        size_t l = strlen(mname);
        while (l > 1 && mname[l - 1] == '/') mname[--l] = 0;
        char *s = strrchr(mname, '/');
        if (s && !strcmp(s + 1, "config.json") && s != mname) *s = 0;
        s = strrchr(mname, '/');
        if (s) memmove(mname, s + 1, strlen(s + 1) + 1);
    }
    char params[32] = "";
    double p = num(d, "model.params.total");
    if (p > 0) mc_fmt(params, sizeof params, MC_F_SI, p);
    snprintf(r->model, sizeof r->model, "%s%s%s%s%s", mname, arch ? " (" : "", arch ? arch : "",
             params[0] ? ", " : "", params);
    if (arch) snprintf(r->model + strlen(r->model), sizeof r->model - strlen(r->model), ")");
    const char *hw = mc_rj_str(d, "hardware.name");
    double dev = num(d, "hardware.devices");
    snprintf(r->hardware, sizeof r->hardware, "%s%s", hw ? hw : "?", mc_rj_bool(d, "hardware.measured") == 1 ? " (measured)" : "");
    if (dev > 1) snprintf(r->hardware + strlen(r->hardware), sizeof r->hardware - strlen(r->hardware), " x %.0f", dev);
    const char *wd = mc_rj_str(d, "model.weight_dtype");
    double elt = num(d, "run.attribution.gemm_weight_bytes_per_element");
    if (isnan(elt)) elt = num(d, "model.bytes_per_element");
    if (!isnan(elt)) snprintf(r->precision, sizeof r->precision, "%s, %g B/weight", wd ? wd : "?", elt);
    else snprintf(r->precision, sizeof r->precision, "%s", wd ? wd : "?");
}

int mc_cmp_run_load(const char *spec, struct mc_cmp_run *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    struct stat st;
    if (stat(spec, &st) != 0) {
        snprintf(err, errlen, "%s: %s", spec, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(r->path, sizeof r->path, "%.1000s/report.json", spec);
        if (access(r->path, R_OK) != 0) snprintf(r->path, sizeof r->path, "%.1000s/report/report.json", spec);
        if (access(r->path, R_OK) != 0) {
            snprintf(err, errlen, "%s: no report.json (or report/report.json) in this directory; run `moecap report %s "
                     "--model M --hw H` first", spec, spec);
            return -1;
        }
    } else {
        snprintf(r->path, sizeof r->path, "%s", spec);
    }
    size_t len = 0;
    char *text = slurp(r->path, &len);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read: %s", r->path, strerror(errno ? errno : EIO));
        return -1;
    }
    char *head = mc_cmp_strip_steps(text, len);
    free(text);
    r->doc = head ? cJSON_Parse(head) : NULL;
    free(head);
    if (!cJSON_IsObject(r->doc)) {
        snprintf(err, errlen, "%s: not a JSON object (is it a moecap report.json?)", r->path);
        mc_cmp_run_free(r);
        return -1;
    }
    double sv = num(r->doc, "schema_version");
    if (!cJSON_IsObject(mc_rj(r->doc, "aggregate")) || !cJSON_IsObject(mc_rj(r->doc, "model")) || isnan(sv)) {
        snprintf(err, errlen, "%s: not a moecap report (no schema_version, model or aggregate)", r->path);
        mc_cmp_run_free(r);
        return -1;
    }
    if (sv != 1) {
        snprintf(err, errlen, "%s: report schema_version %g; this moecap reads version 1", r->path, sv);
        mc_cmp_run_free(r);
        return -1;
    }
    /* label: the run directory's name */
    const char *dir = mc_rj_str(r->doc, "run.dir");
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir ? dir : spec);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
    const char *b = strrchr(tmp, '/');
    snprintf(r->label, sizeof r->label, "%s", b ? b + 1 : tmp);
    headline(r);
    mc_cmp_classify(r->doc, r->cls, r->cls_reason, sizeof r->cls_reason, &r->cls_from_report);
    return 0;
}

void mc_cmp_run_free(struct mc_cmp_run *r)
{
    cJSON_Delete(r->doc);
    r->doc = NULL;
}

/* Expert bytes loaded into memory after the first step (offloading: experts moved while
 * decoding), from the report's offload section; NaN when the report has none. */
static double offload_after_first(const cJSON *d, double *total)
{
    *total = num(d, "offload.loaded_bytes");
    double steps_after = num(d, "offload.steps_loading_after_first");
    if (isnan(*total)) return NAN;
    return steps_after > 0 ? *total : 0;
}

void mc_cmp_classify(const cJSON *d, char cls[8], char *reason, size_t len, int *from_report)
{
    *from_report = 0;
    /* The report's own decision (system_class: classes + evidence per class), when it made one */
    const cJSON *sc = mc_rj(d, "system_class.classes"), *it;
    if (cJSON_IsArray(sc) && cJSON_GetArraySize(sc) > 0) {
        size_t cl = 0, rl = 0;
        cls[0] = 0;
        rl = (size_t)snprintf(reason, len, "stated by the report:");
        cJSON_ArrayForEach(it, sc) {
            if (!cJSON_IsString(it) || strlen(it->valuestring) != 2 || cl + 3 >= 8) continue;
            cl += (size_t)snprintf(cls + cl, 8 - cl, "%s%s", cl ? "+" : "", it->valuestring);
            const cJSON *ev = cJSON_GetObjectItemCaseSensitive(mc_rj(d, "system_class.evidence"), it->valuestring);
            if (rl < len)
                rl += (size_t)snprintf(reason + rl, len - rl, " %s: %s;", it->valuestring,
                                       cJSON_IsString(ev) ? ev->valuestring : "(no evidence given)");
        }
        if (cl) { *from_report = 1; return; }
    }
    double elt = num(d, "run.attribution.gemm_weight_bytes_per_element");
    if (isnan(elt)) elt = num(d, "model.bytes_per_element");
    double loaded, moved = offload_after_first(d, &loaded), dev = num(d, "hardware.devices");
    if (isnan(dev)) dev = 1;
    char e[48] = "unknown", m[64] = "no offload traffic in the report";
    if (!isnan(elt)) snprintf(e, sizeof e, "%g B/weight", elt);
    if (!isnan(moved)) mc_fmt(m, sizeof m, MC_F_BYTES, moved);
    int quant = !isnan(elt) && elt < 2, offload = moved > 0;
    snprintf(cls, 8, "%s", offload ? "CA" : quant ? "PC" : "PA");
    snprintf(reason, len, "%s: weights read at %s%s; expert bytes loaded after the first step: %s; %g device(s)",
             offload ? "expert weights moved into memory while decoding (offloading)"
             : quant ? "quantized weights (fewer than 2 bytes each)"
                     : "full-precision weights, every expert resident",
             e, quant ? " (quantized)" : "", m, dev);
}

static const char *const same_fields[] = {"model.architecture", "model.num_layers", "model.hidden_size",
                                          "model.num_experts", "model.top_k", "model.moe_intermediate_size"};

int mc_cmp_same_model(const struct mc_cmp_run *runs, int n, char *err, size_t errlen)
{
    for (int i = 1; i < n; i++)
        for (size_t f = 0; f < sizeof same_fields / sizeof same_fields[0]; f++) {
            const cJSON *a = mc_rj(runs[0].doc, same_fields[f]), *b = mc_rj(runs[i].doc, same_fields[f]);
            char *sa = a ? cJSON_PrintUnformatted(a) : NULL, *sb = b ? cJSON_PrintUnformatted(b) : NULL;
            int differ = (sa == NULL) != (sb == NULL) || (sa && strcmp(sa, sb));
            if (differ)
                snprintf(err, errlen, "runs measured different models: %s has %s = %s, %s has %s (compare runs of one "
                         "model, or pass --any-model)", runs[0].path, same_fields[f] + 6, sa ? sa : "(absent)",
                         runs[i].path, sb ? sb : "(absent)");
            free(sa);
            free(sb);
            if (differ) return -1;
        }
    return 0;
}
