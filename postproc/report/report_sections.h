/* The descriptive sections of report.json (docs/report-schema.md) and the messages built
 * from the attributor's statistics: run.attribution, model, hardware, expert_load, the notes
 * about attribution, and the explanation printed when a trace does not match --model. */
#ifndef MOECAP_REPORT_SECTIONS_H
#define MOECAP_REPORT_SECTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "report/attrib.h"
#include "hw/hw_profile.h"
#include "report/model.h"

#define REPORT_NOTE_MAX 64

/* Appends {"level", "text"} to the notes array (at most REPORT_NOTE_MAX). */
void report_add_note(cJSON *notes, const char *level, const char *text);
/* Notes from the attribution statistics (unattributed GEMMs, taps, element size, ...). */
void report_attrib_notes(cJSON *notes, const struct mc_attrib_stats *ast, const struct mc_model *m);
/* The rest of "the trace does not match the model ...: " with the most frequent unattributed shapes. */
void report_explain_mismatch(FILE *o, const struct mc_model *m, const struct mc_attrib_stats *ast, size_t steps,
                             int truncated);
void report_attribution_json(cJSON *run, const struct mc_attrib_stats *ast);
void report_model_json(cJSON *root, const struct mc_model *m);
void report_hardware_json(cJSON *root, const struct mc_hw *hw, int devices, const char *compute_key, double peak);
void report_expert_load_json(cJSON *root, const struct mc_model *m, const uint64_t *load_tokens, const uint64_t *load_act,
                             int ids_exact);

#endif
