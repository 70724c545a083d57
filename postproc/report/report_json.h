/* The one writer of report.json (schema: docs/report-schema.md). A step's full object is
 * written when the step ends (report_json_step, into the step table's spool: steps are
 * many and their per-layer lists large, so they are not kept in memory); the document is
 * written at the end (report_json_write): every section of the document's tree, then the
 * "steps" array from the spool. Sections are formatted as cJSON's printer formats them
 * (tab-indented); step objects one per line. */
#ifndef MOECAP_REPORT_JSON_H
#define MOECAP_REPORT_JSON_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "report/attrib.h"
#include "report/model.h"

struct report_doc;

/* The figures report_steps.c derives from a step (docs/metrics.md). */
struct report_step_figures {
    double time_s, s_mbu, mbu, s_mfu, mfu;
    uint64_t bytes, flops;                    /* totals counted in S-MBU / S-MFU */
    double compat_bytes, compat_flops, compat_s_mbu, compat_s_mfu;   /* MoE-CAP's formulas */
    int with_mfu;                             /* 0: no peak FLOPS for the compute dtype */
};

/* One step's object on one line (no separator), left open: the caller may add members
 * (offload traffic, expert-parallel processes) and writes the closing brace. */
void report_json_step(FILE *o, const struct mc_step *s, const struct mc_model *m, const struct report_step_figures *f);
/* Replaces invalid UTF-8 in every string value and key of the tree by U+FFFD (text from the
 * traces, file names): JSON readers refuse invalid UTF-8. */
void report_json_repair(cJSON *item);
/* The whole document. 0, or -1 on a write error. */
int report_json_write(const struct report_doc *doc, FILE *o);

#endif
