/* Renderers from a report.json document (schema: docs/report-schema.md) to a Markdown
 * summary and a self-contained HTML page (inline CSS + inline SVG charts, no scripts, no
 * external resources). Both only read `report`; absent fields are shown as absent, never
 * invented. Every string taken from the report is escaped for its output format.
 * Return 0 on success, -1 on a write error on `out` or when `report` is not a JSON object. */
#ifndef MOECAP_POSTPROC_RENDER_H
#define MOECAP_POSTPROC_RENDER_H
#include <stdio.h>
#include <cjson/cJSON.h>

int mc_render_markdown(const cJSON *report, FILE *out);
int mc_render_html(const cJSON *report, FILE *out);

#endif
