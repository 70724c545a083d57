/* mc_render_html: report.json -> one self-contained HTML page (inline CSS, inline SVG,
 * no script, no external resource). Every string from the report goes through
 * mc_html_esc; every absent figure prints as an em dash, never as 0. */
#include "render/render.h"
#include "render/render_cost.h"
#include "render/render_svg.h"
#include "render/render_util.h"
#include <math.h>
#include <string.h>

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#111827;"
    "background:#f8fafc;margin:0;padding:24px 32px;max-width:1100px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #cbd5e1;padding-bottom:4px}"
    "h3{font-size:15px;margin:16px 0 6px}.sub{color:#475569;margin:0 0 12px}"
    "table{border-collapse:collapse;margin:6px 0 10px;background:#fff}"
    "th,td{border:1px solid #e2e8f0;padding:4px 10px;text-align:right;white-space:nowrap}"
    "th{background:#f1f5f9;font-weight:600}td.l,th.l{text-align:left;white-space:normal}"
    "td.absent{color:#94a3b8;text-align:center}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}"
    ".card{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:10px 14px;min-width:150px}"
    ".card .v{font-size:22px;font-weight:600}.card .k{color:#475569;font-size:12px}.card .d{color:#64748b;font-size:12px}"
    ".badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600}"
    ".spec{background:#e0e7ff;color:#3730a3}.measured{background:#dcfce7;color:#166534}.unknown{background:#fee2e2;color:#991b1b}"
    ".note{margin:4px 0;padding:4px 8px;border-left:4px solid #94a3b8;background:#fff}"
    ".note.warning{border-color:#f59e0b}.note.error{border-color:#dc2626}"
    ".chart{background:#fff;border:1px solid #e2e8f0;display:block;margin:6px 0;max-width:100%;height:auto}"
    ".chart text{fill:#334155;font-family:inherit}"
    ".cap{color:#475569;font-size:12px;margin:2px 0 10px}code{font-size:12px;background:#f1f5f9;padding:0 3px}"
    "dl{margin:4px 0}dt{font-weight:600}dd{margin:0 0 6px 16px;color:#334155}"
    ".kv td:first-child{text-align:left;color:#475569}.kv td{text-align:left;white-space:normal}";

static void td(FILE *o, const cJSON *r, const char *path, enum mc_fmt k)
{
    char b[64];
    double v;
    if (mc_rj_num(r, path, &v)) fprintf(o, "<td>%s</td>", mc_fmt(b, sizeof b, k, v));
    else fputs("<td class=\"absent\">" MC_ABSENT "</td>", o);
}

static void td_str(FILE *o, const char *s)
{
    if (s) { fputs("<td class=\"l\">", o); mc_html_esc(o, s); fputs("</td>", o); }
    else fputs("<td class=\"absent\">" MC_ABSENT "</td>", o);
}

/* A cell already formatted by a render_util table; NULL is an absent figure. */
static void td_fmt(FILE *o, const char *s)
{
    if (s) fprintf(o, "<td>%s</td>", s);
    else fputs("<td class=\"absent\">" MC_ABSENT "</td>", o);
}

/* Opens a table of class cls with its header row: first (left) then the named columns. */
static void table_head(FILE *o, const char *cls, const char *first, const char *const *names, int n)
{
    fprintf(o, "<table class=\"%s\"><tr><th class=\"l\">%s</th>", cls, first);
    for (int c = 0; c < n; c++) fprintf(o, "<th>%s</th>", names[c]);
    fputs("</tr>\n", o);
}

static void card(FILE *o, const cJSON *r, const char *key, const char *path, enum mc_fmt k, const char *dense_path, const char *dense_label)
{
    char b[64], d[64];
    fprintf(o, "<div class=\"card\"><div class=\"k\">%s</div><div class=\"v\">%s</div>", key, mc_fmt_path(b, sizeof b, r, path, k));
    if (dense_path)
        fprintf(o, "<div class=\"d\">%s: %s</div>", dense_label, mc_fmt_path(d, sizeof d, r, dense_path, k));
    fputs("</div>\n", o);
}

static void kv_str(FILE *o, const char *k, const char *v)
{
    fprintf(o, "<tr><td>%s</td>", k);
    td_str(o, v);
    fputs("</tr>\n", o);
}

