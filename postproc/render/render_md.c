/* mc_render_markdown: report.json -> a Markdown summary with the same facts as the HTML
 * page, as tables (GitHub-flavoured). Strings are escaped for table cells; absent figures
 * print as an em dash. */
#include "render/render.h"
#include "render/render_cost.h"
#include "render/render_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void cell(FILE *o, const cJSON *r, const char *path, enum mc_fmt k)
{
    char b[64];
    fprintf(o, " %s |", mc_fmt_path(b, sizeof b, r, path, k));
}

static void cell_str(FILE *o, const char *s)
{
    fputc(' ', o);
    if (s) mc_md_esc(o, s); else fputs(MC_ABSENT, o);
    fputs(" |", o);
}

/* A cell already formatted by a render_util table; NULL is an absent figure. */
static void cell_fmt(FILE *o, const char *s) { fprintf(o, " %s |", s ? s : MC_ABSENT); }

/* Header row and alignment row: first column left, the named ones right-aligned. */
static void table_head(FILE *o, const char *first, const char *const *names, int n)
{
    fputc('|', o);
    if (*first) fprintf(o, " %s", first);
    fputs(" |", o);
    for (int c = 0; c < n; c++) fprintf(o, " %s |", names[c]);
    fputs("\n|---|", o);
    for (int c = 0; c < n; c++) fputs("---:|", o);
    fputc('\n', o);
}

static void kv_str(FILE *o, const char *k, const char *v) { fprintf(o, "| %s |", k); cell_str(o, v); fputc('\n', o); }
static void kv_num(FILE *o, const cJSON *r, const char *k, const char *path, enum mc_fmt f)
{
    fprintf(o, "| %s |", k);
    cell(o, r, path, f);
    fputc('\n', o);
}
static void kv_row(FILE *o, const cJSON *r, const struct mc_kv_row *row)
{
    if (row->fmt == MC_F_TEXT) kv_str(o, row->label, mc_rj_str(r, row->path));
    else kv_num(o, r, row->label, row->path, row->fmt);
}

static void expert_table(FILE *o, const cJSON *r)
{
    const cJSON *el = mc_rj(r, "expert_load"), *m = mc_rj(el, "tokens"), *layers = mc_rj(el, "layers"), *row;
    fputs("\n## Expert load\n\n", o);
    if (!cJSON_IsArray(m) || !cJSON_GetArraySize(m)) { fputs("No expert-load data in this report.\n", o); return; }
    const char *ids = mc_rj_str(el, "expert_ids");
    fputs("Tokens routed to each expert over the whole run ((token, slot) pairs).", o);
    if (ids && !strcmp(ids, "order")) fputs(" **Expert numbers are first-seen order, not the model's expert ids.**", o);
    fputs("\n\n", o);
    int cols = 0;
    double e_d;
    if (mc_rj_num(el, "num_experts", &e_d) && e_d >= 1 && e_d <= 65536) cols = (int)e_d;
    cJSON_ArrayForEach(row, m) if (cJSON_IsArray(row) && cJSON_GetArraySize(row) > cols) cols = cJSON_GetArraySize(row);
    int full = cols <= 32;
    if (full) {
        fputs("| layer |", o);
        for (int e = 0; e < cols; e++) fprintf(o, " e%d |", e);
        fputs("\n|---|", o);
        for (int e = 0; e < cols; e++) fputs("---:|", o);
        fputc('\n', o);
    } else {
        fprintf(o, "%d experts per layer: per-layer summary (full matrix in report.json / report.html).\n\n", cols);
        fputs("| layer | experts used | min | mean | max | max/mean |\n|---|---:|---:|---:|---:|---:|\n", o);
    }
    int r_i = 0;
    cJSON_ArrayForEach(row, m) {
        const cJSON *lj = cJSON_IsArray(layers) ? cJSON_GetArrayItem(layers, r_i) : NULL;
        if (mc_json_finite(lj, NULL)) fprintf(o, "| %.0f |", lj->valuedouble); else fprintf(o, "| row %d |", r_i);
        if (full) {
            for (int e = 0; e < cols; e++) {
                const cJSON *c = cJSON_IsArray(row) ? cJSON_GetArrayItem(row, e) : NULL;
                if (mc_json_finite(c, NULL)) fprintf(o, " %.0f |", c->valuedouble); else fputs(" " MC_ABSENT " |", o);
            }
        } else {
            double mn = INFINITY, mx = -INFINITY, sum = 0;
            int n = 0, used = 0;
            for (int e = 0; e < cols; e++) {
                const cJSON *c = cJSON_IsArray(row) ? cJSON_GetArrayItem(row, e) : NULL;
                if (!mc_json_finite(c, NULL)) continue;
                double v = c->valuedouble;
                n++; sum += v; used += v > 0;
                if (v < mn) mn = v;
                if (v > mx) mx = v;
            }
            if (n && sum > 0) fprintf(o, " %d | %.0f | %.1f | %.0f | %.2f |", used, mn, sum / n, mx, mx / (sum / n));
            else if (n) fprintf(o, " %d | %.0f | %.1f | %.0f | " MC_ABSENT " |", used, mn, sum / n, mx);
            else fputs(" " MC_ABSENT " | " MC_ABSENT " | " MC_ABSENT " | " MC_ABSENT " | " MC_ABSENT " |", o);
        }
        fputc('\n', o);
        r_i++;
    }
}

