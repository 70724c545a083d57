/* The report's C of CAP: `moecap report` options --cost and --whatif-hw, the counters it
 * collects while merging the traces, and the "energy", "cost" and "whatif" sections it adds
 * to report.json (docs/cost.md, docs/report-schema.md). The command calls these few hooks
 * and nothing else of the cost code. */
#ifndef MOECAP_REPORT_COST_H
#define MOECAP_REPORT_COST_H

#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>

#include "hw/hw_profile.h"
#include "report/report_steps.h"

#define MC_COST_MAX_SPECS 16
struct mc_cost_opts {                /* the command line's choices; zero-initialise */
    const char *specs[MC_COST_MAX_SPECS];   /* --cost arguments */
    int n_specs;
    const char *whatif_hw;           /* NULL: the run's profile + every profile of the profile directory; "none" */
};
struct mc_cost_report;
/* The options' help lines for `moecap report --help`. */
void mc_cost_report_usage(FILE *o);
/* argv[*i] is one of our options: consumes it (and its value, advancing *i) and returns 1;
 * 0 when it is not ours; -1 (message printed) when its value is missing. */
int mc_cost_report_option(struct mc_cost_opts *o, int argc, char **argv, int *i);
/* Applies the options to the hardware profile before any work: NULL with a message on bad
 * --cost values or unknown --whatif-hw profiles (or out of memory). hw must outlive it. */
struct mc_cost_report *mc_cost_report_new(const struct mc_cost_opts *o, const struct mc_hw *hw, int devices, char *err,
                                          size_t errlen);
void mc_cost_report_free(struct mc_cost_report *c);
/* Per trace record (pid as the report knows it). */
void mc_cost_report_host(struct mc_cost_report *c, int32_t pid, const char *host);
void mc_cost_report_counter(struct mc_cost_report *c, int32_t pid, const char *name, const char *unit, int32_t device,
                            int cumulative, uint64_t t_ns, double value);
/* Adds "energy", "cost" and "whatif" to root (which already holds run, model, hardware and
 * aggregate); notes get what was estimated or missing. */
void mc_cost_report_sections(struct mc_cost_report *c, cJSON *root, const struct report_steps *r, cJSON *notes);

#endif
