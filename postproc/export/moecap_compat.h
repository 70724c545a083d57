/* MoE-CAP's own result shape, as a compatibility view of report.json: the `cap_metrics`
 * object MoE-CAP's runners (the profile runners in moe_cap/runner/) write to
 * cap_metrics_<dataset>_<time>.json, so dashboards and scripts built on MoE-CAP read a
 * moecap run unchanged. Field names, units and averaging are MoE-CAP's (per-step values
 * averaged over steps, kv_size in MB of elements as MoE-CAP computes it); the values are
 * taken from the report document (its moecap_compat section, steps, client section), never
 * recomputed differently. docs/report-schema.md, "cap_metrics.json". */
#ifndef MOECAP_EXPORT_MOECAP_COMPAT_H
#define MOECAP_EXPORT_MOECAP_COMPAT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "report/report_doc.h"

/* The cap_metrics object of a report document. */
cJSON *moecap_cap_metrics(const struct report_doc *doc);
/* Writes it to DIR/cap_metrics.json. 0 ok; -1 with a message in err. */
int moecap_cap_metrics_write(const struct report_doc *doc, const char *dir, char *err, size_t errlen);

#endif
