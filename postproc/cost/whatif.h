/* Hardware what-if (docs/cost.md): from the measured bytes and FLOPs of every step, predict
 * the step times on other hardware profiles with a roofline,
 *     roof(step, hw) = max(bytes / (devices x bandwidth), FLOPs / (devices x peak FLOPS)),
 * at 100 % of the roofline and at the efficiency the run achieved on its own hardware,
 *     efficiency(phase) = sum roof(step, measured hw) / sum measured step time   (per phase),
 *     predicted time(phase, hw) = sum roof(step, hw) / efficiency(phase),
 * then cost per 1M tokens (energy at TDP + host power, amortised price) and TPOT on each
 * profile, ranked. Everything here is a prediction and labelled so. */
#ifndef MOECAP_COST_WHATIF_H
#define MOECAP_COST_WHATIF_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "cost/cost.h"
#include "hw/hw_profile.h"

#define MC_WHATIF_MAX 64
#define MC_WHATIF_DTYPES 7
extern const char *const mc_whatif_dtypes[MC_WHATIF_DTYPES];   /* f32, tf32, bf16, f16, fp8, int8, f64 */

struct mc_whatif_target {
    char name[128], kind[8];
    double bw, peak;                 /* peak 0 = no figure for the compute dtype */
    double peaks[MC_WHATIF_DTYPES];  /* the profile's dense peaks, by mc_whatif_dtypes */
    double mem_bytes;                /* 0 = unknown */
    struct mc_cost_params params;
    double roof_s[3];                /* sum over steps of the roofline time, per phase */
    char skip[160];                  /* non-empty: not predicted, and why */
};

struct mc_whatif {
    char compute_key[8];
    int devices;
    double weights_bytes;            /* model weights at the run's element size; 0 = unknown */
    double own_bw, own_peak;         /* the measured hardware */
    double own_roof_s[3], time_s[3];
    double steps[3];
    struct mc_cost_work work;        /* tokens and phase times of the run */
    struct mc_whatif_target t[MC_WHATIF_MAX];
    int n;
};

/* Starts an empty what-if for a run on `devices` devices. */
void mc_whatif_init(struct mc_whatif *w, int devices);
/* Adds a target profile (already loaded; its figures are copied). Returns 0, -1 when the
 * table is full. */
int mc_whatif_add_target(struct mc_whatif *w, const struct mc_hw *hw);
/* The run's own hardware once the compute dtype is known (bandwidth, peak of compute_key;
 * peak 0 = unknown) and the model's weight bytes (0 = unknown); call before the steps. */
void mc_whatif_set_run(struct mc_whatif *w, const char *compute_key, double own_bw, double own_peak,
                       double weights_bytes);
/* One measured step (kind 0 prefill, 1 decode, 2 mixed). */
void mc_whatif_add_step(struct mc_whatif *w, int kind, double bytes, double flops, double time_s, double tokens,
                        double sequences);
/* Roofline time of one step on given peaks (0 peak = bytes only). */
double mc_roofline_s(double bytes, double flops, double devices, double bw, double peak);

/* Predicted figures for target i at efficiency eff_scale (1 = the run's, 0 = at 100 % of the
 * roofline). Returns 0, -1 when the target was skipped. */
struct mc_whatif_pred {
    double time_s[3], busy_s, tpot_s, output_tokens_per_s;
    double energy_J, run_usd, per_1m_tokens_usd, per_1m_input_usd, per_1m_output_usd;
};
int mc_whatif_predict(const struct mc_whatif *w, int i, int at_full_roofline, struct mc_whatif_pred *p);
/* Achieved efficiency of phase k on the measured hardware (NaN without steps of that kind). */
double mc_whatif_efficiency(const struct mc_whatif *w, int k);

/* report.json "whatif" section: per target both predictions, and the rankings. */
cJSON *mc_whatif_json(const struct mc_whatif *w);

#endif
