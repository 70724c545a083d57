/* CAP radar SVG (see radar.h). Plain SVG 1.1, readable without scripts or fonts beyond
 * the browser's sans-serif. */
#include "compare/radar.h"

#include <math.h>
#include <string.h>

#include "render/render_util.h"

/* Okabe-Ito: distinguishable with the common colour-vision deficiencies. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};

const char *mc_radar_colour(int i) { return palette[(i < 0 ? 0 : i) % (int)(sizeof palette / sizeof palette[0])]; }

static int usable(double v, int lower_is_better) { return isfinite(v) && (lower_is_better ? v > 0 : v >= 0); }

void mc_radar_normalise(struct mc_radar *g)
{
    for (int a = 0; a < g->n_axes; a++) {
        int low = g->axis[a].lower_is_better;
        double best = NAN;
        for (int i = 0; i < g->n_runs; i++) {
            double v = g->value[i][a];
            if (usable(v, low) && (isnan(best) || (low ? v < best : v > best))) best = v;
        }
        g->best[a] = best;
        for (int i = 0; i < g->n_runs; i++) {
            double v = g->value[i][a];
            if (!usable(v, low) || isnan(best)) g->r[i][a] = NAN;
            else if (low) g->r[i][a] = best / v;
            else g->r[i][a] = best > 0 ? v / best : 0;   /* every run at 0 (e.g. no answer right): the centre */
        }
    }
}

/* Layout: radar on the left, legend on the right, the normalisation under both. */
enum { W = 1040, H = 640, CX = 420, CY = 330, R = 210 };

static void axis_end(int a, int n, double r, double *x, double *y)
{
    double th = -M_PI / 2 + 2 * M_PI * a / n;
    *x = CX + r * R * cos(th);
    *y = CY + r * R * sin(th);
}

int mc_radar_svg(FILE *o, const struct mc_radar *g, const char *title)
{
    if (g->n_axes < 3 || g->n_runs < 1) return -1;
    int n = g->n_axes;
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart radar\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"CAP radar\" font-family=\"sans-serif\" "
               "data-cx=\"%d\" data-cy=\"%d\" data-radius=\"%d\">\n", W, H, W, H, CX, CY, R);
    fprintf(o, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    fprintf(o, "<text x=\"%d\" y=\"28\" font-size=\"18\" font-weight=\"bold\">", 20);
    mc_html_esc(o, title ? title : "CAP radar");
    fprintf(o, "</text>\n");
    /* rings at 25/50/75/100 % of the best value */
    for (int k = 1; k <= 4; k++) {
        fprintf(o, "<polygon class=\"ring\" fill=\"none\" stroke=\"#c8c8c8\" stroke-width=\"%s\" points=\"", k == 4 ? "1.5" : "1");
        for (int a = 0; a < n; a++) {
            double x, y;
            axis_end(a, n, k / 4.0, &x, &y);
            fprintf(o, "%s%.2f,%.2f", a ? " " : "", x, y);
        }
        fprintf(o, "\"/>\n");
        double x, y;
        axis_end(0, n, k / 4.0, &x, &y);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#777\">%d %%</text>\n", x + 4, y + 12, k * 25);
    }
    /* axes and their labels */
    for (int a = 0; a < n; a++) {
        double x, y, lx, ly;
        axis_end(a, n, 1, &x, &y);
        axis_end(a, n, 1.13, &lx, &ly);
        fprintf(o, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#999\"/>\n", CX, CY, x, y);
        const char *anchor = fabs(lx - CX) < 20 ? "middle" : lx > CX ? "start" : "end";
        double y0 = ly < CY - 20 ? ly - 26 : ly > CY + 20 ? ly + 4 : ly - 10;
        fprintf(o, "<text class=\"axis-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"15\" font-weight=\"bold\">",
                lx, y0, anchor);
        mc_html_esc(o, g->axis[a].name);
        fprintf(o, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"12\" fill=\"#444\">", lx, y0 + 15, anchor);
        mc_html_esc(o, g->axis[a].unit);
        char b[48];
        if (isfinite(g->best[a])) mc_fmt(b, sizeof b, (enum mc_fmt)g->axis[a].fmt, g->best[a]);
        fprintf(o, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"12\" fill=\"#444\">%s%s; %s</text>\n",
                lx, y0 + 29, anchor, isfinite(g->best[a]) ? "best " : "", isfinite(g->best[a]) ? b : "not measured",
                g->axis[a].lower_is_better ? "lower is better" : "higher is better");
    }
    /* one polygon per run, through the axes it has */
    for (int i = 0; i < g->n_runs; i++) {
        const char *col = mc_radar_colour(i);
        fprintf(o, "<g class=\"run\" data-run=\"%d\">\n<polygon fill=\"%s\" fill-opacity=\"0.12\" stroke=\"%s\" "
                   "stroke-width=\"2.5\" stroke-linejoin=\"round\" points=\"", i, col, col);
        int first = 1;
        for (int a = 0; a < n; a++) {
            if (isnan(g->r[i][a])) continue;
            double x, y;
            axis_end(a, n, g->r[i][a], &x, &y);
            fprintf(o, "%s%.3f,%.3f", first ? "" : " ", x, y);
            first = 0;
        }
        fprintf(o, "\"/>\n");
        for (int a = 0; a < n; a++) {
            if (isnan(g->r[i][a])) continue;
            double x, y;
            axis_end(a, n, g->r[i][a], &x, &y);
            fprintf(o, "<circle class=\"pt\" data-run=\"%d\" data-axis=\"", i);
            mc_html_esc(o, g->axis[a].name);
            fprintf(o, "\" data-r=\"%.6f\" cx=\"%.3f\" cy=\"%.3f\" r=\"4.5\" fill=\"%s\" stroke=\"#fff\"/>\n", g->r[i][a], x, y,
                    col);
        }
        fprintf(o, "</g>\n");
    }
    /* legend: colour, label, and the axes a run lacks */
    int lx = 800, ly = 70;
    fprintf(o, "<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">systems</text>\n", lx, ly - 14);
    for (int i = 0; i < g->n_runs; i++) {
        int y = ly + i * 40;
        fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"18\" height=\"18\" fill=\"%s\"/>\n<text x=\"%d\" y=\"%d\" font-size=\"14\">",
                lx, y, mc_radar_colour(i), lx + 26, y + 14);
        mc_html_esc(o, g->run_label[i] ? g->run_label[i] : "?");
        fprintf(o, "</text>\n");
        char miss[256] = "";
        for (int a = 0; a < n; a++)
            if (isnan(g->r[i][a])) {
                size_t l = strlen(miss);
                snprintf(miss + l, sizeof miss - l, "%s%s", l ? ", " : "", g->axis[a].name);
            }
        if (miss[0]) {
            fprintf(o, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#666\">not measured: ", lx + 26, y + 29);
            mc_html_esc(o, miss);
            fprintf(o, "</text>\n");
        }
    }
    fprintf(o, "<text x=\"20\" y=\"%d\" font-size=\"12\" fill=\"#333\">Each axis is normalised over the systems shown: "
               "value / best value (lower-is-better axes: best value / value).</text>\n", H - 34);
    fprintf(o, "<text x=\"20\" y=\"%d\" font-size=\"12\" fill=\"#333\">Outer ring = the best system on that axis; "
               "centre = 0; outward is better on every axis.</text>\n", H - 16);
    fprintf(o, "</svg>\n");
    return 0;
}
