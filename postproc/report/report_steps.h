/* The step table of `moecap report`: the attributor's step callback derives each step's
 * figures (bytes, FLOPs, S-MBU/S-MFU, MoE-CAP's formulas: docs/metrics.md), appends the
 * step's full report.json object to a spool file (report_json_step: steps are many and
 * their per-layer lists large) and keeps one compact row per step (percentiles, renderers)
 * plus totals per step kind and the expert-load matrix. The aggregate, MoE-CAP
 * compatibility and step-summary sections of the document are built from those. */
#ifndef MOECAP_REPORT_STEPS_H
#define MOECAP_REPORT_STEPS_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "hw/hw_profile.h"
#include "report/attrib.h"
#include "report/model.h"
#include "report/offload_traffic.h"
#include "report/expert_parallel_view.h"

struct step_row {             /* what stays in memory per step */
    double time_s, s_mbu, s_mfu, mbu, mfu, c_smbu, c_smfu, bytes, flops;
    uint64_t t_begin;
    int32_t tokens, sequences, activated;
    uint8_t kind;             /* enum mc_step_kind */
};

struct totals {
    uint64_t steps, tokens, seqs;
    double time_s;
    double b_dense, b_routed, b_shared, kv_r, kv_w, b_all, f_gemm, f_att, f_all, f_unattr;
};

struct report_steps {
    const struct mc_model *m;
    int devices;
    double bw, peak;           /* peak 0 = unknown */
    char compute_key[8];
    FILE *records;             /* spool: each step's full object, ",\n"-separated */
    struct step_row *rows; size_t n_rows, cap_rows;
    struct totals all, by_kind[MC_STEP_KINDS];
    uint64_t *load_tokens, *load_act;   /* n_moe x E */
    uint64_t first_begin, last_end;
    int ctx_inexact_steps;
    int n_moe;
    int oom;
    struct mc_offload_view *offload;   /* offload traffic per step (NULL: none) */
    struct mc_ep_view *ep;             /* expert-parallel processes per step (NULL: none) */
};

static inline double report_div0(double a, double b) { return b > 0 ? a / b : 0; }

/* An empty table for model m on devices x hw. -1 (errno) when the spool cannot be created
 * or memory is short. */
int report_steps_init(struct report_steps *r, const struct mc_model *m, const struct mc_hw *hw, int devices);
void report_steps_free(struct report_steps *r);
/* mc_step_cb: one finished step (user = struct report_steps *). */
void report_on_step(const struct mc_step *s, void *user);
/* Document sections: "aggregate", "moecap_compat", and the compact "steps" summaries the
 * renderers read (step, kind, tokens, sequences, t_begin_ns, time_s, activated_experts,
 * bytes.total, flops.total, s_mbu, mbu, s_mfu, mfu). */
cJSON *report_aggregate_json(const struct report_steps *r);
cJSON *report_compat_json(const struct report_steps *r);
cJSON *report_step_summaries_json(const struct report_steps *r);

#endif