static void steps_table(FILE *o, const cJSON *r)
{
    const cJSON *steps = mc_rj(r, "steps");
    fputs("\n## Per-step\n\n", o);
    if (!cJSON_IsArray(steps) || !cJSON_GetArraySize(steps)) { fputs("No per-step data in this report.\n", o); return; }
    int n = cJSON_GetArraySize(steps), head = n, tail_from = n;
    if (n > 200) { head = 50; tail_from = n - 50; }
    fputs("| step | kind | tokens | sequences | time | S-MBU | MBU | S-MFU | MFU | activated experts |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", o);
    int i = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, steps) {
        if (i == head && head < tail_from)
            fprintf(o, "| \xe2\x80\xa6 | %d steps omitted (see report.json) | | | | | | | | |\n", tail_from - head);
        if (i < head || i >= tail_from) {
            double v;
            if (mc_rj_num(st, "step", &v)) fprintf(o, "| %.0f |", v); else fprintf(o, "| %d |", i);
            cell_str(o, mc_rj_str(st, "kind"));
            cell(o, st, "tokens", MC_F_COUNT);
            cell(o, st, "sequences", MC_F_COUNT);
            if (mc_rj(st, "time_s")) cell(o, st, "time_s", MC_F_TIME);
            else if (mc_rj_num(st, "wall_ns", &v)) { char b[64]; fprintf(o, " %s |", mc_fmt(b, sizeof b, MC_F_TIME, v / 1e9)); }
            else fputs(" " MC_ABSENT " |", o);
            cell(o, st, "s_mbu", MC_F_PCT);
            cell(o, st, "mbu", MC_F_PCT);
            cell(o, st, "s_mfu", MC_F_PCT);
            cell(o, st, "mfu", MC_F_PCT);
            cell(o, st, "activated_experts", MC_F_COUNT);
            fputc('\n', o);
        }
        i++;
    }
}

