/* Energy, cost and what-if tables for both renderers (see render_cost.h). The tables are
 * built once as text cells, then written as Markdown or HTML, so both show the same rows. */
#include "render/render_cost.h"

#include <math.h>
#include <string.h>

#include "render/render_util.h"

#define COLS 8
#define ROWS 80
#define CELL 200

struct table {
    int cols, rows;
    char head[COLS][64];
    char cell[ROWS][COLS][CELL];
};

static void row(struct table *t, const char *const *v)
{
    if (t->rows >= ROWS) return;
    for (int c = 0; c < t->cols; c++) snprintf(t->cell[t->rows][c], CELL, "%s", v[c] ? v[c] : MC_ABSENT);
    t->rows++;
}

static void emit(const struct table *t, FILE *o, int html)
{
    if (html) {
        fputs("<table class=\"cost\"><tr>", o);
        for (int c = 0; c < t->cols; c++) { fputs("<th>", o); mc_html_esc(o, t->head[c]); fputs("</th>", o); }
        fputs("</tr>\n", o);
        for (int r = 0; r < t->rows; r++) {
            fputs("<tr>", o);
            for (int c = 0; c < t->cols; c++) {
                fputs(c ? "<td>" : "<th class=\"l\">", o);
                mc_html_esc(o, t->cell[r][c]);
                fputs(c ? "</td>" : "</th>", o);
            }
            fputs("</tr>\n", o);
        }
        fputs("</table>\n", o);
        return;
    }
    fputc('|', o);
    for (int c = 0; c < t->cols; c++) { fputc(' ', o); mc_md_esc(o, t->head[c]); fputs(" |", o); }
    fputs("\n|", o);
    for (int c = 0; c < t->cols; c++) fputs(c ? "---:|" : "---|", o);
    fputc('\n', o);
    for (int r = 0; r < t->rows; r++) {
        fputc('|', o);
        for (int c = 0; c < t->cols; c++) { fputc(' ', o); mc_md_esc(o, t->cell[r][c]); fputs(" |", o); }
        fputc('\n', o);
    }
}

static void heading(FILE *o, int html, const char *id, const char *text)
{
    if (html) fprintf(o, "<h2 id=\"%s\">%s</h2>\n", id, text);
    else fprintf(o, "\n## %s\n\n", text);
}

static void para(FILE *o, int html, const char *text)
{
    if (html) { fputs("<p class=\"cap\">", o); mc_html_esc(o, text); fputs("</p>\n", o); }
    else { fputc('\n', o); mc_md_esc(o, text); fputs("\n\n", o); }
}

static const char *fmt_usd(char *b, size_t n, const cJSON *o, const char *path)
{
    double v;
    if (!mc_rj_num(o, path, &v)) return NULL;
    snprintf(b, n, "$%.4g", v);
    return b;
}

static void energy(const cJSON *r, FILE *o, int html)
{
    const cJSON *e = mc_rj(r, "energy");
    if (!cJSON_IsObject(e)) return;
    heading(o, html, "energy", "Energy");
    struct table t = {.cols = 3};
    snprintf(t.head[0], 64, "part"); snprintf(t.head[1], 64, "energy"); snprintf(t.head[2], 64, "how");
    static const char *const parts[3] = {"total", "devices", "host"};
    for (int i = 0; i < 3; i++) {
        char j[64] = "", lab[CELL];
        const cJSON *p = i ? mc_rj(e, parts[i]) : e;
        double v;
        const char *m = mc_rj_str(p, "method");
        if (mc_rj_num(p, "joules", &v)) snprintf(j, sizeof j, "%.4g J (%s)", v, m ? m : "?");
        snprintf(lab, sizeof lab, "%s", i ? mc_rj_str(p, "how") ? mc_rj_str(p, "how") : "" : "");
        double win;
        if (!i && mc_rj_num(e, "mean_power_w", &v) && mc_rj_num(e, "window_s", &win))
            snprintf(lab, sizeof lab, "mean power %.4g W over the step span, %.4g s", v, win);
        const char *cells[3] = {parts[i], j[0] ? j : NULL, lab};
        row(&t, cells);
    }
    emit(&t, o, html);
    const char *us = mc_rj_str(e, "utilisation_source");
    if (us) {
        char b[400];
        double u = 0;
        mc_rj_num(e, "utilisation", &u);
        snprintf(b, sizeof b, "Estimated energy uses idle_w + (tdp_w - idle_w) x utilisation per device; utilisation %.3f from %s.", u, us);
        para(o, html, b);
    }
}

