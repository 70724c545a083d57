/* One run as `moecap compare` sees it: its report.json (docs/report-schema.md, the stable
 * interface; the per-step array is skipped unparsed, so a report of millions of steps loads in
 * the time it takes to read the file) reduced to the headline figures, and its MoE-CAP class. */
#ifndef MOECAP_COMPARE_RUN_H
#define MOECAP_COMPARE_RUN_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* Headline figures, in table order; NaN = absent. */
enum mc_cmp_metric {
    MC_M_TTFT, MC_M_TPOT, MC_M_TTFT_CLIENT, MC_M_TPOT_CLIENT, MC_M_TPUT, MC_M_TPUT_CLIENT,
    MC_M_SMBU, MC_M_SMFU, MC_M_MBU, MC_M_MFU, MC_M_ACCURACY, MC_M_ENERGY, MC_M_COST_1M, MC_M_COST_1M_IN,
    MC_M_COST_1M_OUT, MC_M_CLOUD_1M, MC_M_MEMORY, MC_M_COUNT
};

struct mc_cmp_run {
    char path[1024];               /* the report.json read */
    char label[128];               /* the system's name in tables and the radar */
    cJSON *doc;                    /* the report without "steps" (owned) */
    char model[160], hardware[160], precision[64];
    double v[MC_M_COUNT];
    int energy_estimated;
    char cls[8];                   /* "PA", "PC", "CA" */
    char cls_reason[512];
    int cls_from_report;           /* the report stated its class */
};

/* The metric's column title with unit, and how the renderers format it (enum mc_fmt). */
const char *mc_cmp_metric_title(int m);
int mc_cmp_metric_fmt(int m);

/* text with the value of the top-level key "steps" removed (a copy; NULL when out of memory
 * or when the text is not a JSON object). The scan honours strings and escapes. */
char *mc_cmp_strip_steps(const char *text, size_t len);

/* Reads RUN_OR_REPORT: a report.json file, or a directory holding report.json (or
 * report/report.json). 0, or -1 with a message (unreadable, not JSON, not a moecap report,
 * unsupported schema_version). */
int mc_cmp_run_load(const char *spec, struct mc_cmp_run *r, char *err, size_t errlen);
void mc_cmp_run_free(struct mc_cmp_run *r);

/* The MoE-CAP class with the reason: the report's own (system_class.classes with
 * system_class.evidence, joined "PC+CA" when several), else from what was measured: CA when
 * expert weights were loaded after the first step (offload.loaded_bytes with
 * offload.steps_loading_after_first > 0), PC when weights are read at fewer than 2 bytes each
 * (quantized), PA otherwise (every expert resident at full precision). */
void mc_cmp_classify(const cJSON *report, char cls[8], char *reason, size_t len, int *from_report);

/* Checks that the runs measured one model (architecture and geometry equal). 0, or -1
 * with a message naming the two runs and what differs. */
int mc_cmp_same_model(const struct mc_cmp_run *runs, int n, char *err, size_t errlen);

#endif
