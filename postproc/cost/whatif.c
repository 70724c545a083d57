/* Roofline what-if over hardware profiles (see whatif.h). */
#include "cost/whatif.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phase_name[3] = {"prefill", "decode", "mixed"};

double mc_roofline_s(double bytes, double flops, double devices, double bw, double peak)
{
    double t = bw > 0 ? bytes / (devices * bw) : 0;
    if (peak > 0 && flops / (devices * peak) > t) t = flops / (devices * peak);
    return t;
}

const char *const mc_whatif_dtypes[MC_WHATIF_DTYPES] = {"f32", "tf32", "bf16", "f16", "fp8", "int8", "f64"};

void mc_whatif_init(struct mc_whatif *w, int devices)
{
    memset(w, 0, sizeof *w);
    w->devices = devices > 0 ? devices : 1;
}

int mc_whatif_add_target(struct mc_whatif *w, const struct mc_hw *hw)
{
    if (w->n >= MC_WHATIF_MAX) return -1;
    struct mc_whatif_target *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", hw->name ? hw->name : "?");
    snprintf(t->kind, sizeof t->kind, "%s", hw->kind ? hw->kind : "?");
    t->bw = hw->bandwidth_Bps;
    for (int k = 0; k < MC_WHATIF_DTYPES; k++) t->peaks[k] = mc_hw_peak_flops(hw, mc_whatif_dtypes[k]);
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(hw->json, "memory_bytes");
    t->mem_bytes = cJSON_IsNumber(mb) ? mb->valuedouble : 0;
    mc_cost_params_from_profile(&t->params, hw->json, t->name, w->devices);
    return 0;
}

void mc_whatif_set_run(struct mc_whatif *w, const char *compute_key, double own_bw, double own_peak,
                       double weights_bytes)
{
    snprintf(w->compute_key, sizeof w->compute_key, "%s", compute_key ? compute_key : "");
    w->own_bw = own_bw;
    w->own_peak = own_peak;
    w->weights_bytes = weights_bytes;
    for (int i = 0; i < w->n; i++) {
        struct mc_whatif_target *t = &w->t[i];
        /* Without a peak for the run's own hardware, the run's efficiency has no FLOP side, so
         * the targets are compared on bytes alone too. */
        t->peak = 0;
        t->skip[0] = 0;
        if (!(own_peak > 0)) continue;
        for (int k = 0; k < MC_WHATIF_DTYPES; k++)
            if (!strcmp(mc_whatif_dtypes[k], w->compute_key)) t->peak = t->peaks[k];
        if (!(t->peak > 0)) snprintf(t->skip, sizeof t->skip, "no peak FLOPS for %s in the profile", w->compute_key);
    }
}

void mc_whatif_add_step(struct mc_whatif *w, int kind, double bytes, double flops, double time_s, double tokens,
                        double sequences)
{
    if (kind < 0 || kind > 2) return;
    double n = w->devices;
    w->own_roof_s[kind] += mc_roofline_s(bytes, flops, n, w->own_bw, w->own_peak);
    w->time_s[kind] += time_s;
    w->steps[kind] += 1;
    mc_cost_work_add_step(&w->work, kind, tokens, sequences, time_s);
    for (int i = 0; i < w->n; i++)
        if (!w->t[i].skip[0]) w->t[i].roof_s[kind] += mc_roofline_s(bytes, flops, n, w->t[i].bw, w->t[i].peak);
}

double mc_whatif_efficiency(const struct mc_whatif *w, int k)
{
    return w->steps[k] > 0 && w->time_s[k] > 0 ? w->own_roof_s[k] / w->time_s[k] : NAN;
}

int mc_whatif_predict(const struct mc_whatif *w, int i, int at_full_roofline, struct mc_whatif_pred *p)
{
    const struct mc_whatif_target *t = &w->t[i];
    memset(p, 0, sizeof *p);
    if (t->skip[0]) return -1;
    struct mc_cost_work work = w->work;
    work.input_time_s = work.output_time_s = 0;
    for (int k = 0; k < 3; k++) {
        double eff = at_full_roofline ? 1 : mc_whatif_efficiency(w, k);
        p->time_s[k] = w->steps[k] > 0 && eff > 0 ? t->roof_s[k] / eff : 0;
        p->busy_s += p->time_s[k];
        /* the phase times scale; split them into input / output time as the run did */
        double in_frac = 0;
        if (k == 0) in_frac = 1;
        else if (k == 2 && w->time_s[2] > 0) {
            /* the run's mixed-step input share */
            double mixed_in = w->work.input_time_s - w->time_s[0];
            in_frac = mixed_in > 0 ? mixed_in / w->time_s[2] : 0;
        }
        work.input_time_s += p->time_s[k] * in_frac;
        work.output_time_s += p->time_s[k] * (1 - in_frac);
    }
    p->tpot_s = w->steps[1] > 0 ? p->time_s[1] / w->steps[1] : NAN;
    p->output_tokens_per_s = p->busy_s > 0 ? w->work.output_tokens / p->busy_s : NAN;
    work.run_s = p->busy_s;
    const double *v = t->params.v;
    double n = w->devices;
    p->energy_J = n * (v[MC_CP_TDP_W] + (isfinite(v[MC_CP_HOST_POWER_W]) ? v[MC_CP_HOST_POWER_W] : 0)) * p->busy_s;
    struct mc_cost_result r;
    mc_cost_compute(&t->params, &work, p->energy_J, &r);
    p->run_usd = r.owned.run_usd;
    p->per_1m_tokens_usd = r.owned.per_1m_tokens_usd;
    p->per_1m_input_usd = r.owned.per_1m_input_usd;
    p->per_1m_output_usd = r.owned.per_1m_output_usd;
    return 0;
}