static void kv_num(FILE *o, const cJSON *r, const char *k, const char *path, enum mc_fmt f)
{
    char b[64];
    double v;
    fprintf(o, "<tr><td>%s</td>", k);
    if (mc_rj_num(r, path, &v)) fprintf(o, "<td>%s</td>", mc_fmt(b, sizeof b, f, v));
    else fputs("<td class=\"absent\">" MC_ABSENT "</td>", o);
    fputs("</tr>\n", o);
}
static void kv_row(FILE *o, const cJSON *r, const struct mc_kv_row *row)
{
    if (row->fmt == MC_F_TEXT) kv_str(o, row->label, mc_rj_str(r, row->path));
    else kv_num(o, r, row->label, row->path, row->fmt);
}

static void peaks_badge(FILE *o, const cJSON *r)
{
    const char *cls, *text = mc_peaks_source(r, &cls);
    fprintf(o, "<span class=\"badge %s\">%s</span>", cls, text);
}

static void section_summary(FILE *o, const cJSON *r)
{
    fputs("<h2 id=\"summary\">Summary</h2>\n<div class=\"cards\">\n", o);
    card(o, r, "S-MBU (sparsity-aware)", "aggregate.s_mbu", MC_F_PCT, "aggregate.mbu", "dense MBU");
    card(o, r, "S-MFU (sparsity-aware)", "aggregate.s_mfu", MC_F_PCT, "aggregate.mfu", "dense MFU");
    card(o, r, "tokens/s (all)", "aggregate.tokens_per_s.total", MC_F_RATE, "aggregate.tokens_per_s.output", "output tokens/s");
    card(o, r, "TTFT p50 (server)", "aggregate.ttft_server_s.p50", MC_F_TIME, "aggregate.ttft_server_s.p99", "p99");
    card(o, r, "TPOT p50 (server)", "aggregate.tpot_server_s.p50", MC_F_TIME, "aggregate.tpot_server_s.p99", "p99");
    fputs("</div>\n<p class=\"sub\">Hardware: ", o);
    const char *hn = mc_rj_str(r, "hardware.model");
    if (!hn) hn = mc_rj_str(r, "hardware.name");
    if (hn) mc_html_esc(o, hn); else fputs(MC_ABSENT, o);
    double dev;
    if (mc_rj_num(r, "hardware.devices", &dev)) fprintf(o, " \xc3\x97 %.0f", dev);
    fputs(" &nbsp; ", o);
    peaks_badge(o, r);
    fputs("</p>\n", o);

    table_head(o, "summary", "", mc_phase_col_names, MC_PHASE_COLS);
    for (int i = 0; i < MC_PHASE_ROWS; i++) {
        fprintf(o, "<tr><th class=\"l\">%s</th>", mc_phase_rows[i].label);
        for (int c = 0; c < MC_PHASE_COLS; c++) td(o, r, mc_phase_rows[i].path[c], mc_phase_rows[i].fmt);
        fputs("</tr>\n", o);
    }
    fputs("</table>\n", o);
    double mixed;
    if (mc_rj_num(r, "aggregate.mixed_steps", &mixed) && mixed > 0)
        fprintf(o, "<p class=\"cap\">%.0f mixed (chunked-prefill) step(s) are counted under \"all steps\" only.</p>\n", mixed);
    char b1[64], b2[64];
    fprintf(o, "<p class=\"cap\">output tokens: %s; span (first step begin \xe2\x86\x92 last step end): %s</p>\n",
            mc_fmt_path(b1, sizeof b1, r, "aggregate.output_tokens", MC_F_COUNT), mc_fmt_path(b2, sizeof b2, r, "aggregate.span_s", MC_F_TIME));

    fputs("<h3>Latency and per-step distributions</h3>\n", o);
    table_head(o, "latency", "", mc_dist_col_names, MC_DIST_COLS);
    for (int i = 0; i < MC_SERVER_DISTS; i++) {
        fprintf(o, "<tr><th class=\"l\">%s</th>", mc_server_dist_labels[i]);
        for (int c = 0; c < MC_DIST_COLS; c++) td_fmt(o, mc_server_dist_cell(b1, sizeof b1, r, i, c));
        fputs("</tr>\n", o);
    }
    fputs("</table>\n", o);

    fputs("<h3>Bytes and FLOPs</h3>\n<table class=\"bytes\"><tr><th class=\"l\">bytes read / written</th><th>whole run</th></tr>\n", o);
    static const struct { const char *label, *path; } by[] = {
        {"dense weights (attention, dense FFN, router, norms, lm_head)", "aggregate.bytes.dense_weights"},
        {"routed expert weights (activated only)", "aggregate.bytes.routed_expert_weights"},
        {"shared expert weights", "aggregate.bytes.shared_expert_weights"},
        {"KV cache read", "aggregate.bytes.kv_read"},
        {"KV cache written", "aggregate.bytes.kv_written"},
        {"total (S-MBU numerator)", "aggregate.bytes.total"},
        {"total with all experts (MBU numerator)", "aggregate.bytes.all_experts_total"},
    };
    for (size_t i = 0; i < sizeof by / sizeof by[0]; i++) {
        fprintf(o, "<tr><th class=\"l\">%s</th>", by[i].label);
        td(o, r, by[i].path, MC_F_BYTES);
        fputs("</tr>\n", o);
    }
    fputs("<tr><th class=\"l\">FLOPs</th><th>whole run</th></tr>\n", o);
    static const struct { const char *label, *path; } fl[] = {
        {"GEMM", "aggregate.flops.gemm"}, {"attention (scores, values)", "aggregate.flops.attention"},
        {"total (S-MFU numerator)", "aggregate.flops.total"}, {"total with all experts (MFU numerator)", "aggregate.flops.all_experts_total"},
        {"GEMM FLOPs not attributed to the model (not counted)", "aggregate.flops.unattributed_gemm"}};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        fprintf(o, "<tr><th class=\"l\">%s</th>", fl[i].label);
        td(o, r, fl[i].path, MC_F_FLOP);
        fputs("</tr>\n", o);
    }
    fputs("</table>\n", o);
}

