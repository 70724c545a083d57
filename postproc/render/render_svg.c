/* Inline SVG charts (heatmap, timeline, histogram) for the HTML report. Plain SVG 1.1
 * elements only, so the page needs no script and parses as XML. */
#include "render/render_svg.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 9 stops of matplotlib's viridis (perceptually uniform, readable in grey scale). */
static const unsigned char viridis[9][3] = {
    {68, 1, 84}, {71, 44, 122}, {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
    {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37}};

void mc_svg_viridis(double t, char out[8])
{
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * 8;
    int i = (int)x;
    if (i >= 8) i = 7;
    double f = x - i;
    int rgb[3];
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(viridis[i][c] + f * (viridis[i + 1][c] - viridis[i][c]));
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

int mc_svg_heatmap(FILE *out, const cJSON *el, const char *matrix, const char *legend_label)
{
    const cJSON *layers = mc_rj(el, "layers"), *m = mc_rj(el, matrix);
    double e_d;
    if (!cJSON_IsArray(m) || !cJSON_GetArraySize(m)) return 0;
    int rows = cJSON_GetArraySize(m);
    int cols = 0;
    if (mc_rj_num(el, "num_experts", &e_d) && e_d >= 1 && e_d <= 65536) cols = (int)e_d;
    const cJSON *row;
    cJSON_ArrayForEach(row, m)
        if (cJSON_IsArray(row) && cJSON_GetArraySize(row) > cols) cols = cJSON_GetArraySize(row);
    if (cols <= 0 || rows > 100000) return 0;
    double vmax = 0;
    cJSON_ArrayForEach(row, m) {
        const cJSON *c;
        cJSON_ArrayForEach(c, row)
            if (mc_json_finite(c, NULL) && c->valuedouble > vmax) vmax = c->valuedouble;
    }
    int cw = clampi(960 / cols, 3, 40), ch = clampi(640 / rows, 3, 26);
    int show_values = cw >= 28 && ch >= 16; /* print counts inside cells when they fit */
    int ml = 64, mt = 34, gridw = cw * cols, gridh = ch * rows;
    int legend_h = 56;
    int w = ml + gridw + 20, h = mt + gridh + 16 + legend_h;
    if (w < ml + 240 + 250) w = ml + 240 + 250; /* room for the legend and its label */
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart heatmap\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"expert load heatmap\">\n", w, h, w, h);
    /* Column (expert) labels: as many as fit without overlapping. */
    int estep = clampi((int)ceil(26.0 / cw), 1, cols);
    fprintf(out, "<g class=\"axis\" font-size=\"10\" text-anchor=\"middle\">\n");
    for (int e = 0; e < cols; e += estep)
        fprintf(out, "<text x=\"%.1f\" y=\"%d\">%d</text>\n", ml + (e + 0.5) * cw, mt - 6, e);
    fprintf(out, "<text x=\"%.1f\" y=\"12\" font-size=\"11\">expert</text>\n", ml + gridw / 2.0);
    fprintf(out, "</g>\n<g class=\"axis\" font-size=\"10\" text-anchor=\"end\">\n");
    int lstep = clampi((int)ceil(12.0 / ch), 1, rows);
    for (int r = 0; r < rows; r += lstep) {
        const cJSON *lj = cJSON_IsArray(layers) ? cJSON_GetArrayItem(layers, r) : NULL;
        if (mc_json_finite(lj, NULL))
            fprintf(out, "<text x=\"%d\" y=\"%.1f\" dominant-baseline=\"middle\">L%.0f</text>\n", ml - 6, mt + (r + 0.5) * ch, lj->valuedouble);
        else
            fprintf(out, "<text x=\"%d\" y=\"%.1f\" dominant-baseline=\"middle\">row %d</text>\n", ml - 6, mt + (r + 0.5) * ch, r);
    }
    fprintf(out, "<text x=\"12\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 %.1f)\">layer</text>\n",
            mt + gridh / 2.0, mt + gridh / 2.0);
    fprintf(out, "</g>\n<g class=\"cells\">\n");
    int cells = 0, r = 0;
    cJSON_ArrayForEach(row, m) {
        const cJSON *lj = cJSON_IsArray(layers) ? cJSON_GetArrayItem(layers, r) : NULL;
        for (int e = 0; e < cols; e++) {
            const cJSON *c = cJSON_IsArray(row) ? cJSON_GetArrayItem(row, e) : NULL;
            int x = ml + e * cw, y = mt + r * ch;
            if (!mc_json_finite(c, NULL)) {
                /* Absent, not zero: grey with no value in the tooltip. */
                fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#d9d9d9\"><title>layer %s%.0f, expert %d: no data</title></rect>\n",
                        x, y, cw, ch, mc_json_finite(lj, NULL) ? "" : "row ", mc_json_finite(lj, NULL) ? lj->valuedouble : (double)r, e);
                continue;
            }
            char col[8];
            mc_svg_viridis(vmax > 0 ? c->valuedouble / vmax : 0, col);
            double t = vmax > 0 ? c->valuedouble / vmax : 0;
            fprintf(out, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>layer %s%.0f, expert %d: %.0f</title></rect>\n",
                    x, y, cw, ch, col, mc_json_finite(lj, NULL) ? "" : "row ", mc_json_finite(lj, NULL) ? lj->valuedouble : (double)r, e, c->valuedouble);
            if (show_values) /* dark text on the light (yellow/green) end of viridis */
                fprintf(out, "<text class=\"val\" x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" dominant-baseline=\"middle\" style=\"fill:%s\">%.0f</text>\n",
                        x + cw / 2.0, y + ch / 2.0, t > 0.6 ? "#111" : "#fff", c->valuedouble);
            cells++;
        }
        r++;
    }
    fprintf(out, "</g>\n");
    /* Colour-scale legend: gradient from 0 to the matrix maximum. */
    int ly = mt + gridh + 16, lw = 240;
    fprintf(out, "<defs><linearGradient id=\"hm-scale-%s\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">\n", matrix);
    for (int i = 0; i <= 8; i++) {
        char col[8];
        mc_svg_viridis(i / 8.0, col);
        fprintf(out, "<stop offset=\"%.3f\" stop-color=\"%s\"/>\n", i / 8.0, col);
    }
    fprintf(out, "</linearGradient></defs>\n<g class=\"legend\" font-size=\"11\">\n");
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"12\" fill=\"url(#hm-scale-%s)\" stroke=\"#888\" stroke-width=\"0.5\"/>\n", ml, ly, lw, matrix);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"start\">0</text>\n", ml, ly + 26);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.0f</text>\n", ml + lw, ly + 26, vmax);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"start\">", ml + lw + 12, ly + 10);
    mc_html_esc(out, legend_label);
    fprintf(out, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#d9d9d9\"/><text x=\"%d\" y=\"%d\">no data</text>\n",
            ml + lw + 12, ly + 16, ml + lw + 28, ly + 26);
    fprintf(out, "</g>\n</svg>\n");
    return cells;
}

