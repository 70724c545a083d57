/* `moecap compare RUN_OR_REPORT... [--out DIR]`: the headline figures of several runs side by
 * side, each run's MoE-CAP class with the reason, and the CAP radar (docs/cost.md). Reads
 * only report.json files (docs/report-schema.md). Prints the Markdown table; with --out also
 * writes compare.md, compare.html (self-contained), radar.svg and compare.json. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "compare/compare_run.h"
#include "compare/radar.h"
#include "hw/hw_cost.h"
#include "render/render_util.h"

static void usage(FILE *o)
{
    fprintf(o,
        "usage: moecap compare RUN_OR_REPORT... [--out DIR] [--labels A,B,...] [--axes LIST]\n"
        "                      [--title TEXT] [--any-model]\n"
        "\n"
        "Puts the headline figures of several runs side by side (latency, throughput, S-MBU/S-MFU\n"
        "and dense MBU/MFU, accuracy, energy, cost per 1M tokens, memory), classes each run PA / PC /\n"
        "CA from what was measured, and draws the CAP radar. Each argument is a report.json or a\n"
        "directory holding report.json (or report/report.json) written by `moecap report`.\n"
        "\n"
        "  --out DIR      also write DIR/compare.md, compare.html, radar.svg, compare.json\n"
        "  --labels LIST  names of the systems, in argument order (default: the run directories' names)\n"
        "  --axes LIST    radar axes among cost,accuracy,performance,smbu,smfu (default: all;\n"
        "                 smbu/smfu are left out when no run has them); at least 3\n"
        "  --title TEXT   the radar's title\n"
        "  --any-model    allow runs of different models (default: an error)\n"
        "\n"
        "Exit status: 0 ok, 2 bad input (unreadable or not a moecap report, unsupported schema,\n"
        "runs of different models, bad options).\n");
}

enum { AX_COST, AX_ACC, AX_PERF, AX_SMBU, AX_SMFU, AX_N };
static const char *const axis_key[AX_N] = {"cost", "accuracy", "performance", "smbu", "smfu"};

struct compare {
    struct mc_cmp_run *runs;
    int n;
    struct mc_radar radar;
    int axis_of[MC_RADAR_MAX_AXES];  /* radar axis -> AX_* */
    int client_perf;                 /* performance from the client side (every run has it) */
    char perf_unit[64], cost_unit[64];
    const char *title;
};

static int parse_axes(const char *list, int want[AX_N])
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    memset(want, 0, AX_N * sizeof *want);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = -1;
        for (int a = 0; a < AX_N; a++)
            if (!strcmp(t, axis_key[a])) k = a;
        if (k < 0) return -1;
        want[k] = 1;
    }
    return 0;
}

static double axis_value(const struct compare *c, const struct mc_cmp_run *r, int ax)
{
    switch (ax) {
    case AX_COST: return r->v[MC_M_COST_1M];
    case AX_ACC: return r->v[MC_M_ACCURACY];
    case AX_PERF: return c->client_perf ? r->v[MC_M_TPUT_CLIENT] : r->v[MC_M_TPUT];
    case AX_SMBU: return r->v[MC_M_SMBU];
    default: return r->v[MC_M_SMFU];
    }
}

static void build_radar(struct compare *c, const int want[AX_N])
{
    struct mc_radar *g = &c->radar;
    memset(g, 0, sizeof *g);
    c->client_perf = 1;
    int any_est = 0;
    for (int i = 0; i < c->n; i++) {
        c->client_perf &= !isnan(c->runs[i].v[MC_M_TPUT_CLIENT]);
        any_est |= c->runs[i].energy_estimated;
    }
    snprintf(c->perf_unit, sizeof c->perf_unit, "output tokens/s (%s)", c->client_perf ? "client" : "server, busy time");
    snprintf(c->cost_unit, sizeof c->cost_unit, "USD / 1M tokens%s", any_est ? " (energy estimated)" : "");
    const struct mc_radar_axis defs[AX_N] = {
        {"Cost", c->cost_unit, MC_F_NUM, 1}, {"Accuracy", "fraction correct", MC_F_PCT, 0},
        {"Performance", c->perf_unit, MC_F_RATE, 0}, {"S-MBU", "of peak bandwidth", MC_F_PCT, 0},
        {"S-MFU", "of peak FLOPS", MC_F_PCT, 0}};
    for (int a = 0; a < AX_N; a++) {
        if (!want[a]) continue;
        int any = 0;
        for (int i = 0; i < c->n; i++) any |= !isnan(axis_value(c, &c->runs[i], a));
        if (a >= AX_SMBU && !any) continue;   /* optional axes only when measured */
        c->axis_of[g->n_axes] = a;
        g->axis[g->n_axes++] = defs[a];
    }
    g->n_runs = c->n;
    for (int i = 0; i < c->n; i++) {
        g->run_label[i] = c->runs[i].label;
        for (int a = 0; a < g->n_axes; a++) g->value[i][a] = axis_value(c, &c->runs[i], c->axis_of[a]);
    }
    mc_radar_normalise(g);
}