static void section_setup(FILE *o, const cJSON *r)
{
    fputs("<h2 id=\"setup\">Hardware, model and run</h2>\n<h3>Hardware ", o);
    peaks_badge(o, r);
    fputs("</h3>\n<table class=\"kv\">\n", o);
    kv_str(o, "profile", mc_rj_str(r, "hardware.name"));
    kv_str(o, "model", mc_rj_str(r, "hardware.model"));
    kv_str(o, "kind", mc_rj_str(r, "hardware.kind"));
    kv_num(o, r, "devices", "hardware.devices", MC_F_COUNT);
    kv_str(o, "devices counted from", mc_rj_str(r, "hardware.devices_from"));
    kv_num(o, r, "peak memory bandwidth (per device)", "hardware.memory_bandwidth_Bps", MC_F_BPS);
    kv_str(o, "compute dtype", mc_rj_str(r, "hardware.compute_dtype"));
    kv_num(o, r, "dense peak FLOPS of that dtype (per device)", "hardware.peak_flops", MC_F_FLOPS);
    kv_str(o, "profile file", mc_rj_str(r, "hardware.profile_path"));
    fputs("</table>\n", o);
    const cJSON *src = mc_rj(r, "hardware.source"), *it;
    if (cJSON_IsObject(src) && cJSON_GetArraySize(src)) {
        fputs("<p class=\"cap\">Sources of the hardware figures:</p>\n<dl class=\"cap\">\n", o);
        cJSON_ArrayForEach(it, src) {
            if (!cJSON_IsString(it)) continue;
            fputs("<dt>", o); mc_html_esc(o, it->string); fputs("</dt><dd>", o);
            mc_html_esc(o, it->valuestring); fputs("</dd>\n", o);
        }
        fputs("</dl>\n", o);
    }

    fputs("<h3>Model</h3>\n<table class=\"kv\">\n", o);
    kv_str(o, "path", mc_rj_str(r, "model.path"));
    kv_str(o, "architecture", mc_rj_str(r, "model.architecture"));
    kv_str(o, "model_type", mc_rj_str(r, "model.model_type"));
    kv_num(o, r, "layers", "model.num_layers", MC_F_COUNT);
    const cJSON *ml = mc_rj(r, "model.moe_layers"), *dl = mc_rj(r, "model.dense_layers");
    fputs("<tr><td>MoE layers / dense layers</td><td>", o);
    if (cJSON_IsArray(ml)) fprintf(o, "%d", cJSON_GetArraySize(ml)); else fputs(MC_ABSENT, o);
    fputs(" / ", o);
    if (cJSON_IsArray(dl)) fprintf(o, "%d", cJSON_GetArraySize(dl)); else fputs(MC_ABSENT, o);
    fputs("</td></tr>\n", o);
    for (int i = 0; i < MC_MODEL_ROWS; i++) kv_row(o, r, &mc_model_rows[i]);
    kv_num(o, r, "parameters (total)", "model.params.total", MC_F_SI);
    kv_num(o, r, "parameters activated per token", "model.params.activated_per_token", MC_F_SI);
    fputs("</table>\n", o);

    fputs("<h3>Run</h3>\n<table class=\"kv\">\n", o);
    kv_str(o, "run directory", mc_rj_str(r, "run.dir"));
    const cJSON *tf = mc_rj(r, "run.trace_files");
    fputs("<tr><td>trace files</td>", o);
    if (cJSON_IsArray(tf)) {
        fputs("<td class=\"l\">", o);
        int first = 1;
        cJSON_ArrayForEach(it, tf) if (cJSON_IsString(it)) {
            if (!first) fputs(", ", o);
            fputs("<code>", o); mc_html_esc(o, it->valuestring); fputs("</code>", o);
            first = 0;
        }
        fputs("</td>", o);
    } else fputs("<td class=\"absent\">" MC_ABSENT "</td>", o);
    fputs("</tr>\n", o);
    const cJSON *procs = mc_rj(r, "run.processes");
    if (cJSON_IsArray(procs))
        cJSON_ArrayForEach(it, procs) {
            double pid;
            fputs("<tr><td>process", o);
            if (mc_rj_num(it, "pid", &pid)) fprintf(o, " %.0f", pid);
            fputs("</td><td class=\"l\"><code>", o);
            const cJSON *argv = mc_rj(it, "argv"), *a;
            if (cJSON_IsArray(argv) && cJSON_GetArraySize(argv)) {
                int first = 1;
                cJSON_ArrayForEach(a, argv) if (cJSON_IsString(a)) {
                    if (!first) fputc(' ', o);
                    mc_html_esc(o, a->valuestring);
                    first = 0;
                }
            } else if (mc_rj_str(it, "exe")) mc_html_esc(o, mc_rj_str(it, "exe"));
            else fputs(MC_ABSENT, o);
            fputs("</code>", o);
            if (mc_rj_str(it, "host")) { fputs(" on ", o); mc_html_esc(o, mc_rj_str(it, "host")); }
            fputs("</td></tr>\n", o);
        }
    kv_num(o, r, "records read", "run.records", MC_F_COUNT);
    kv_num(o, r, "GEMM records", "run.gemm_records", MC_F_COUNT);
    kv_num(o, r, "GEMM records not attributed to the model", "run.gemm_unattributed", MC_F_COUNT);
    kv_num(o, r, "events dropped by the shim", "run.dropped_events", MC_F_COUNT);
    const cJSON *tr = mc_rj(r, "run.truncated_files");
    if (cJSON_IsArray(tr) && cJSON_GetArraySize(tr)) {
        fputs("<tr><td>truncated trace files</td><td class=\"l\">", o);
        cJSON_ArrayForEach(it, tr) if (cJSON_IsString(it)) { mc_html_esc(o, it->valuestring); fputc(' ', o); }
        fputs("</td></tr>\n", o);
    }
    kv_str(o, "weight names", mc_rj_str(r, "run.attribution.names"));
    kv_str(o, "expert ids", mc_rj_str(r, "run.attribution.expert_ids"));
    fputs("</table>\n", o);
}