/* ---- shared axis helpers ------------------------------------------------------------ */

/* A "nice" axis maximum >= v (m x 10^k) and a division count giving round tick values. */
static double nice_axis(double v, int *ndiv)
{
    static const double m[] = {1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10};
    static const int div[] = {4, 3, 4, 5, 3, 4, 5, 3, 4, 4};
    *ndiv = 4;
    if (!(v > 0)) return 1;
    if (v > 1e300) return DBL_MAX; /* absurd input: keep the arithmetic finite */
    double p = pow(10, floor(log10(v)));
    for (int i = 0; i < 10; i++)
        if (m[i] * p >= v * (1 - 1e-9)) { *ndiv = div[i]; return m[i] * p; }
    return 10 * p;
}

enum { TL_W = 960, TL_H = 250, TL_ML = 64, TL_MR = 16, TL_MT = 28, TL_MB = 46 };

static void polyline_series(FILE *out, const double *v, size_t n, size_t buckets, double ymax,
                            const char *color, const char *dash, const char *label)
{
    double pw = TL_W - TL_ML - TL_MR, ph = TL_H - TL_MT - TL_MB;
    int open = 0;
    for (size_t b = 0; b < buckets; b++) {
        size_t lo = n * b / buckets, hi = n * (b + 1) / buckets;
        double sum = 0;
        size_t cnt = 0;
        for (size_t i = lo; i < hi; i++)
            if (!isnan(v[i])) { sum += v[i]; cnt++; }
        if (!cnt) { if (open) fputs("\"/>\n", out); open = 0; continue; }
        double x = TL_ML + (buckets == 1 ? pw / 2 : pw * (double)b / (double)(buckets - 1));
        double y = TL_MT + ph * (1 - (sum / cnt) / ymax);
        if (!open) {
            fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s%s%s points=\"",
                    color, dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
            open = 1;
        }
        fprintf(out, "%.1f,%.1f ", x, y);
    }
    if (open) fputs("\"/>\n", out);
    (void)label;
}