/* ---------- tables ---------- */

static int row_present(const struct compare *c, int m)
{
    for (int i = 0; i < c->n; i++)
        if (!isnan(c->runs[i].v[m])) return 1;
    return 0;
}

static void cell(char *b, size_t len, const struct mc_cmp_run *r, int m)
{
    if (isnan(r->v[m])) { snprintf(b, len, "%s", MC_ABSENT); return; }
    mc_fmt(b, len, (enum mc_fmt)mc_cmp_metric_fmt(m), r->v[m]);
    if (m == MC_M_ENERGY || (m >= MC_M_COST_1M && m <= MC_M_COST_1M_OUT))
        if (r->energy_estimated) snprintf(b + strlen(b), len - strlen(b), " (estimated)");
}

static const char *text_row(const struct mc_cmp_run *r, int k)
{
    return k == 0 ? r->cls : k == 1 ? r->model : k == 2 ? r->hardware : r->precision;
}
static const char *const text_rows[4] = {"class", "model", "hardware", "precision"};

static void write_md(const struct compare *c, FILE *o, int with_radar)
{
    fprintf(o, "# moecap compare\n\n| | ");
    for (int i = 0; i < c->n; i++) { mc_md_esc(o, c->runs[i].label); fputs(" | ", o); }
    fputs("\n|---|", o);
    for (int i = 0; i < c->n; i++) fputs("---:|", o);
    fputc('\n', o);
    for (int k = 0; k < 4; k++) {
        fprintf(o, "| %s |", text_rows[k]);
        for (int i = 0; i < c->n; i++) { fputc(' ', o); mc_md_esc(o, text_row(&c->runs[i], k)); fputs(" |", o); }
        fputc('\n', o);
    }
    char b[96];
    for (int m = 0; m < MC_M_COUNT; m++) {
        if (!row_present(c, m)) continue;
        fprintf(o, "| %s |", mc_cmp_metric_title(m));
        for (int i = 0; i < c->n; i++) { cell(b, sizeof b, &c->runs[i], m); fprintf(o, " %s |", b); }
        fputc('\n', o);
    }
    fputs("\nNot measured in any run:", o);
    int none = 1;
    for (int m = 0; m < MC_M_COUNT; m++)
        if (!row_present(c, m)) { fprintf(o, "%s %s", none ? "" : ",", mc_cmp_metric_title(m)); none = 0; }
    fputs(none ? " none.\n" : ".\n", o);
    fputs("\n## Classes (MoE-CAP: PA performance + accuracy, PC performance + cost, CA cost + accuracy)\n\n", o);
    for (int i = 0; i < c->n; i++) {
        fputs("- **", o); mc_md_esc(o, c->runs[i].label); fprintf(o, "**: %s — ", c->runs[i].cls);
        mc_md_esc(o, c->runs[i].cls_reason); fputc('\n', o);
    }
    if (with_radar)
        fputs("\n## CAP radar\n\n![CAP radar](radar.svg)\n\nEach axis is normalised over the systems shown: value / best "
              "value (cost: best value / value), so the outer ring is the best system on that axis and outward is better.\n", o);
}

static const char css[] =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
    "table{border-collapse:collapse;margin:12px 0}th,td{border:1px solid #ccc;padding:5px 10px;font-size:14px}"
    "td{text-align:right}td.t,th{text-align:left}th{background:#f2f2f2}"
    ".sw{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle}"
    ".cls{font-weight:bold}li{margin:4px 0}";

