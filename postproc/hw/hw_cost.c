/* Cost-model parameters: profile values, stated defaults, --cost overrides, and the
 * validation of a profile's cost fields (see hw_cost.h). */
#include "hw/hw_cost.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct param_def {
    const char *name, *help;
    const char *profile_path[2];   /* object, field in the profile (object NULL = top level) */
    double dflt;                   /* NaN = no default */
    const char *dflt_why;
};

static const struct param_def defs[MC_CP_COUNT] = {
    [MC_CP_PRICE_USD] = {"price_usd", "purchase price per device, USD", {NULL, "price_usd"}, NAN, NULL},
    [MC_CP_TDP_W] = {"tdp_w", "device TDP / board power, W", {NULL, "tdp_w"}, NAN, NULL},
    [MC_CP_IDLE_W] = {"idle_w", "device idle draw, W", {NULL, "idle_w"}, NAN, NULL},
    [MC_CP_LIFETIME_YEARS] = {"lifetime_years", "years over which the purchase is amortised", {NULL, "lifetime_years"},
                              5, "default (assumption: 5-year depreciation)"},
    [MC_CP_UTILISATION] = {"utilisation", "expected fraction of the lifetime the hardware does billable work",
                           {NULL, "expected_utilisation"}, 0.5, "default (assumption: busy half of its life)"},
    [MC_CP_HOST_CPU_USD] = {"host_cpu_usd", "per-device share of the host CPU price, USD", {"host_share", "cpu_price_usd"},
                            0, "default (no host share given)"},
    [MC_CP_HOST_DRAM_USD] = {"host_dram_usd", "per-device share of the host DRAM price, USD", {"host_share", "dram_price_usd"},
                             0, "default (no host share given)"},
    [MC_CP_HOST_POWER_W] = {"host_power_w", "per-device share of the host power, W (used when host energy is not measured)",
                            {"host_share", "power_w"}, 0, "default (no host share given)"},
    [MC_CP_USD_PER_KWH] = {"usd_per_kwh", "electricity price, USD per kWh", {NULL, "usd_per_kwh"},
                           0.15, "default ($0.15/kWh, the figure MoE-CAP uses; about the US commercial average)"},
    [MC_CP_CLOUD_USD_PER_HOUR] = {"cloud_usd_per_hour", "cloud price per device-hour, USD (absent: no cloud figures)",
                                  {NULL, "cloud_usd_per_hour"}, NAN, NULL},
    [MC_CP_DEVICES] = {"devices", "devices the run used (--devices)", {NULL, NULL}, NAN, NULL},
};

const char *mc_cost_param_name(int p) { return p >= 0 && p < MC_CP_COUNT ? defs[p].name : "?"; }
const char *mc_cost_param_help(int p) { return p >= 0 && p < MC_CP_COUNT ? defs[p].help : "?"; }

static const cJSON *profile_field(const cJSON *profile, int p)
{
    const struct param_def *d = &defs[p];
    if (!profile || !d->profile_path[1]) return NULL;
    const cJSON *o = d->profile_path[0] ? cJSON_GetObjectItemCaseSensitive(profile, d->profile_path[0]) : profile;
    return cJSON_GetObjectItemCaseSensitive(o, d->profile_path[1]);
}

void mc_cost_params_from_profile(struct mc_cost_params *p, const cJSON *profile, const char *profile_name, int devices)
{
    for (int i = 0; i < MC_CP_COUNT; i++) {
        p->v[i] = NAN;
        p->source[i][0] = 0;
        const cJSON *x = profile_field(profile, i);
        if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
            p->v[i] = x->valuedouble;
            snprintf(p->source[i], sizeof p->source[i], "hardware profile %.120s", profile_name ? profile_name : "");
        } else if (!isnan(defs[i].dflt)) {
            p->v[i] = defs[i].dflt;
            snprintf(p->source[i], sizeof p->source[i], "%s", defs[i].dflt_why);
        }
    }
    p->v[MC_CP_DEVICES] = devices;
    snprintf(p->source[MC_CP_DEVICES], sizeof p->source[MC_CP_DEVICES], "the report's devices (--devices, else those the trace's GEMMs ran on)");
    /* Idle draw: without a figure, 30 % of TDP (servers idle at roughly a quarter to a third of TDP). */
    if (isnan(p->v[MC_CP_IDLE_W]) && p->v[MC_CP_TDP_W] > 0) {
        p->v[MC_CP_IDLE_W] = 0.3 * p->v[MC_CP_TDP_W];
        snprintf(p->source[MC_CP_IDLE_W], sizeof p->source[MC_CP_IDLE_W], "default (assumption: 30 %% of tdp_w)");
    }
}

