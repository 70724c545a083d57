/* The CAP radar: one axis per criterion (Cost, Accuracy, Performance, optionally S-MBU and
 * S-MFU), one polygon per run, every axis scaled so that outward is better:
 *     higher-is-better axis: r = value / best value among the runs shown
 *     lower-is-better axis (cost): r = best (lowest) value / value
 *     (a higher-is-better axis on which every run is 0 puts them all at the centre)
 * so the best run on an axis sits on the outer ring and 0 at the centre. The SVG states this
 * in the figure, labels each axis with its unit and best value, and carries the geometry as
 * data attributes (data-cx, data-cy, data-radius on the <svg>; data-run, data-axis, data-r on
 * each point) so tests can check that the drawn radii equal the normalised values. */
#ifndef MOECAP_COMPARE_RADAR_H
#define MOECAP_COMPARE_RADAR_H

#include <stdio.h>

#define MC_RADAR_MAX_AXES 8
#define MC_RADAR_MAX_RUNS 64

struct mc_radar_axis {
    const char *name;              /* "Cost" */
    const char *unit;              /* "USD / 1M tokens" */
    int fmt;                       /* enum mc_fmt for the best value shown under the name */
    int lower_is_better;
};

struct mc_radar {
    int n_axes, n_runs;
    struct mc_radar_axis axis[MC_RADAR_MAX_AXES];
    const char *run_label[MC_RADAR_MAX_RUNS];
    double value[MC_RADAR_MAX_RUNS][MC_RADAR_MAX_AXES];   /* raw; NaN = absent */
    double r[MC_RADAR_MAX_RUNS][MC_RADAR_MAX_AXES];       /* normalised by mc_radar_normalise; NaN = absent */
    double best[MC_RADAR_MAX_AXES];                       /* NaN when no run has the axis */
};

/* Fills r[][] and best[] from value[][] (values <= 0 on a lower-is-better axis, or < 0 on
 * the others, count as absent: they cannot be scaled). */
void mc_radar_normalise(struct mc_radar *g);

/* The colour of run i (a colour-blind-safe palette, cycling). */
const char *mc_radar_colour(int i);

/* Writes the <svg> element (normalise first). Returns 0, -1 when nothing can be drawn. */
int mc_radar_svg(FILE *out, const struct mc_radar *g, const char *title);

#endif
