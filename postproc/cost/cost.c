/* Run cost, cost per token, cloud price and MoE-CAP's formula (see cost.h). */
#include "cost/cost.h"

#include <math.h>
#include <string.h>

static double or0(double v) { return isfinite(v) ? v : 0; }

void mc_cost_work_add_step(struct mc_cost_work *w, int kind, double tokens, double sequences, double time_s)
{
    double in_share = kind == 0 ? 1 : kind == 1 ? 0 : (tokens > sequences && tokens > 0 ? (tokens - sequences) / tokens : 0);
    w->input_tokens += kind == 0 ? tokens : kind == 2 && tokens > sequences ? tokens - sequences : 0;
    w->output_tokens += sequences;
    w->input_time_s += time_s * in_share;
    w->output_time_s += time_s * (1 - in_share);
}

static void split(double run_usd, const struct mc_cost_work *w, struct mc_cost_split *s)
{
    s->run_usd = run_usd;
    s->per_1m_input_usd = s->per_1m_output_usd = s->per_1m_tokens_usd = NAN;
    double busy = w->input_time_s + w->output_time_s;
    if (!isfinite(run_usd)) return;
    if (w->input_tokens + w->output_tokens > 0)
        s->per_1m_tokens_usd = run_usd / (w->input_tokens + w->output_tokens) * 1e6;
    if (!(busy > 0)) return;
    if (w->input_tokens > 0) s->per_1m_input_usd = run_usd * (w->input_time_s / busy) / w->input_tokens * 1e6;
    if (w->output_tokens > 0) s->per_1m_output_usd = run_usd * (w->output_time_s / busy) / w->output_tokens * 1e6;
}

void mc_cost_compute(const struct mc_cost_params *p, const struct mc_cost_work *w, double energy_J,
                     struct mc_cost_result *r)
{
    const double *v = p->v;
    double n = v[MC_CP_DEVICES] >= 1 ? v[MC_CP_DEVICES] : 1;
    r->energy_usd = energy_J / 3.6e6 * v[MC_CP_USD_PER_KWH];    /* NaN propagates */
    r->capital_usd = n * (v[MC_CP_PRICE_USD] + or0(v[MC_CP_HOST_CPU_USD]) + or0(v[MC_CP_HOST_DRAM_USD]));
    r->amortised_usd = r->capital_usd / (v[MC_CP_LIFETIME_YEARS] * MC_SECONDS_PER_YEAR) * w->run_s / v[MC_CP_UTILISATION];
    split(r->energy_usd + r->amortised_usd, w, &r->owned);
    split(v[MC_CP_CLOUD_USD_PER_HOUR] * n * w->run_s / 3600.0, w, &r->cloud);
    /* MoE-CAP: (GPU price x n + CPU price) x 1.25 + (TDP x n + 350 W) x hours x $0.15/kWh x 1.2 */
    r->moecap_capital_usd = MC_MOECAP_CAPITAL_FACTOR * (v[MC_CP_PRICE_USD] * n + MC_MOECAP_CPU_USD);
    r->moecap_energy_usd = MC_MOECAP_ENERGY_FACTOR * (v[MC_CP_TDP_W] * n + MC_MOECAP_HOST_W) * (w->run_s / 3600.0) / 1000.0
                           * MC_MOECAP_USD_PER_KWH;
    r->moecap_total_usd = r->moecap_capital_usd + r->moecap_energy_usd;
}

static cJSON *split_json(const struct mc_cost_split *s)
{
    cJSON *o = cJSON_CreateObject();
    mc_json_add_num_or_null(o, "run_usd", s->run_usd);
    mc_json_add_num_or_null(o, "per_1m_input_tokens_usd", s->per_1m_input_usd);
    mc_json_add_num_or_null(o, "per_1m_output_tokens_usd", s->per_1m_output_usd);
    mc_json_add_num_or_null(o, "per_1m_tokens_usd", s->per_1m_tokens_usd);
    return o;
}

cJSON *mc_cost_json(const struct mc_cost_params *p, const struct mc_cost_work *w, const struct mc_cost_result *r,
                    int energy_estimated)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "parameters", mc_cost_params_json(p));
    cJSON *wk = cJSON_AddObjectToObject(o, "work");
    cJSON_AddNumberToObject(wk, "run_s", w->run_s);
    cJSON_AddNumberToObject(wk, "input_tokens", w->input_tokens);
    cJSON_AddNumberToObject(wk, "output_tokens", w->output_tokens);
    cJSON_AddNumberToObject(wk, "input_time_s", w->input_time_s);
    cJSON_AddNumberToObject(wk, "output_time_s", w->output_time_s);
    cJSON *f = cJSON_AddObjectToObject(o, "formulas");
    cJSON_AddStringToObject(f, "energy_usd", "energy J / 3.6e6 x usd_per_kwh");
    cJSON_AddStringToObject(f, "capital_usd", "devices x (price_usd + host_cpu_usd + host_dram_usd)");
    cJSON_AddStringToObject(f, "amortised_usd", "capital_usd / (lifetime_years x 365.25 x 86400 s) x run_s / utilisation");
    cJSON_AddStringToObject(f, "run_usd", "energy_usd + amortised_usd");
    cJSON_AddStringToObject(f, "per_1m_input_tokens_usd", "run_usd x input_time_s / (input_time_s + output_time_s) / input_tokens x 1e6");
    cJSON_AddStringToObject(f, "per_1m_output_tokens_usd", "run_usd x output_time_s / (input_time_s + output_time_s) / output_tokens x 1e6");
    cJSON_AddStringToObject(f, "per_1m_tokens_usd", "run_usd / (input_tokens + output_tokens) x 1e6");
    cJSON_AddStringToObject(f, "cloud", "run_usd = cloud_usd_per_hour x devices x run_s / 3600, split the same way");
    cJSON *own = split_json(&r->owned);
    mc_json_add_num_or_null(own, "energy_usd", r->energy_usd);
    mc_json_add_num_or_null(own, "capital_usd", r->capital_usd);
    mc_json_add_num_or_null(own, "amortised_usd", r->amortised_usd);
    cJSON_AddBoolToObject(own, "energy_estimated", energy_estimated);
    cJSON_AddStringToObject(own, "label", energy_estimated ? "estimated energy" : "measured energy");
    cJSON_AddItemToObject(o, "owned", own);
    if (isfinite(r->cloud.run_usd)) cJSON_AddItemToObject(o, "cloud", split_json(&r->cloud));
    cJSON *mc = cJSON_AddObjectToObject(o, "moecap_compat_cost");
    cJSON_AddStringToObject(mc, "formula", "1.25 x (price_usd x devices + $7214 CPU) + 1.2 x (tdp_w x devices + 350 W) x run hours x $0.15/kWh "
                                           "(MoE-CAP's cost: the whole purchase plus the run's energy at TDP; not amortised, not per token)");
    mc_json_add_num_or_null(mc, "capital_usd", r->moecap_capital_usd);
    mc_json_add_num_or_null(mc, "energy_usd", r->moecap_energy_usd);
    mc_json_add_num_or_null(mc, "total_usd", r->moecap_total_usd);
    return o;
}
