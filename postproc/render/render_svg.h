/* Inline SVG charts for the HTML report: expert-load heatmap, per-step utilisation
 * timeline, step-time histogram. Each writes one <svg> element (well-formed XML). */
#ifndef MOECAP_RENDER_SVG_H
#define MOECAP_RENDER_SVG_H
#include <stdio.h>
#include <cjson/cJSON.h>
#include "render/render_util.h"

/* Heatmap of expert_load[matrix] ("tokens" or "activations"): rows = expert_load.layers,
 * columns = experts. Returns the number of cells drawn, 0 when the data is absent. */
int mc_svg_heatmap(FILE *out, const cJSON *expert_load, const char *matrix, const char *legend_label);

/* Per-step utilisation: which = 0 draws S-MBU vs MBU, 1 draws S-MFU vs MFU. Returns the
 * number of points drawn (0 = nothing to draw, nothing written). */
int mc_svg_timeline(FILE *out, const struct mc_step_series *s, int which);

/* Histogram of step wall times, stacked by step kind; marks p50/p90/p99 from
 * report.aggregate.step_time_s when present. Returns bins drawn (0 = nothing written). */
int mc_svg_histogram(FILE *out, const struct mc_step_series *s, const cJSON *report);

/* Viridis colour for t in [0,1] as "#rrggbb". */
void mc_svg_viridis(double t, char out[8]);

#endif