int mc_cost_params_override(struct mc_cost_params *p, const char *spec, char *err, size_t errlen)
{
    char *copy = strdup(spec), *save = NULL;
    if (!copy) { snprintf(err, errlen, "out of memory"); return -1; }
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        int which = -1;
        if (eq) {
            *eq = 0;
            for (int i = 0; i < MC_CP_COUNT; i++)
                if (i != MC_CP_DEVICES && !strcmp(item, defs[i].name)) which = i;
        }
        char *end = NULL;
        errno = 0;
        double v = eq ? strtod(eq + 1, &end) : NAN;
        if (which < 0 || !eq || errno || end == eq + 1 || *end || !isfinite(v)) {
            char names[512] = "";
            for (int i = 0; i < MC_CP_COUNT; i++) {
                if (i == MC_CP_DEVICES) continue;
                size_t l = strlen(names);
                snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", defs[i].name);
            }
            snprintf(err, errlen, "--cost: bad item '%s%s%s' (want NAME=NUMBER; names: %s)", item, eq ? "=" : "",
                     eq ? eq + 1 : "", names);
            rc = -1;
            break;
        }
        p->v[which] = v;
        snprintf(p->source[which], sizeof p->source[which], "--cost");
    }
    free(copy);
    return rc;
}

int mc_cost_params_check(const struct mc_cost_params *p, char *err, size_t errlen)
{
    for (int i = 0; i < MC_CP_COUNT; i++) {
        double v = p->v[i];
        if (isnan(v)) continue;
        const char *why = NULL;
        if (v < 0) why = "must not be negative";
        else if (i == MC_CP_UTILISATION && !(v > 0 && v <= 1)) why = "must be in (0, 1]";
        else if (i == MC_CP_LIFETIME_YEARS && !(v > 0)) why = "must be positive";
        else if (i == MC_CP_DEVICES && !(v >= 1)) why = "must be at least 1";
        if (why) {
            snprintf(err, errlen, "cost parameter %s = %g (%s) %s", defs[i].name, v, p->source[i], why);
            return -1;
        }
    }
    if (p->v[MC_CP_IDLE_W] > p->v[MC_CP_TDP_W]) {
        snprintf(err, errlen, "cost parameter idle_w = %g exceeds tdp_w = %g", p->v[MC_CP_IDLE_W], p->v[MC_CP_TDP_W]);
        return -1;
    }
    return 0;
}

cJSON *mc_json_num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }
void mc_json_add_num_or_null(cJSON *o, const char *key, double v) { cJSON_AddItemToObject(o, key, mc_json_num_or_null(v)); }

cJSON *mc_cost_params_json(const struct mc_cost_params *p)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < MC_CP_COUNT; i++) {
        cJSON *e = cJSON_AddObjectToObject(o, defs[i].name);
        mc_json_add_num_or_null(e, "value", p->v[i]);
        cJSON_AddStringToObject(e, "source", p->source[i][0] ? p->source[i] : "unknown");
        cJSON_AddStringToObject(e, "meaning", defs[i].help);
    }
    return o;
}

int mc_hw_cost_fields_check(const cJSON *profile, char *err, size_t errlen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(profile, "name");
    const char *n = cJSON_IsString(name) ? name->valuestring : "?";
    for (int i = 0; i < MC_CP_COUNT; i++) {
        const cJSON *x = profile_field(profile, i);
        if (!x || cJSON_IsNull(x)) continue;
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < 0) {
            snprintf(err, errlen, "hardware profile %s: %s%s%s must be a non-negative number", n,
                     defs[i].profile_path[0] ? defs[i].profile_path[0] : "", defs[i].profile_path[0] ? "." : "",
                     defs[i].profile_path[1]);
            return -1;
        }
    }
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(profile, "host_share");
    if (hs && !cJSON_IsNull(hs) && !cJSON_IsObject(hs)) {
        snprintf(err, errlen, "hardware profile %s: host_share must be an object", n);
        return -1;
    }
    struct mc_cost_params p;
    mc_cost_params_from_profile(&p, profile, n, 1);
    char why[256];
    if (mc_cost_params_check(&p, why, sizeof why)) {
        snprintf(err, errlen, "hardware profile %s: %s", n, why);
        return -1;
    }
    return 0;
}
