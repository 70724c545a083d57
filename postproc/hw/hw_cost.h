/* Cost-model parameters (docs/cost.md): one table of named numbers — price, power, lifetime,
 * utilisation, host share, electricity and cloud prices — taken from a hardware profile's cost
 * fields (docs/hardware.md, validated here), else from a stated default, and overridable by
 * `moecap report --cost NAME=VALUE`.
 * Every parameter remembers where its value came from, so the report can print each one
 * next to the results it fed. */
#ifndef MOECAP_HW_COST_H
#define MOECAP_HW_COST_H

#include <stddef.h>
#include <cjson/cJSON.h>

enum mc_cost_param {
    MC_CP_PRICE_USD,            /* purchase price per device */
    MC_CP_TDP_W,                /* device TDP */
    MC_CP_IDLE_W,               /* device idle draw */
    MC_CP_LIFETIME_YEARS,
    MC_CP_UTILISATION,          /* expected lifetime utilisation, (0, 1] */
    MC_CP_HOST_CPU_USD,         /* per-device share of the host CPU price */
    MC_CP_HOST_DRAM_USD,        /* per-device share of the host DRAM price */
    MC_CP_HOST_POWER_W,         /* per-device share of the host power */
    MC_CP_USD_PER_KWH,          /* electricity */
    MC_CP_CLOUD_USD_PER_HOUR,   /* per device; unknown = no cloud figures */
    MC_CP_DEVICES,              /* devices the run used (--devices) */
    MC_CP_COUNT
};

struct mc_cost_params {
    double v[MC_CP_COUNT];              /* NaN = unknown */
    char source[MC_CP_COUNT][160];      /* "hardware profile h100-sxm", "default (assumption)", "--cost" */
};

/* The parameter's name as printed and as `--cost` takes it ("price_usd", ...). */
const char *mc_cost_param_name(int p);
/* One-line meaning with the unit. */
const char *mc_cost_param_help(int p);

/* Fills p from a hardware profile (the JSON object of docs/hardware.md; may be NULL), then
 * defaults for what the profile lacks (lifetime 5 years, utilisation 0.5, idle = 30 % of
 * TDP, electricity $0.15/kWh, no host share). */
void mc_cost_params_from_profile(struct mc_cost_params *p, const cJSON *profile, const char *profile_name,
                                 int devices);

/* Applies "NAME=VALUE[,NAME=VALUE...]" (the argument of --cost). 0, or -1 with a message
 * naming the bad item and the known names. */
int mc_cost_params_override(struct mc_cost_params *p, const char *spec, char *err, size_t errlen);

/* Checks ranges (prices >= 0, 0 < utilisation <= 1, lifetime > 0, idle <= TDP, ...) of the
 * values that are known. 0, or -1 with a message. */
int mc_cost_params_check(const struct mc_cost_params *p, char *err, size_t errlen);

/* {"NAME": {"value": x|null, "source": "...", "meaning": "..."}, ...} */
cJSON *mc_cost_params_json(const struct mc_cost_params *p);

/* A finite number as a JSON number, anything else (NaN: unknown) as null; the _add form
 * adds it to an object under key. */
cJSON *mc_json_num_or_null(double v);
void mc_json_add_num_or_null(cJSON *o, const char *key, double v);

/* Validates the cost fields of a hardware profile object (types and ranges; all optional
 * except that a present field must be valid). 0, or -1 with a message. */
int mc_hw_cost_fields_check(const cJSON *profile, char *err, size_t errlen);

#endif
