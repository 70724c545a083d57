/* The main pass of `moecap report`: the run's traces merged by record time (one cursor per
 * file, report_input.h), every record handed to whoever uses it — GEMMs, taps and the GPU
 * step boundaries (synchronising calls, launches, copies) to the attributor, process and
 * note records to the document — and counted. */
#ifndef MOECAP_REPORT_REPLAY_H
#define MOECAP_REPORT_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "report/report_cost.h"
#include "hw/hw_profile.h"
#include "report/attrib.h"
#include "report/attrib_ggml.h"
#include "report/model.h"
#include "report/report_input.h"
#include "report/report_steps.h"

/* GPU kernels from CUPTI activity records: count, summed duration, and busy time as the
 * union of the kernel intervals (records come in start order per device; a kernel that
 * starts before the running end only adds its overhang). */
struct report_kernels {
    uint64_t count, first_ns, last_ns, busy_end_ns;
    double sum_ns, busy_ns;
};

struct report_replay {
    /* inputs */
    struct mc_attrib *at;
    struct mc_ggml_attrib *ga;      /* llama.cpp adapter records (GGUF model), NULL otherwise */
    struct mc_model *model;         /* its element size is taken from the first GEMM when unknown */
    const struct mc_hw *hw;
    struct report_steps *steps;     /* gets the compute dtype's peak from the first GEMM */
    cJSON *notes;                   /* document notes: the traces' own and the truncation warnings */
    int quiet;
    struct mc_cost_report *cost;    /* gets the energy counters and the processes' hosts (may be NULL) */
    /* optional: sees every record after the report has (a timeline export) */
    void (*observe)(void *user, struct mc_trace *t, int32_t pid, const struct mc_trace_rec *rec);
    void *observe_user;
    /* results */
    uint64_t records, gemm_records, dropped, step_marks;
    int32_t gemm_pids[64]; int n_gemm_pids;   /* processes that issued GEMMs (class evidence) */
    uint64_t gemm_devices;                    /* bit per GPU device of the GEMMs */
    struct report_kernels kernels;
    cJSON *processes;               /* run.processes (owned until given to the document) */
    cJSON *truncated_files;         /* run.truncated_files (likewise) */
};

/* Reads every cursor to its end, then finishes the attributor and notes (warning, stderr)
 * each file that did not end cleanly. */
void report_replay_run(struct report_replay *rp, struct report_cursor *cur, size_t n);
void report_replay_free(struct report_replay *rp);

#endif