static void histogram_table(FILE *o, const cJSON *r)
{
    struct mc_step_series s;
    if (mc_step_series_load(r, &s) || !s.n) return;
    double lo = INFINITY, hi = -INFINITY;
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++)
        if (!isnan(s.time_s[i])) { n++; if (s.time_s[i] < lo) lo = s.time_s[i]; if (s.time_s[i] > hi) hi = s.time_s[i]; }
    if (n) {
        int bins = n < 10 ? (int)n : 10;
        if (hi <= lo) bins = 1;
        int cnt[10][3] = {{0}};
        for (size_t i = 0; i < s.n; i++) {
            if (isnan(s.time_s[i])) continue;
            int b = bins == 1 ? 0 : (int)((s.time_s[i] - lo) / (hi - lo) * bins);
            if (b >= bins) b = bins - 1;
            cnt[b][s.kind[i] == 'p' ? 0 : s.kind[i] == 'd' ? 1 : 2]++;
        }
        fputs("\n## Step time distribution\n\n| step time from | to | prefill | decode | other |\n|---:|---:|---:|---:|---:|\n", o);
        for (int b = 0; b < bins; b++) {
            char a[32], z[32];
            mc_fmt(a, sizeof a, MC_F_TIME, lo + (hi - lo) * b / bins);
            mc_fmt(z, sizeof z, MC_F_TIME, bins == 1 ? hi : lo + (hi - lo) * (b + 1) / bins);
            fprintf(o, "| %s | %s | %d | %d | %d |\n", a, z, cnt[b][0], cnt[b][1], cnt[b][2]);
        }
    }
    mc_step_series_free(&s);
}

static void client_tables(FILE *o, const cJSON *r)
{
    const cJSON *cs = mc_rj(r, "client.summary");
    if (!cJSON_IsObject(cs)) return;
    fprintf(o, "\n## Client side (moecap bench)\n\nvLLM `bench serve` definitions: %s\n\n| | |\n|---|---:|\n", mc_client_definitions);
    for (int i = 0; i < MC_CLIENT_ROWS; i++) kv_num(o, cs, mc_client_rows[i].label, mc_client_rows[i].path, mc_client_rows[i].fmt);
    fputc('\n', o);
    table_head(o, "", mc_dist_col_names, MC_DIST_COLS);
    for (int i = 0; i < MC_CLIENT_LATENCIES; i++) {
        fprintf(o, "| %s |", mc_client_latency_labels[i]);
        for (int c = 0; c < MC_DIST_COLS; c++) {
            char b[64];
            cell_fmt(o, mc_client_latency_cell(b, sizeof b, cs, i, c));
        }
        fputc('\n', o);
    }
}

