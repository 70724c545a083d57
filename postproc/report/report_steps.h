/* Per-step rows and run aggregates of `moecap report`: the attributor's step callback
 * streams each step's JSON object to a temporary file and keeps a few numbers per step (for
 * percentiles) plus totals per step kind; the aggregate and MoE-CAP compatibility sections
 * of report.json are built from those (docs/report-schema.md, docs/metrics.md). */
#ifndef MOECAP_REPORT_STEPS_H
#define MOECAP_REPORT_STEPS_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "report/attrib.h"
#include "hw/hw_profile.h"
#include "report/model.h"

struct step_row {             /* what stays in memory per step */
    double time_s, s_mbu, s_mfu, mbu, mfu, c_smbu, c_smfu, bytes, flops;
    uint64_t t_begin;
    int32_t tokens, sequences, activated;
    uint8_t kind;             /* 0 prefill, 1 decode, 2 mixed */
};

struct totals {
    uint64_t steps, tokens, seqs;
    double time_s;
    double b_dense, b_routed, b_shared, kv_r, kv_w, b_all, f_gemm, f_att, f_all, f_unattr;
};

struct report_steps {
    const struct mc_model *m;
    struct mc_hw *hw;
    int devices;
    double bw, peak;           /* peak 0 = unknown */
    char compute_key[8];
    FILE *steps_out;           /* temporary: per-step JSON objects */
    struct step_row *rows; size_t n_rows, cap_rows;
    struct totals all, by_kind[3];
    uint64_t *load_tokens, *load_act;   /* n_moe x E */
    uint64_t first_begin, last_end;
    int ctx_inexact_steps;
    int n_moe;
    const int *moe_layers;
    int oom;
};

static inline double report_div0(double a, double b) { return b > 0 ? a / b : 0; }

/* mc_step_cb: one finished step (user = struct report_steps *). */
void report_on_step(const struct mc_step *s, void *user);
/* report.json "aggregate" and "moecap_compat" sections. */
cJSON *report_aggregate_json(const struct report_steps *r);
cJSON *report_compat_json(const struct report_steps *r);

#endif