static void section_heatmap(FILE *o, const cJSON *r)
{
    fputs("<h2 id=\"experts\">Expert load</h2>\n", o);
    const cJSON *el = mc_rj(r, "expert_load");
    if (!cJSON_IsObject(el)) { fputs("<p class=\"cap\">No expert-load data in this report.</p>\n", o); return; }
    fputs("<p class=\"cap\">Tokens routed to each expert over the whole run ((token, slot) pairs: a token counts once for each of its top-k experts). "
          "Rows are MoE layers, columns experts; hover a cell for its value.", o);
    const char *ids = mc_rj_str(el, "expert_ids");
    if (!ids) ids = mc_rj_str(r, "run.attribution.expert_ids");
    if (ids && !strcmp(ids, "order"))
        fputs(" <b>Column numbers are first-seen order, not the model's expert ids</b> (weights were attributed by shape only).", o);
    fputs("</p>\n", o);
    if (!mc_svg_heatmap(o, el, "tokens", "tokens routed to the expert"))
        fputs("<p class=\"cap\">Token counts per expert are absent.</p>\n", o);
    if (cJSON_IsArray(mc_rj(el, "activations"))) {
        fputs("<h3>Steps in which each expert was activated</h3>\n", o);
        mc_svg_heatmap(o, el, "activations", "steps with the expert active");
    }
}