static cJSON *pred_json(const struct mc_whatif *w, const struct mc_whatif_pred *p)
{
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < 3; k++)
        if (w->steps[k] > 0) mc_json_add_num_or_null(o, k == 0 ? "prefill_s" : k == 1 ? "decode_s" : "mixed_s", p->time_s[k]);
    mc_json_add_num_or_null(o, "busy_s", p->busy_s);
    mc_json_add_num_or_null(o, "tpot_s", p->tpot_s);
    mc_json_add_num_or_null(o, "output_tokens_per_s", p->output_tokens_per_s);
    mc_json_add_num_or_null(o, "energy_J", p->energy_J);
    mc_json_add_num_or_null(o, "run_usd", p->run_usd);
    mc_json_add_num_or_null(o, "per_1m_tokens_usd", p->per_1m_tokens_usd);
    mc_json_add_num_or_null(o, "per_1m_input_tokens_usd", p->per_1m_input_usd);
    mc_json_add_num_or_null(o, "per_1m_output_tokens_usd", p->per_1m_output_usd);
    return o;
}

/* Ranking: indices of predicted targets sorted by a key (ascending; NaN last). */
struct rank_ctx { const struct mc_whatif_pred *preds; int by_tpot; };
static double key_of(const struct rank_ctx *c, int i) { return c->by_tpot ? c->preds[i].tpot_s : c->preds[i].per_1m_tokens_usd; }
static int cmp_rank(const void *a, const void *b, void *ctx)
{
    double x = key_of(ctx, *(const int *)a), y = key_of(ctx, *(const int *)b);
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
    return x < y ? -1 : x > y;
}

cJSON *mc_whatif_json(const struct mc_whatif *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", "prediction");
    cJSON_AddStringToObject(o, "method",
        "roofline per step: max(bytes / (devices x bandwidth), FLOPs / (devices x peak FLOPS of compute_dtype)); "
        "predicted phase time = sum of roofline times / the efficiency the run achieved in that phase on its own "
        "hardware (and at 100 % of the roofline); energy at tdp_w + host_power_w per device during the predicted "
        "busy time; cost = that energy + the profile's amortised price over the busy time (docs/cost.md)");
    cJSON_AddStringToObject(o, "compute_dtype", w->compute_key);
    cJSON_AddNumberToObject(o, "devices", w->devices);
    if (!(w->own_peak > 0))
        cJSON_AddStringToObject(o, "note", "the run's hardware has no peak FLOPS for its compute dtype: bytes-only roofline");
    cJSON *eff = cJSON_AddObjectToObject(o, "achieved_efficiency");
    for (int k = 0; k < 3; k++)
        if (w->steps[k] > 0) mc_json_add_num_or_null(eff, phase_name[k], mc_whatif_efficiency(w, k));
    cJSON *arr = cJSON_AddArrayToObject(o, "targets");
    struct mc_whatif_pred *preds = calloc(w->n ? (size_t)w->n : 1, sizeof *preds);
    int *idx = malloc((w->n ? (size_t)w->n : 1) * sizeof *idx);
    int np = 0;
    for (int i = 0; i < w->n; i++) {
        const struct mc_whatif_target *t = &w->t[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "hardware", t->name);
        cJSON_AddStringToObject(x, "kind", t->kind);
        cJSON_AddNumberToObject(x, "memory_bandwidth_Bps", t->bw);
        if (t->peak > 0) cJSON_AddNumberToObject(x, "peak_flops", t->peak);
        if (w->weights_bytes > 0 && t->mem_bytes > 0)
            cJSON_AddBoolToObject(x, "weights_fit", w->weights_bytes <= t->mem_bytes * w->devices);
        struct mc_whatif_pred p;
        if (t->skip[0] || !preds || !idx) {
            cJSON_AddStringToObject(x, "skipped", t->skip[0] ? t->skip : "out of memory");
        } else {
            mc_whatif_predict(w, i, 0, &p);
            cJSON_AddItemToObject(x, "at_achieved_efficiency", pred_json(w, &p));
            preds[i] = p;
            idx[np++] = i;
            mc_whatif_predict(w, i, 1, &p);
            cJSON_AddItemToObject(x, "at_roofline", pred_json(w, &p));
        }
        cJSON_AddItemToArray(arr, x);
    }
    if (preds && idx) {
        const char *names[2] = {"by_cost_per_1m_tokens", "by_tpot"};
        cJSON *rank = cJSON_AddObjectToObject(o, "ranking");
        for (int by = 0; by < 2; by++) {
            if (by == 1 && !(w->steps[1] > 0)) break;
            struct rank_ctx ctx = {preds, by};
            qsort_r(idx, (size_t)np, sizeof *idx, cmp_rank, &ctx);
            cJSON *ra = cJSON_AddArrayToObject(rank, names[by]);
            for (int j = 0; j < np; j++) cJSON_AddItemToArray(ra, cJSON_CreateString(w->t[idx[j]].name));
        }
    }
    free(preds);
    free(idx);
    return o;
}
