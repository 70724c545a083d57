/* Cost of a run and per token (docs/cost.md):
 *   energy cost     = energy J / 3.6e6 x usd_per_kwh
 *   capital         = devices x (price_usd + host_cpu_usd + host_dram_usd)
 *   amortised cost  = capital / (lifetime_years x 365.25 x 86400 s) x run s / utilisation
 *   run cost        = energy cost + amortised cost
 * split between input (prompt) and output tokens by the time the run spent on each: prefill
 * step time goes to input tokens, decode step time to output tokens, a mixed step's time by
 * its share of prompt tokens; gaps between steps are shared in the same proportion.
 * A cloud price per device-hour gives the same figures for rented hardware (every rented hour
 * is paid: no utilisation factor). MoE-CAP's own formula is kept for comparison. */
#ifndef MOECAP_COST_COST_H
#define MOECAP_COST_COST_H

#include <cjson/cJSON.h>
#include "hw/hw_cost.h"

#define MC_SECONDS_PER_YEAR (365.25 * 86400.0)
/* MoE-CAP's fixed figures: host CPU price, host power, electricity, and its multipliers. */
#define MC_MOECAP_CPU_USD 7214.0
#define MC_MOECAP_HOST_W 350.0
#define MC_MOECAP_USD_PER_KWH 0.15
#define MC_MOECAP_ENERGY_FACTOR 1.2
#define MC_MOECAP_CAPITAL_FACTOR 1.25

/* What the run did, from report.json's aggregate. */
struct mc_cost_work {
    double run_s;                   /* wall time the cost covers (first step begin -> last step end) */
    double input_tokens, output_tokens;
    double input_time_s, output_time_s;   /* step time spent on input (prompt) / output tokens */
};

struct mc_cost_split {              /* one way of paying for the run */
    double run_usd;                 /* NaN = unknown */
    double per_1m_input_usd, per_1m_output_usd, per_1m_tokens_usd;   /* NaN when there are no such tokens */
};

struct mc_cost_result {
    double energy_usd, capital_usd, amortised_usd;   /* NaN = unknown */
    struct mc_cost_split owned, cloud;
    double moecap_energy_usd, moecap_capital_usd, moecap_total_usd;  /* NaN without price/TDP */
};

/* Adds one step (kind 0 prefill, 1 decode, 2 mixed; tokens in the forward pass, sequences
 * sampling a token) to the work; run_s is set by the caller. A prefill step's tokens are
 * prompt tokens and its time input time; a decode step's time is output time; a mixed step
 * holds (tokens - sequences) prompt tokens and its time is split in that proportion. Every
 * sampled token (one per sequence per step) is an output token. */
void mc_cost_work_add_step(struct mc_cost_work *w, int kind, double tokens, double sequences, double time_s);
/* energy_J NaN = unknown (energy cost then unknown, owned run cost too). */
void mc_cost_compute(const struct mc_cost_params *p, const struct mc_cost_work *w, double energy_J,
                     struct mc_cost_result *r);
/* report.json "cost" section: parameters, formulas, owned and cloud figures, moecap_compat_cost.
 * energy_estimated labels every figure that used an estimated energy. */
cJSON *mc_cost_json(const struct mc_cost_params *p, const struct mc_cost_work *w, const struct mc_cost_result *r,
                    int energy_estimated);

#endif