int mc_svg_timeline(FILE *out, const struct mc_step_series *s, int which)
{
    const double *sp = which ? s->s_mfu : s->s_mbu, *dn = which ? s->mfu : s->mbu;
    const char *color = which ? "#c2410c" : "#1d4ed8";
    const char *sname = which ? "S-MFU" : "S-MBU", *dname = which ? "MFU (all experts)" : "MBU (all experts)";
    if (!s->n) return 0;
    double vmax = 0;
    size_t have = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!isnan(sp[i])) { have++; if (sp[i] > vmax) vmax = sp[i]; }
        if (!isnan(dn[i])) { have++; if (dn[i] > vmax) vmax = dn[i]; }
    }
    if (!have) return 0;
    int ndiv;
    double ymax = nice_axis(vmax < 1e300 ? vmax * 1.05 : vmax, &ndiv);
    size_t buckets = s->n > 1200 ? 1200 : s->n;
    double pw = TL_W - TL_ML - TL_MR, ph = TL_H - TL_MT - TL_MB;
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart timeline\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s per step\">\n",
            TL_W, TL_H, TL_W, TL_H, sname);
    /* Grid and y axis in percent. */
    fprintf(out, "<g class=\"axis\" font-size=\"10\">\n");
    for (int i = 0; i <= ndiv; i++) {
        double v = ymax * i / ndiv, y = TL_MT + ph * (1 - (double)i / ndiv);
        char lab[32];
        if (isfinite(v * 100)) snprintf(lab, sizeof lab, "%.3g %%", v * 100); /* more digits than tables */
        else snprintf(lab, sizeof lab, "%s", MC_ABSENT);
        fprintf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e7eb\"/>\n", TL_ML, TL_W - TL_MR, y, y);
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%s</text>\n", TL_ML - 6, y, lab);
    }
    /* x ticks: step indices. */
    size_t xstep = 1; /* 1, 2, 5, 10, 20, 50 ... so that at most ~9 ticks show */
    for (size_t mag = 1; mag < ((size_t)1 << 40); mag *= 10) {
        if ((s->n - 1) / mag <= 8) { xstep = mag; break; }
        if ((s->n - 1) / (2 * mag) <= 8) { xstep = 2 * mag; break; }
        if ((s->n - 1) / (5 * mag) <= 8) { xstep = 5 * mag; break; }
    }
    for (size_t step = 0; step < s->n; step += xstep) {
        double x = TL_ML + (s->n == 1 ? pw / 2 : pw * (double)step / (double)(s->n - 1));
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%zu</text>\n", x, TL_H - TL_MB + 26, step);
    }
    fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">step</text>\n", TL_ML + pw / 2, TL_H - 4);
    fprintf(out, "</g>\n");
    /* Step kind strip under the plot: runs of one kind merged into one rectangle. */
    fprintf(out, "<g class=\"kinds\">\n");
    for (size_t i = 0; i < s->n;) {
        size_t j = i;
        while (j < s->n && s->kind[j] == s->kind[i]) j++;
        const char *kc = s->kind[i] == 'p' ? "#f59e0b" : s->kind[i] == 'd' ? "#94a3b8" : s->kind[i] == 'm' ? "#a855f7" : "#e5e7eb";
        /* Centred on the points: step i sits at pw*i/(n-1). */
        double x0 = s->n == 1 ? TL_ML : TL_ML + pw * ((double)i - 0.5) / (double)(s->n - 1);
        double x1 = s->n == 1 ? TL_ML + pw : TL_ML + pw * ((double)j - 0.5) / (double)(s->n - 1);
        if (x0 < TL_ML) x0 = TL_ML;
        if (x1 > TL_ML + pw) x1 = TL_ML + pw;
        fprintf(out, "<rect x=\"%.1f\" y=\"%d\" width=\"%.2f\" height=\"6\" fill=\"%s\"/>\n", x0, TL_H - TL_MB + 6, x1 - x0 < 0.5 ? 0.5 : x1 - x0, kc);
        i = j;
    }
    fprintf(out, "</g>\n<g class=\"series\">\n");
    polyline_series(out, dn, s->n, buckets, ymax, color, "5 4", dname);
    polyline_series(out, sp, s->n, buckets, ymax, color, NULL, sname);
    if (s->n <= 60) /* few steps: dots make single points (and gaps' neighbours) visible */
        for (size_t i = 0; i < s->n; i++) {
            double x = TL_ML + (s->n == 1 ? pw / 2 : pw * (double)i / (double)(s->n - 1));
            if (!isnan(dn[i]))
                fprintf(out, "<circle class=\"dense\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#fff\" stroke=\"%s\"/>\n", x, TL_MT + ph * (1 - dn[i] / ymax), color);
            if (!isnan(sp[i]))
                fprintf(out, "<circle class=\"sparse\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x, TL_MT + ph * (1 - sp[i] / ymax), color);
        }
    fprintf(out, "</g>\n");
    /* Legend. */
    fprintf(out, "<g class=\"legend\" font-size=\"11\">\n"
                 "<line x1=\"%d\" x2=\"%d\" y1=\"12\" y2=\"12\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%d\" y=\"16\">%s (activated experts)</text>\n"
                 "<line x1=\"%d\" x2=\"%d\" y1=\"12\" y2=\"12\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"5 4\"/><text x=\"%d\" y=\"16\">%s</text>\n"
                 "<rect x=\"%d\" y=\"7\" width=\"10\" height=\"8\" fill=\"#f59e0b\"/><text x=\"%d\" y=\"16\">prefill</text>\n"
                 "<rect x=\"%d\" y=\"7\" width=\"10\" height=\"8\" fill=\"#94a3b8\"/><text x=\"%d\" y=\"16\">decode</text>\n"
                 "<rect x=\"%d\" y=\"7\" width=\"10\" height=\"8\" fill=\"#a855f7\"/><text x=\"%d\" y=\"16\">mixed</text>\n",
            TL_ML, TL_ML + 24, color, TL_ML + 30, sname,
            TL_ML + 250, TL_ML + 274, color, TL_ML + 280, dname,
            TL_ML + 460, TL_ML + 474, TL_ML + 530, TL_ML + 544, TL_ML + 600, TL_ML + 614);
    if (buckets < s->n)
        fprintf(out, "<text x=\"%d\" y=\"16\" text-anchor=\"end\" fill=\"#555\">each point: mean of ~%zu steps</text>\n", TL_W - TL_MR, (s->n + buckets - 1) / buckets);
    fprintf(out, "</g>\n</svg>\n");
    return (int)buckets;
}

