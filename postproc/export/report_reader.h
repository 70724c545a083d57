/* How the views of a report (the Perfetto timeline, MoE-CAP's cap_metrics) read the report
 * document (report/report_doc.h): its sections from the cJSON tree, and its full step
 * objects one at a time from the step table's spool — the very objects report.json's
 * "steps" is written from, so a view's figures are the report's. Memory does not grow with
 * the steps. */
#ifndef MOECAP_EXPORT_REPORT_READER_H
#define MOECAP_EXPORT_REPORT_READER_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "report/report_doc.h"

struct report_reader {
    const cJSON *root;     /* the document's sections (its "steps" member: compact summaries) */
    /* private */
    FILE *spool;
    char *line; size_t cap;
};

/* Starts at the first step. */
void report_reader_open(struct report_reader *r, const struct report_doc *doc);
/* Next full step object (the caller cJSON_Deletes it), NULL after the last. */
cJSON *report_reader_next_step(struct report_reader *r);
void report_reader_close(struct report_reader *r);

#endif