static void write_html(const struct compare *c, FILE *o)
{
    fprintf(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>moecap compare</title>"
               "<style>%s</style></head><body>\n<h1>moecap compare</h1>\n", css);
    if (c->radar.n_axes >= 3) mc_radar_svg(o, &c->radar, c->title);
    fputs("<h2>Headline figures</h2>\n<table><tr><th></th>", o);
    for (int i = 0; i < c->n; i++) {
        fprintf(o, "<th><span class=\"sw\" style=\"background:%s\"></span>", mc_radar_colour(i));
        mc_html_esc(o, c->runs[i].label);
        fputs("</th>", o);
    }
    fputs("</tr>\n", o);
    for (int k = 0; k < 4; k++) {
        fprintf(o, "<tr><th>%s</th>", text_rows[k]);
        for (int i = 0; i < c->n; i++) {
            fprintf(o, "<td class=\"t%s\">", k == 0 ? " cls" : "");
            mc_html_esc(o, text_row(&c->runs[i], k));
            fputs("</td>", o);
        }
        fputs("</tr>\n", o);
    }
    char b[96];
    for (int m = 0; m < MC_M_COUNT; m++) {
        if (!row_present(c, m)) continue;
        fprintf(o, "<tr><th>%s</th>", mc_cmp_metric_title(m));
        for (int i = 0; i < c->n; i++) { cell(b, sizeof b, &c->runs[i], m); fputs("<td>", o); mc_html_esc(o, b); fputs("</td>", o); }
        fputs("</tr>\n", o);
    }
    fputs("</table>\n<h2>Classes</h2>\n<p>MoE-CAP's classes: PA = performance + accuracy, PC = performance + cost, "
          "CA = cost + accuracy; decided from what was measured.</p>\n<ul>\n", o);
    for (int i = 0; i < c->n; i++) {
        fputs("<li><b>", o); mc_html_esc(o, c->runs[i].label); fprintf(o, "</b>: <span class=\"cls\">%s</span> — ", c->runs[i].cls);
        mc_html_esc(o, c->runs[i].cls_reason); fputs("</li>\n", o);
    }
    fputs("</ul>\n<h2>Inputs</h2>\n<ul>\n", o);
    for (int i = 0; i < c->n; i++) { fputs("<li>", o); mc_html_esc(o, c->runs[i].label); fputs(": ", o); mc_html_esc(o, c->runs[i].path); fputs("</li>\n", o); }
    fputs("</ul>\n</body></html>\n", o);
}


static cJSON *compare_json(const struct compare *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "generator", "moecap compare");
    cJSON *runs = cJSON_AddArrayToObject(o, "runs");
    for (int i = 0; i < c->n; i++) {
        const struct mc_cmp_run *r = &c->runs[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "label", r->label);
        cJSON_AddStringToObject(x, "report", r->path);
        cJSON_AddStringToObject(x, "class", r->cls);
        cJSON_AddStringToObject(x, "class_reason", r->cls_reason);
        cJSON_AddBoolToObject(x, "energy_estimated", r->energy_estimated);
        cJSON *v = cJSON_AddObjectToObject(x, "values");
        for (int m = 0; m < MC_M_COUNT; m++) cJSON_AddItemToObject(v, mc_cmp_metric_title(m), mc_json_num_or_null(r->v[m]));
        cJSON_AddItemToArray(runs, x);
    }
    cJSON *rad = cJSON_AddObjectToObject(o, "radar");
    cJSON_AddStringToObject(rad, "normalisation", "per axis over the runs shown: value / best (lower-is-better: best / value)");
    cJSON *axes = cJSON_AddArrayToObject(rad, "axes");
    for (int a = 0; a < c->radar.n_axes; a++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", c->radar.axis[a].name);
        cJSON_AddStringToObject(x, "unit", c->radar.axis[a].unit);
        cJSON_AddBoolToObject(x, "lower_is_better", c->radar.axis[a].lower_is_better);
        cJSON_AddItemToObject(x, "best", mc_json_num_or_null(c->radar.best[a]));
        cJSON *vals = cJSON_AddArrayToObject(x, "values"), *norm = cJSON_AddArrayToObject(x, "normalised");
        for (int i = 0; i < c->n; i++) {
            cJSON_AddItemToArray(vals, mc_json_num_or_null(c->radar.value[i][a]));
            cJSON_AddItemToArray(norm, mc_json_num_or_null(c->radar.r[i][a]));
        }
        cJSON_AddItemToArray(axes, x);
    }
    return o;
}

