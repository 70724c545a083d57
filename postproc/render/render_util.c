/* Lookups, formatting, escaping and chart data shared by the Markdown and HTML renderers. */
#include "render/render_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const cJSON *mc_rj(const cJSON *o, const char *path)
{
    char key[128];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t l = dot ? (size_t)(dot - path) : strlen(path);
        if (l >= sizeof key || !cJSON_IsObject(o)) return NULL;
        memcpy(key, path, l);
        key[l] = 0;
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        path += l + (dot ? 1 : 0);
    }
    return o;
}

int mc_rj_num(const cJSON *o, const char *path, double *v)
{
    const cJSON *j = mc_rj(o, path);
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return 0;
    *v = j->valuedouble;
    return 1;
}

int mc_json_finite(const cJSON *j, double *v)
{
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return 0;
    if (v) *v = j->valuedouble;
    return 1;
}

const char *mc_rj_str(const cJSON *o, const char *path)
{
    const cJSON *j = mc_rj(o, path);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

int mc_rj_bool(const cJSON *o, const char *path)
{
    const cJSON *j = mc_rj(o, path);
    if (cJSON_IsTrue(j)) return 1;
    if (cJSON_IsFalse(j)) return 0;
    return -1;
}

static char *fmt_si(char *buf, size_t len, double v, const char *unit)
{
    static const char *pre[] = {"", "k", "M", "G", "T", "P", "E"};
    int i = 0;
    double a = fabs(v);
    while (a >= 999.95 && i < 6) { a /= 1000.0; v /= 1000.0; i++; }
    snprintf(buf, len, "%.4g %s%s", v, pre[i], unit);
    return buf;
}

char *mc_fmt(char *buf, size_t len, enum mc_fmt kind, double v)
{
    if (!isfinite(v)) { snprintf(buf, len, "%s", MC_ABSENT); return buf; }
    double a = fabs(v);
    switch (kind) {
    case MC_F_PCT:
        if (!isfinite(v * 100)) snprintf(buf, len, "%s", MC_ABSENT); /* overflow: not a utilisation */
        else if (v == 0) snprintf(buf, len, "0 %%");
        else if (a * 100 < 0.01) snprintf(buf, len, "%.2g %%", v * 100);
        else snprintf(buf, len, "%.2f %%", v * 100);
        break;
    case MC_F_TIME:
        if (a >= 1000) snprintf(buf, len, "%.0f s", v);
        else if (a >= 1 || v == 0) snprintf(buf, len, "%.4g s", v);
        else if (a >= 1e-3) snprintf(buf, len, "%.4g ms", v * 1e3);
        else if (a >= 1e-6) snprintf(buf, len, "%.4g \xc2\xb5s", v * 1e6);
        else snprintf(buf, len, "%.0f ns", v * 1e9);
        break;
    case MC_F_BYTES: return fmt_si(buf, len, v, "B");
    case MC_F_FLOP: return fmt_si(buf, len, v, "FLOP");
    case MC_F_BPS: return fmt_si(buf, len, v, "B/s");
    case MC_F_FLOPS: return fmt_si(buf, len, v, "FLOPS");
    case MC_F_COUNT: snprintf(buf, len, "%.0f", v); break;
    case MC_F_RATE: snprintf(buf, len, "%.1f", v); break;
    case MC_F_SI: return fmt_si(buf, len, v, "");
    case MC_F_NUM: default: snprintf(buf, len, "%.4g", v); break;
    }
    return buf;
}

char *mc_fmt_path(char *buf, size_t len, const cJSON *o, const char *path, enum mc_fmt kind)
{
    double v;
    if (!mc_rj_num(o, path, &v)) { snprintf(buf, len, "%s", MC_ABSENT); return buf; }
    return mc_fmt(buf, len, kind, v);
}

void mc_html_esc(FILE *out, const char *s)
{
    if (!s) return;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default:
            if (c < 0x20 && c != '\n' && c != '\t') fputs("\xef\xbf\xbd", out); /* U+FFFD */
            else fputc(c, out);
        }
    }
}

void mc_md_esc(FILE *out, const char *s)
{
    if (!s) return;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n' || c == '\r' || c == '\t') fputc(' ', out);
        else if (c < 0x20) fputs("\xef\xbf\xbd", out);
        else if (c == '<') fputs("&lt;", out);      /* no raw HTML through Markdown */
        else if (c == '>') fputs("&gt;", out);
        else if (c == '&') fputs("&amp;", out);
        else if (strchr("|\\`*_[]#", c)) { fputc('\\', out); fputc(c, out); }
        else fputc(c, out);
    }
}

