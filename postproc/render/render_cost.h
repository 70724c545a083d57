/* The energy, cost and what-if sections of report.json (docs/cost.md) rendered for the
 * Markdown summary and the HTML page: the same tables in both, every figure next to the
 * parameters it came from, estimated energy and predictions labelled as such. */
#ifndef MOECAP_RENDER_COST_H
#define MOECAP_RENDER_COST_H
#include <stdio.h>
#include <cjson/cJSON.h>

/* Writes the sections present in the report (nothing when none is). */
void mc_render_cost_md(const cJSON *report, FILE *out);
void mc_render_cost_html(const cJSON *report, FILE *out);

#endif