int mc_svg_histogram(FILE *out, const struct mc_step_series *s, const cJSON *report)
{
    double lo = INFINITY, hi = -INFINITY;
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!isnan(s->time_s[i]) && s->time_s[i] >= 0) {
            n++;
            if (s->time_s[i] < lo) lo = s->time_s[i];
            if (s->time_s[i] > hi) hi = s->time_s[i];
        }
    if (!n) return 0;
    int bins = n >= 40 ? 40 : n < 5 ? 5 : (int)n;
    if (hi <= lo) { double d = lo > 0 ? lo * 0.05 : 1e-6; lo -= d; hi += d; if (lo < 0) lo = 0; }
    double bw = (hi - lo) / bins;
    int (*cnt)[3] = calloc((size_t)bins, sizeof *cnt);
    if (!cnt) return 0;
    for (size_t i = 0; i < s->n; i++) {
        double t = s->time_s[i];
        if (isnan(t) || t < 0) continue;
        int b = (int)((t - lo) / bw);
        if (b >= bins) b = bins - 1;
        if (b < 0) b = 0;
        int k = s->kind[i] == 'p' ? 0 : s->kind[i] == 'd' ? 1 : 2;
        cnt[b][k]++;
    }
    int cmax = 1;
    for (int b = 0; b < bins; b++) {
        int t = cnt[b][0] + cnt[b][1] + cnt[b][2];
        if (t > cmax) cmax = t;
    }
    int ndiv;
    double ymax = cmax <= 4 ? 4 : nice_axis(cmax, &ndiv);
    if (cmax <= 4) ndiv = 4;
    const int W = 960, H = 260, ML = 64, MR = 16, MT = 28, MB = 46;
    double pw = W - ML - MR, ph = H - MT - MB;
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart histogram\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"step time distribution\">\n", W, H, W, H);
    fprintf(out, "<g class=\"axis\" font-size=\"10\">\n");
    for (int i = 0; i <= ndiv; i++) {
        double y = MT + ph * (1 - (double)i / ndiv);
        fprintf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e7eb\"/>\n", ML, W - MR, y, y);
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%g</text>\n", ML - 6, y, ymax * i / ndiv);
    }
    for (int i = 0; i <= 5; i++) {
        char lab[32];
        mc_fmt(lab, sizeof lab, MC_F_TIME, lo + (hi - lo) * i / 5);
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", ML + pw * i / 5, H - MB + 16, lab);
    }
    fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">step wall time</text>\n", ML + pw / 2, H - 8);
    fprintf(out, "<text x=\"14\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">steps</text>\n", MT + ph / 2, MT + ph / 2);
    fprintf(out, "</g>\n<g class=\"bars\">\n");
    static const char *kcol[3] = {"#f59e0b", "#94a3b8", "#a855f7"};
    static const char *kname[3] = {"prefill", "decode", "mixed/other"};
    for (int b = 0; b < bins; b++) {
        double x = ML + pw * b / bins, w = pw / bins - 1, ybase = MT + ph;
        if (w < 1) w = 1;
        for (int k = 0; k < 3; k++) {
            if (!cnt[b][k]) continue;
            double h = ph * cnt[b][k] / ymax;
            char a[32], z[32];
            mc_fmt(a, sizeof a, MC_F_TIME, lo + bw * b);
            mc_fmt(z, sizeof z, MC_F_TIME, lo + bw * (b + 1));
            fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s \xe2\x80\x93 %s: %d %s step(s)</title></rect>\n",
                    x, ybase - h, w, h, kcol[k], a, z, cnt[b][k], kname[k]);
            ybase -= h;
        }
    }
    fprintf(out, "</g>\n");
    /* Percentile markers from the report (not recomputed here). */
    static const char *pk[3] = {"p50", "p90", "p99"};
    for (int i = 0; i < 3; i++) {
        char path[64];
        double v;
        snprintf(path, sizeof path, "aggregate.step_time_s.%s", pk[i]);
        if (!mc_rj_num(report, path, &v) || v < lo || v > hi) continue;
        double x = ML + pw * (v - lo) / (hi - lo);
        fprintf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.1f\" stroke=\"#111\" stroke-dasharray=\"3 3\"/>"
                     "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"%s\">%s</text>\n",
                x, x, MT + 2, MT + ph, x > ML + pw * 0.85 ? x - 3 : x + 3, MT + 10 + 11 * i,
                x > ML + pw * 0.85 ? "end" : "start", pk[i]);
    }
    fprintf(out, "<g class=\"legend\" font-size=\"11\">\n");
    for (int k = 0; k < 3; k++)
        fprintf(out, "<rect x=\"%d\" y=\"7\" width=\"10\" height=\"8\" fill=\"%s\"/><text x=\"%d\" y=\"16\">%s</text>\n",
                W - MR - 300 + k * 100, kcol[k], W - MR - 286 + k * 100, kname[k]);
    fprintf(out, "</g>\n</svg>\n");
    free(cnt);
    return bins;
}