const char *mc_peaks_source(const cJSON *report, const char **cls)
{
    static const char *const cl[] = {"unknown", "spec", "measured"}, *const text[] = {
        "peak source unknown", "spec-sheet peaks", "measured peaks (moecap hwprobe)"};
    int m = mc_rj_bool(report, "hardware.measured") + 1; /* -1 absent, 0 false, 1 true */
    if (cls) *cls = cl[m];
    return text[m];
}

const char *mc_note_level(const cJSON *note)
{
    const char *lvl = mc_rj_str(note, "level");
    return lvl && !strcmp(lvl, "warning") ? "warning" : lvl && !strcmp(lvl, "error") ? "error" : "info";
}

double mc_percentile_sorted(const double *v, size_t n, double q)
{
    if (!n) return NAN;
    size_t rank = (size_t)ceil(q / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

static double step_num(const cJSON *st, const char *k)
{
    double v;
    return mc_rj_num(st, k, &v) ? v : NAN;
}

int mc_step_series_load(const cJSON *report, struct mc_step_series *s)
{
    memset(s, 0, sizeof *s);
    const cJSON *steps = mc_rj(report, "steps");
    if (!cJSON_IsArray(steps)) return 0;
    size_t n = (size_t)cJSON_GetArraySize(steps);
    if (!n) return 0;
    s->time_s = malloc(n * sizeof(double));
    s->s_mbu = malloc(n * sizeof(double));
    s->mbu = malloc(n * sizeof(double));
    s->s_mfu = malloc(n * sizeof(double));
    s->mfu = malloc(n * sizeof(double));
    s->kind = malloc(n);
    if (!s->time_s || !s->s_mbu || !s->mbu || !s->s_mfu || !s->mfu || !s->kind) {
        mc_step_series_free(s);
        return -1;
    }
    size_t i = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, steps) {
        double t = step_num(st, "time_s"), ns;
        if (isnan(t) && mc_rj_num(st, "wall_ns", &ns)) t = ns / 1e9;
        s->time_s[i] = t;
        s->s_mbu[i] = step_num(st, "s_mbu");
        s->mbu[i] = step_num(st, "mbu");
        s->s_mfu[i] = step_num(st, "s_mfu");
        s->mfu[i] = step_num(st, "mfu");
        const char *k = mc_rj_str(st, "kind");
        s->kind[i] = !k ? '?' : !strcmp(k, "prefill") ? 'p' : !strcmp(k, "decode") ? 'd' : !strcmp(k, "mixed") ? 'm' : '?';
        i++;
    }
    s->n = i;
    return 0;
}

void mc_step_series_free(struct mc_step_series *s)
{
    free(s->time_s); free(s->s_mbu); free(s->mbu); free(s->s_mfu); free(s->mfu); free(s->kind);
    memset(s, 0, sizeof *s);
}

const struct mc_kv_row mc_model_rows[MC_MODEL_ROWS] = {
    {"routed experts per MoE layer", "model.num_experts", MC_F_COUNT},
    {"top-k", "model.top_k", MC_F_COUNT},
    {"shared experts", "model.shared_experts", MC_F_COUNT},
    {"hidden size", "model.hidden_size", MC_F_COUNT},
    {"expert intermediate size", "model.moe_intermediate_size", MC_F_COUNT},
    {"weight dtype", "model.weight_dtype", MC_F_TEXT},
    {"bytes per routed expert", "model.expert_bytes", MC_F_BYTES},
};
const struct mc_kv_row mc_client_rows[MC_CLIENT_ROWS] = {
    {"requests sent", "requests", MC_F_COUNT},
    {"completed", "completed", MC_F_COUNT},
    {"failed", "failed", MC_F_COUNT},
    {"duration", "duration_s", MC_F_TIME},
    {"requests/s", "request_throughput", MC_F_RATE},
    {"output tokens/s", "output_throughput", MC_F_RATE},
    {"total tokens/s", "total_token_throughput", MC_F_RATE},
    {"goodput (requests/s meeting every SLO)", "goodput.request_goodput", MC_F_RATE},
    {"accuracy (correct / scored)", "accuracy.accuracy", MC_F_PCT},
    {"requests scored", "accuracy.scored", MC_F_COUNT},
};
const char *const mc_client_latency_labels[MC_CLIENT_LATENCIES] = {"TTFT", "TPOT", "ITL", "E2EL"};
const char *const mc_dist_col_names[MC_DIST_COLS] = {"count", "mean", "min", "p50", "p90", "p99", "max"};
const char *const mc_client_definitions =
    "TTFT = send \xe2\x86\x92 first token; TPOT excludes the first token; "
    "ITL pools every chunk gap; E2EL = send \xe2\x86\x92 last byte. Successful requests only.";

const char *mc_client_latency_cell(char *buf, size_t len, const cJSON *summary, int latency, int col)
{
    static const char *const keys[MC_CLIENT_LATENCIES] = {"ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"};
    char path[64];
    double v;
    snprintf(path, sizeof path, "%s.%s", keys[latency], mc_dist_col_names[col]);
    if (!mc_rj_num(summary, path, &v)) return NULL;
    /* The summary holds milliseconds; mc_fmt's time format takes seconds. */
    return col == 0 ? mc_fmt(buf, len, MC_F_COUNT, v) : mc_fmt(buf, len, MC_F_TIME, v / 1e3);
}

const struct mc_phase_row mc_phase_rows[MC_PHASE_ROWS] = {
    {"steps", {"aggregate.steps", "aggregate.prefill_steps", "aggregate.decode_steps"}, MC_F_COUNT},
    {"time (sum of step wall times)", {"aggregate.time_s", "aggregate.prefill.time_s", "aggregate.decode.time_s"}, MC_F_TIME},
    {"tokens", {"aggregate.tokens", "aggregate.prefill_tokens", "aggregate.decode_tokens"}, MC_F_COUNT},
    {"tokens/s", {"aggregate.tokens_per_s.total", "aggregate.tokens_per_s.prefill", "aggregate.tokens_per_s.decode"}, MC_F_RATE},
    {"S-MBU", {"aggregate.s_mbu", "aggregate.prefill.s_mbu", "aggregate.decode.s_mbu"}, MC_F_PCT},
    {"MBU (dense: all experts)", {"aggregate.mbu", "aggregate.prefill.mbu", "aggregate.decode.mbu"}, MC_F_PCT},
    {"S-MFU", {"aggregate.s_mfu", "aggregate.prefill.s_mfu", "aggregate.decode.s_mfu"}, MC_F_PCT},
    {"MFU (dense: all experts)", {"aggregate.mfu", "aggregate.prefill.mfu", "aggregate.decode.mfu"}, MC_F_PCT},
};
const char *const mc_phase_col_names[MC_PHASE_COLS] = {"all steps", "prefill", "decode"};

static const struct { const char *base; enum mc_fmt fmt; } server_dists[MC_SERVER_DISTS] = {
    {"aggregate.ttft_server_s", MC_F_TIME},
    {"aggregate.tpot_server_s", MC_F_TIME},
    {"aggregate.step_time_s", MC_F_TIME},
    {"aggregate.s_mbu_dist", MC_F_PCT},
    {"aggregate.s_mfu_dist", MC_F_PCT},
};
const char *const mc_server_dist_labels[MC_SERVER_DISTS] = {
    "TTFT, server side (prefill step time)",
    "TPOT, server side (decode step time)",
    "step wall time",
    "S-MBU per step",
    "S-MFU per step",
};

const char *mc_server_dist_cell(char *buf, size_t len, const cJSON *report, int row, int col)
{
    char path[96];
    double v;
    snprintf(path, sizeof path, "%s.%s", server_dists[row].base, mc_dist_col_names[col]);
    /* Without step_time_s.count, the number of steps is that count. */
    if (col == 0 && !mc_rj(report, path) && !strcmp(server_dists[row].base, "aggregate.step_time_s"))
        snprintf(path, sizeof path, "aggregate.steps");
    if (!mc_rj_num(report, path, &v)) return NULL;
    return mc_fmt(buf, len, col == 0 ? MC_F_COUNT : server_dists[row].fmt, v);
}

const char *const mc_compat_phases[MC_COMPAT_PHASES] = {"prefill", "decode"};
const char *const mc_compat_col_names[MC_COMPAT_COLS] = {
    "steps", "S-MBU (MoE-CAP formula)", "S-MBU (moecap)", "S-MFU (MoE-CAP formula)", "S-MFU (moecap)"};

const char *mc_compat_cell(char *buf, size_t len, const cJSON *compat, int phase, int col)
{
    /* The MoE-CAP formula's figures sit under the phase; moecap's own under "ours". */
    static const struct { const char *prefix, *key; enum mc_fmt fmt; } cols[MC_COMPAT_COLS] = {
        {"", "steps", MC_F_COUNT}, {"", "s_mbu", MC_F_PCT}, {"ours.", "s_mbu", MC_F_PCT},
        {"", "s_mfu", MC_F_PCT}, {"ours.", "s_mfu", MC_F_PCT},
    };
    char path[64];
    double v;
    snprintf(path, sizeof path, "%s%s.%s", cols[col].prefix, mc_compat_phases[phase], cols[col].key);
    if (!mc_rj_num(compat, path, &v)) return NULL;
    return mc_fmt(buf, len, cols[col].fmt, v);
}