static int write_file(const char *dir, const char *name, struct compare *c, int what)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) { fprintf(stderr, "moecap compare: cannot write %s: %s\n", p, strerror(errno)); return -1; }
    if (what == 0) write_md(c, f, c->radar.n_axes >= 3);
    else if (what == 1) write_html(c, f);
    else if (what == 2) mc_radar_svg(f, &c->radar, c->title);
    else {
        cJSON *j = compare_json(c);
        char *s = cJSON_Print(j);
        if (s) fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
    if (fclose(f) != 0) { fprintf(stderr, "moecap compare: writing %s failed\n", p); return -1; }
    return 0;
}

int mc_cmd_compare(int argc, char **argv)
{
    const char *out = NULL, *labels = NULL, *axes = "cost,accuracy,performance,smbu,smfu", *title = "CAP radar";
    int any_model = 0;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    int n_in = 0;
    if (!inputs) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(inputs); return 0; }
        else if (!strcmp(a, "--any-model")) any_model = 1;
        else if (i + 1 < argc && !strcmp(a, "--out")) out = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--labels")) labels = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--axes")) axes = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--title")) title = argv[++i];
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "moecap compare: unknown or incomplete option '%s'\n", a);
            usage(stderr); free(inputs); return 2;
        } else inputs[n_in++] = a;
    }
    int want[AX_N];
    if (!n_in) { fprintf(stderr, "moecap compare: give at least one run directory or report.json\n"); usage(stderr); free(inputs); return 2; }
    if (n_in > MC_RADAR_MAX_RUNS) { fprintf(stderr, "moecap compare: at most %d runs\n", MC_RADAR_MAX_RUNS); free(inputs); return 2; }
    if (parse_axes(axes, want) != 0) {
        fprintf(stderr, "moecap compare: --axes '%s': want a comma-separated list of cost, accuracy, performance, smbu, smfu\n", axes);
        free(inputs); return 2;
    }
    struct compare c;
    memset(&c, 0, sizeof c);
    c.title = title;
    c.runs = calloc((size_t)n_in, sizeof *c.runs);
    int rc = 2;
    char err[2048];
    if (!c.runs) { rc = 1; goto done; }
    for (int i = 0; i < n_in; i++, c.n++)
        if (mc_cmp_run_load(inputs[i], &c.runs[i], err, sizeof err) != 0) { fprintf(stderr, "moecap compare: %s\n", err); goto done; }
    if (!any_model && mc_cmp_same_model(c.runs, c.n, err, sizeof err) != 0) { fprintf(stderr, "moecap compare: %s\n", err); goto done; }
    if (labels) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", labels);
        char *save = NULL;
        int k = 0;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save), k++)
            if (k < c.n) snprintf(c.runs[k].label, sizeof c.runs[k].label, "%s", t);
        if (k != c.n) { fprintf(stderr, "moecap compare: --labels has %d names for %d runs\n", k, c.n); goto done; }
    } else {
        /* the same directory name twice (run/report under different parents): number them */
        for (int i = 0; i < c.n; i++)
            for (int j = i + 1; j < c.n; j++)
                if (!strcmp(c.runs[i].label, c.runs[j].label)) {
                    size_t l = strlen(c.runs[j].label);
                    snprintf(c.runs[j].label + l, sizeof c.runs[j].label - l, " #%d", j + 1);
                }
    }
    build_radar(&c, want);
    if (c.radar.n_axes < 3) { fprintf(stderr, "moecap compare: the radar needs at least 3 axes (--axes %s)\n", axes); goto done; }
    write_md(&c, stdout, out != NULL);
    if (out) {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) { fprintf(stderr, "moecap compare: cannot create %s: %s\n", out, strerror(errno)); rc = 1; goto done; }
        static const char *const files[4] = {"compare.md", "compare.html", "radar.svg", "compare.json"};
        for (int k = 0; k < 4; k++)
            if (write_file(out, files[k], &c, k) != 0) { rc = 1; goto done; }
        fprintf(stderr, "moecap compare: wrote %s/{compare.md,compare.html,radar.svg,compare.json}\n", out);
    }
    rc = 0;
done:
    for (int i = 0; i < c.n; i++) mc_cmp_run_free(&c.runs[i]);
    free(c.runs);
    free(inputs);
    return rc;
}