int mc_render_markdown(const cJSON *r, FILE *o)
{
    if (!cJSON_IsObject(r) || !o) return -1;
    char b1[64];
    fputs("# moecap report\n\n", o);
    fputs("- model: ", o);
    const char *arch = mc_rj_str(r, "model.architecture"), *mp = mc_rj_str(r, "model.path");
    if (arch) mc_md_esc(o, arch); else fputs(MC_ABSENT, o);
    if (mp) { fputs(" (", o); mc_md_esc(o, mp); fputs(")", o); }
    fputs("\n- hardware: ", o);
    const char *hm = mc_rj_str(r, "hardware.model");
    if (!hm) hm = mc_rj_str(r, "hardware.name");
    if (hm) mc_md_esc(o, hm); else fputs(MC_ABSENT, o);
    double dev;
    if (mc_rj_num(r, "hardware.devices", &dev)) fprintf(o, " \xc3\x97 %.0f", dev);
    fprintf(o, ", %s\n- run: ", mc_peaks_source(r, NULL));
    if (mc_rj_str(r, "run.dir")) mc_md_esc(o, mc_rj_str(r, "run.dir")); else fputs(MC_ABSENT, o);
    fputc('\n', o);

    fputs("\n## Summary\n\n", o);
    table_head(o, "", mc_phase_col_names, MC_PHASE_COLS);
    for (int i = 0; i < MC_PHASE_ROWS; i++) {
        fprintf(o, "| %s |", mc_phase_rows[i].label);
        for (int c = 0; c < MC_PHASE_COLS; c++) cell(o, r, mc_phase_rows[i].path[c], mc_phase_rows[i].fmt);
        fputc('\n', o);
    }
    fprintf(o, "\nOutput tokens: %s; output tokens/s: ", mc_fmt_path(b1, sizeof b1, r, "aggregate.output_tokens", MC_F_COUNT));
    fprintf(o, "%s; mixed steps: ", mc_fmt_path(b1, sizeof b1, r, "aggregate.tokens_per_s.output", MC_F_RATE));
    fprintf(o, "%s; span: ", mc_fmt_path(b1, sizeof b1, r, "aggregate.mixed_steps", MC_F_COUNT));
    fprintf(o, "%s.\n", mc_fmt_path(b1, sizeof b1, r, "aggregate.span_s", MC_F_TIME));

    fputs("\n## Latency and per-step distributions\n\n", o);
    table_head(o, "", mc_dist_col_names, MC_DIST_COLS);
    for (int i = 0; i < MC_SERVER_DISTS; i++) {
        fprintf(o, "| %s |", mc_server_dist_labels[i]);
        for (int c = 0; c < MC_DIST_COLS; c++) cell_fmt(o, mc_server_dist_cell(b1, sizeof b1, r, i, c));
        fputc('\n', o);
    }

    fputs("\n## Bytes and FLOPs (whole run)\n\n| | |\n|---|---:|\n", o);
    kv_num(o, r, "dense weights (attention, dense FFN, router, norms, lm_head)", "aggregate.bytes.dense_weights", MC_F_BYTES);
    kv_num(o, r, "routed expert weights (activated only)", "aggregate.bytes.routed_expert_weights", MC_F_BYTES);
    kv_num(o, r, "shared expert weights", "aggregate.bytes.shared_expert_weights", MC_F_BYTES);
    kv_num(o, r, "KV cache read", "aggregate.bytes.kv_read", MC_F_BYTES);
    kv_num(o, r, "KV cache written", "aggregate.bytes.kv_written", MC_F_BYTES);
    kv_num(o, r, "bytes total (S-MBU numerator)", "aggregate.bytes.total", MC_F_BYTES);
    kv_num(o, r, "bytes with all experts (MBU numerator)", "aggregate.bytes.all_experts_total", MC_F_BYTES);
    kv_num(o, r, "GEMM FLOPs", "aggregate.flops.gemm", MC_F_FLOP);
    kv_num(o, r, "attention FLOPs", "aggregate.flops.attention", MC_F_FLOP);
    kv_num(o, r, "FLOPs total (S-MFU numerator)", "aggregate.flops.total", MC_F_FLOP);
    kv_num(o, r, "FLOPs with all experts (MFU numerator)", "aggregate.flops.all_experts_total", MC_F_FLOP);
    kv_num(o, r, "GEMM FLOPs not attributed to the model (not counted)", "aggregate.flops.unattributed_gemm", MC_F_FLOP);

    client_tables(o, r);
    expert_table(o, r);
    histogram_table(o, r);
    steps_table(o, r);

    mc_render_cost_md(r, o);

    fputs("\n## MoE-CAP compatibility\n\n", o);
    const cJSON *c = mc_rj(r, "moecap_compat"), *it;
    if (!cJSON_IsObject(c)) fputs("No compatibility section in this report.\n", o);
    else {
        if (mc_rj_str(c, "method")) { mc_md_esc(o, mc_rj_str(c, "method")); fputs("\n\n", o); }
        table_head(o, "phase", mc_compat_col_names, MC_COMPAT_COLS);
        for (int i = 0; i < MC_COMPAT_PHASES; i++) {
            fprintf(o, "| %s |", mc_compat_phases[i]);
            for (int k = 0; k < MC_COMPAT_COLS; k++) cell_fmt(o, mc_compat_cell(b1, sizeof b1, c, i, k));
            fputc('\n', o);
        }
        const cJSON *d = mc_rj(c, "differences");
        if (cJSON_IsArray(d)) {
            fputc('\n', o);
            cJSON_ArrayForEach(it, d) if (cJSON_IsString(it)) { fputs("- ", o); mc_md_esc(o, it->valuestring); fputc('\n', o); }
        }
    }

    fputs("\n## Notes and warnings\n\n", o);
    const cJSON *notes = mc_rj(r, "notes");
    if (!cJSON_IsArray(notes) || !cJSON_GetArraySize(notes)) fputs("None.\n", o);
    else cJSON_ArrayForEach(it, notes) {
        const char *txt = cJSON_IsString(it) ? it->valuestring : mc_rj_str(it, "text");
        if (!txt) continue;
        fprintf(o, "- **%s**: ", mc_note_level(it));
        mc_md_esc(o, txt);
        fputc('\n', o);
    }

    fprintf(o, "\n## Hardware (%s)\n\n| | |\n|---|---|\n", mc_peaks_source(r, NULL));
    kv_str(o, "profile", mc_rj_str(r, "hardware.name"));
    kv_str(o, "model", mc_rj_str(r, "hardware.model"));
    kv_num(o, r, "devices", "hardware.devices", MC_F_COUNT);
    kv_str(o, "devices counted from", mc_rj_str(r, "hardware.devices_from"));
    kv_num(o, r, "peak memory bandwidth (per device)", "hardware.memory_bandwidth_Bps", MC_F_BPS);
    kv_str(o, "compute dtype", mc_rj_str(r, "hardware.compute_dtype"));
    kv_num(o, r, "dense peak FLOPS of that dtype (per device)", "hardware.peak_flops", MC_F_FLOPS);
    const cJSON *src = mc_rj(r, "hardware.source");
    if (cJSON_IsObject(src))
        cJSON_ArrayForEach(it, src) if (cJSON_IsString(it)) {
            fputs("| source: ", o); mc_md_esc(o, it->string); fputs(" |", o); cell_str(o, it->valuestring); fputc('\n', o);
        }

    fputs("\n## Model\n\n| | |\n|---|---|\n", o);
    kv_str(o, "architecture", arch);
    kv_str(o, "model_type", mc_rj_str(r, "model.model_type"));
    kv_num(o, r, "layers", "model.num_layers", MC_F_COUNT);
    for (int i = 0; i < MC_MODEL_ROWS; i++) kv_row(o, r, &mc_model_rows[i]);

    fputs("\n## Run\n\n| | |\n|---|---|\n", o);
    const cJSON *procs = mc_rj(r, "run.processes");
    if (cJSON_IsArray(procs))
        cJSON_ArrayForEach(it, procs) {
            double pid;
            if (mc_rj_num(it, "pid", &pid)) fprintf(o, "| process %.0f |", pid); else fputs("| process |", o);
            const cJSON *argv = mc_rj(it, "argv"), *a;
            fputc(' ', o);
            if (cJSON_IsArray(argv) && cJSON_GetArraySize(argv)) {
                cJSON_ArrayForEach(a, argv) if (cJSON_IsString(a)) { mc_md_esc(o, a->valuestring); fputc(' ', o); }
            } else if (mc_rj_str(it, "exe")) mc_md_esc(o, mc_rj_str(it, "exe"));
            else fputs(MC_ABSENT, o);
            fputs(" |\n", o);
        }
    kv_num(o, r, "records read", "run.records", MC_F_COUNT);
    kv_num(o, r, "GEMM records", "run.gemm_records", MC_F_COUNT);
    kv_num(o, r, "GEMM records not attributed to the model", "run.gemm_unattributed", MC_F_COUNT);
    kv_num(o, r, "events dropped by the shim", "run.dropped_events", MC_F_COUNT);
    kv_str(o, "weight names", mc_rj_str(r, "run.attribution.names"));
    kv_str(o, "expert ids", mc_rj_str(r, "run.attribution.expert_ids"));

    const cJSON *defs = mc_rj(r, "definitions");
    if (cJSON_IsObject(defs) && cJSON_GetArraySize(defs)) {
        fputs("\n## Definitions\n\n", o);
        cJSON_ArrayForEach(it, defs) if (cJSON_IsString(it)) {
            fputs("- **", o); mc_md_esc(o, it->string); fputs("**: ", o); mc_md_esc(o, it->valuestring); fputc('\n', o);
        }
    }
    fputs("\nAbsent figures are shown as " MC_ABSENT "; nothing is estimated by the renderer.\n", o);
    return ferror(o) ? -1 : 0;
}