static void section_steps(FILE *o, const cJSON *r)
{
    struct mc_step_series s;
    fputs("<h2 id=\"timeline\">Per-step utilisation</h2>\n", o);
    if (mc_step_series_load(r, &s) || !s.n) {
        fputs("<p class=\"cap\">No per-step data in this report.</p>\n", o);
        return;
    }
    fputs("<p class=\"cap\">Solid: sparsity-aware figure (only activated experts are read/computed). Dashed: the dense view "
          "(all experts counted), what tools that ignore sparsity report. The strip under each plot marks the step kind.</p>\n", o);
    if (!mc_svg_timeline(o, &s, 0)) fputs("<p class=\"cap\">S-MBU / MBU per step are absent.</p>\n", o);
    if (!mc_svg_timeline(o, &s, 1)) fputs("<p class=\"cap\">S-MFU / MFU per step are absent (no peak FLOPS for the compute dtype?).</p>\n", o);
    fputs("<h2 id=\"steptime\">Step time distribution</h2>\n", o);
    if (!mc_svg_histogram(o, &s, r)) fputs("<p class=\"cap\">Step times are absent.</p>\n", o);
    else fputs("<p class=\"cap\">Histogram of forward-step wall times, stacked by step kind; dashed lines: p50 / p90 / p99 of all steps.</p>\n", o);
    mc_step_series_free(&s);
}

/* Client side (moecap bench, docs/bench.md), when the report joined a request log:
 * report.client.summary holds bench-summary fields with latencies in milliseconds. */
static void section_client(FILE *o, const cJSON *r)
{
    const cJSON *cs = mc_rj(r, "client.summary");
    if (!cJSON_IsObject(cs)) return;
    fprintf(o, "<h2 id=\"client\">Client side (moecap bench)</h2>\n<p class=\"cap\">Per-request latency as the client saw it, "
            "with vLLM <code>bench serve</code> definitions: %s</p>\n<table class=\"kv\">\n", mc_client_definitions);
    for (int i = 0; i < MC_CLIENT_ROWS; i++) kv_num(o, cs, mc_client_rows[i].label, mc_client_rows[i].path, mc_client_rows[i].fmt);
    fputs("</table>\n", o);
    table_head(o, "latency", "", mc_dist_col_names, MC_DIST_COLS);
    for (int i = 0; i < MC_CLIENT_LATENCIES; i++) {
        fprintf(o, "<tr><th class=\"l\">%s</th>", mc_client_latency_labels[i]);
        for (int c = 0; c < MC_DIST_COLS; c++) {
            char b[64];
            td_fmt(o, mc_client_latency_cell(b, sizeof b, cs, i, c));
        }
        fputs("</tr>\n", o);
    }
    fputs("</table>\n", o);
}

static void section_compat(FILE *o, const cJSON *r)
{
    fputs("<h2 id=\"compat\">MoE-CAP compatibility</h2>\n", o);
    const cJSON *c = mc_rj(r, "moecap_compat");
    if (!cJSON_IsObject(c)) { fputs("<p class=\"cap\">No compatibility section in this report.</p>\n", o); return; }
    if (mc_rj_str(c, "method")) { fputs("<p class=\"cap\">", o); mc_html_esc(o, mc_rj_str(c, "method")); fputs("</p>\n", o); }
    table_head(o, "compat", "phase", mc_compat_col_names, MC_COMPAT_COLS);
    for (int i = 0; i < MC_COMPAT_PHASES; i++) {
        char b[64];
        fprintf(o, "<tr><th class=\"l\">%s</th>", mc_compat_phases[i]);
        for (int k = 0; k < MC_COMPAT_COLS; k++) td_fmt(o, mc_compat_cell(b, sizeof b, c, i, k));
        fputs("</tr>\n", o);
    }
    fputs("</table>\n<p class=\"cap\">Both columns are means over steps, as MoE-CAP averages per-step values.</p>\n", o);
    const cJSON *d = mc_rj(c, "differences"), *it;
    if (cJSON_IsArray(d) && cJSON_GetArraySize(d)) {
        fputs("<ul class=\"differences\">\n", o);
        cJSON_ArrayForEach(it, d) if (cJSON_IsString(it)) {
            fputs("<li>", o); mc_html_esc(o, it->valuestring); fputs("</li>\n", o);
        }
        fputs("</ul>\n", o);
    }
}

