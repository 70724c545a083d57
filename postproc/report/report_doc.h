/* The report document (schema: docs/report-schema.md), built once after the main pass:
 * every section in schema order as one cJSON tree, whose "steps" member holds the compact
 * step summaries the renderers read (render/render.h), plus the step table whose spooled
 * full step objects report.json's "steps" is written from (report_json.h). */
#ifndef MOECAP_REPORT_DOC_H
#define MOECAP_REPORT_DOC_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "report/report_cost.h"
#include "report/report_devices.h"
#include "hw/hw_profile.h"
#include "report/attrib.h"
#include "report/model.h"
#include "report/report_replay.h"
#include "report/report_steps.h"

struct report_doc {
    cJSON *root;
    const struct report_steps *steps;
};

/* What the document is built from. `replay`'s processes/truncated_files and `notes` are
 * taken over by the document. */
struct report_doc_input {
    const char *run_dir;
    char *const *trace_files;
    size_t n_trace_files;
    struct report_replay *replay;
    const struct mc_attrib_stats *attrib;
    const struct mc_model *model;
    const struct mc_hw *hw;
    int devices;
    const struct report_devices *device_census;   /* where devices came from (NULL: not said) */
    const struct report_steps *steps;
    const char *lmeval_path;        /* NULL: no accuracy section */
    cJSON *notes;
    int step_summaries;             /* build "steps" (0 when no renderer will read the document:
                                       a few hundred bytes per step saved) */
    struct mc_cost_report *cost;    /* adds memory, energy, cost, whatif (may be NULL) */
};

/* 0, or -1 with a message in err (an unreadable --lm-eval file). */
int report_doc_build(struct report_doc *doc, struct report_doc_input *in, char *err, size_t errlen);
void report_doc_free(struct report_doc *doc);

#endif