static void cost(const cJSON *r, FILE *o, int html)
{
    const cJSON *c = mc_rj(r, "cost");
    if (!cJSON_IsObject(c)) return;
    heading(o, html, "cost", "Cost");
    int est = mc_rj_bool(c, "owned.energy_estimated") == 1;
    struct table t = {.cols = 5};
    const char *h[5] = {"", "run", "per 1M input tokens", "per 1M output tokens", "per 1M tokens"};
    for (int i = 0; i < 5; i++) snprintf(t.head[i], 64, "%s", h[i]);
    static const char *const keys[4] = {"run_usd", "per_1m_input_tokens_usd", "per_1m_output_tokens_usd", "per_1m_tokens_usd"};
    static const char *const sect[2] = {"owned", "cloud"};
    for (int s = 0; s < 2; s++) {
        const cJSON *x = mc_rj(c, sect[s]);
        if (!cJSON_IsObject(x)) continue;
        char b[4][64], lab[96];
        const char *cells[5];
        snprintf(lab, sizeof lab, "%s", s ? "cloud price" : est ? "owned hardware (estimated energy)" : "owned hardware (measured energy)");
        cells[0] = lab;
        for (int k = 0; k < 4; k++) cells[k + 1] = fmt_usd(b[k], 64, x, keys[k]);
        row(&t, cells);
    }
    emit(&t, o, html);
    char b1[64], b2[64], b3[64], line[600];
    snprintf(line, sizeof line, "Run cost = energy %s + amortised hardware %s (capital %s); formulas in report.json cost.formulas "
             "and docs/cost.md.", fmt_usd(b1, 64, c, "owned.energy_usd") ? b1 : MC_ABSENT,
             fmt_usd(b2, 64, c, "owned.amortised_usd") ? b2 : MC_ABSENT, fmt_usd(b3, 64, c, "owned.capital_usd") ? b3 : MC_ABSENT);
    para(o, html, line);
    snprintf(line, sizeof line, "MoE-CAP's own cost formula (moecap_compat_cost: whole purchase x 1.25 + the run's energy at TDP "
             "+ 350 W x 1.2 at $0.15/kWh; not amortised, not per token): %s.",
             fmt_usd(b1, 64, c, "moecap_compat_cost.total_usd") ? b1 : MC_ABSENT);
    para(o, html, line);
    /* every parameter with its value and source */
    struct table p = {.cols = 3};
    snprintf(p.head[0], 64, "parameter (--cost NAME=V)"); snprintf(p.head[1], 64, "value"); snprintf(p.head[2], 64, "source");
    const cJSON *ps = mc_rj(c, "parameters"), *it;
    cJSON_ArrayForEach(it, ps) {
        char v[64] = "";
        double x;
        if (mc_rj_num(it, "value", &x)) snprintf(v, sizeof v, "%.6g", x);
        const char *cells[3] = {it->string, v[0] ? v : NULL, mc_rj_str(it, "source")};
        row(&p, cells);
    }
    emit(&p, o, html);
}

static void whatif(const cJSON *r, FILE *o, int html)
{
    const cJSON *w = mc_rj(r, "whatif");
    if (!cJSON_IsObject(w)) return;
    heading(o, html, "whatif", "Hardware what-if (prediction)");
    const char *m = mc_rj_str(w, "method");
    if (m) para(o, html, m);
    struct table t = {.cols = 7};
    const char *h[7] = {"hardware", "TPOT (achieved eff.)", "TPOT (100 % roofline)", "output tokens/s (achieved eff.)",
                        "USD / 1M tokens (achieved eff.)", "weights fit", "note"};
    for (int i = 0; i < 7; i++) snprintf(t.head[i], 64, "%s", h[i]);
    const cJSON *it;
    cJSON_ArrayForEach(it, mc_rj(w, "targets")) {
        char b[5][64];
        const char *cells[7] = {mc_rj_str(it, "hardware"), NULL, NULL, NULL, NULL, NULL, mc_rj_str(it, "skipped")};
        double v;
        if (mc_rj_num(it, "at_achieved_efficiency.tpot_s", &v)) cells[1] = mc_fmt(b[0], 64, MC_F_TIME, v);
        if (mc_rj_num(it, "at_roofline.tpot_s", &v)) cells[2] = mc_fmt(b[1], 64, MC_F_TIME, v);
        if (mc_rj_num(it, "at_achieved_efficiency.output_tokens_per_s", &v)) cells[3] = mc_fmt(b[2], 64, MC_F_RATE, v);
        cells[4] = fmt_usd(b[3], 64, it, "at_achieved_efficiency.per_1m_tokens_usd");
        int fit = mc_rj_bool(it, "weights_fit");
        if (fit >= 0) cells[5] = fit ? "yes" : "no";
        row(&t, cells);
    }
    emit(&t, o, html);
    const cJSON *rk = mc_rj(w, "ranking");
    cJSON_ArrayForEach(it, rk) {
        char line[1200];
        size_t l = (size_t)snprintf(line, sizeof line, "Ranked %s (predicted): ", !strcmp(it->string, "by_tpot") ? "by TPOT" : "by cost per 1M tokens");
        const cJSON *n;
        int k = 0;
        cJSON_ArrayForEach(n, it)
            if (cJSON_IsString(n) && l < sizeof line - 80) l += (size_t)snprintf(line + l, sizeof line - l, "%s%d. %s", k ? ", " : "", k + 1, n->valuestring), k++;
        para(o, html, line);
    }
}

void mc_render_cost_md(const cJSON *report, FILE *out)
{
    energy(report, out, 0);
    cost(report, out, 0);
    whatif(report, out, 0);
}

void mc_render_cost_html(const cJSON *report, FILE *out)
{
    energy(report, out, 1);
    cost(report, out, 1);
    whatif(report, out, 1);
}