static void section_notes(FILE *o, const cJSON *r)
{
    const cJSON *n = mc_rj(r, "notes"), *it;
    fputs("<h2 id=\"notes\">Notes and warnings</h2>\n", o);
    if (!cJSON_IsArray(n) || !cJSON_GetArraySize(n)) { fputs("<p class=\"cap\">None.</p>\n", o); return; }
    cJSON_ArrayForEach(it, n) {
        const char *txt = cJSON_IsString(it) ? it->valuestring : mc_rj_str(it, "text");
        if (!txt) continue;
        const char *cls = mc_note_level(it);
        fprintf(o, "<div class=\"note %s\"><b>%s</b> ", cls, cls);
        mc_html_esc(o, txt);
        fputs("</div>\n", o);
    }
}

static void section_definitions(FILE *o, const cJSON *r)
{
    const cJSON *d = mc_rj(r, "definitions"), *it;
    if (!cJSON_IsObject(d) || !cJSON_GetArraySize(d)) return;
    fputs("<h2 id=\"definitions\">Definitions</h2>\n<dl>\n", o);
    cJSON_ArrayForEach(it, d) if (cJSON_IsString(it)) {
        fputs("<dt>", o); mc_html_esc(o, it->string); fputs("</dt><dd>", o);
        mc_html_esc(o, it->valuestring); fputs("</dd>\n", o);
    }
    fputs("</dl>\n", o);
}

int mc_render_html(const cJSON *r, FILE *o)
{
    if (!cJSON_IsObject(r) || !o) return -1;
    const char *arch = mc_rj_str(r, "model.architecture"), *hw = mc_rj_str(r, "hardware.name");
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>moecap report", o);
    if (arch) { fputs(" \xe2\x80\x94 ", o); mc_html_esc(o, arch); }
    if (hw) { fputs(" on ", o); mc_html_esc(o, hw); }
    fprintf(o, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>moecap report</h1>\n<p class=\"sub\">", css);
    const char *mp = mc_rj_str(r, "model.path");
    fputs("model ", o);
    if (arch || mp) { mc_html_esc(o, arch ? arch : ""); if (mp) { fputs(" <code>", o); mc_html_esc(o, mp); fputs("</code>", o); } }
    else fputs(MC_ABSENT, o);
    fputs(" &middot; run ", o);
    if (mc_rj_str(r, "run.dir")) { fputs("<code>", o); mc_html_esc(o, mc_rj_str(r, "run.dir")); fputs("</code>", o); }
    else fputs(MC_ABSENT, o);
    double sv;
    if (mc_rj_num(r, "schema_version", &sv)) fprintf(o, " &middot; report schema v%.0f", sv);
    fputs("</p>\n<p class=\"cap\"><a href=\"#summary\">summary</a> &middot; <a href=\"#setup\">hardware, model, run</a> &middot; "
          "<a href=\"#experts\">expert load</a> &middot; <a href=\"#timeline\">per-step utilisation</a> &middot; "
          "<a href=\"#steptime\">step times</a> &middot; <a href=\"#energy\">energy</a> &middot; <a href=\"#cost\">cost</a> &middot; <a href=\"#whatif\">what-if</a> &middot; <a href=\"#compat\">MoE-CAP compatibility</a> &middot; <a href=\"#notes\">notes</a></p>\n", o);
    section_summary(o, r);
    section_client(o, r);
    section_heatmap(o, r);
    section_steps(o, r);
    mc_render_cost_html(r, o);
    section_compat(o, r);
    section_notes(o, r);
    section_setup(o, r);
    section_definitions(o, r);
    fputs("<p class=\"cap\">Generated by ", o);
    const char *gn = mc_rj_str(r, "generator.name"), *gv = mc_rj_str(r, "generator.version");
    mc_html_esc(o, gn ? gn : "moecap");
    if (gv) { fputc(' ', o); mc_html_esc(o, gv); }
    fputs(". Absent figures are shown as " MC_ABSENT "; nothing is estimated by the renderer.</p>\n</body>\n</html>\n", o);
    return ferror(o) ? -1 : 0;
}
