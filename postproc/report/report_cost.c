/* `moecap report` hooks for energy, cost and the hardware what-if (see report_cost.h). */
#include "report/report_cost.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cost/cost.h"
#include "cost/energy.h"
#include "cost/whatif.h"
#include "report/report_sections.h"

struct mc_cost_report {
    const char *whatif_hw;
    struct mc_cost_params params;
    const struct mc_hw *hw;
    int devices;
    struct mc_energy *energy;
    struct mc_whatif *whatif;
};

void mc_cost_report_free(struct mc_cost_report *c)
{
    if (!c) return;
    mc_energy_free(c->energy);
    free(c->whatif);
    free(c);
}

void mc_cost_report_usage(FILE *o)
{
    fprintf(o,
        "  --cost NAME=V,... cost-model parameters over the hardware profile's (repeatable): price_usd,\n"
        "                   tdp_w, idle_w, lifetime_years, utilisation, host_cpu_usd, host_dram_usd,\n"
        "                   host_power_w, usd_per_kwh, cloud_usd_per_hour (docs/cost.md)\n"
        "  --whatif-hw LIST hardware profiles (names or files, comma-separated) to predict this run on;\n"
        "                   default: every profile in the profile directory; 'none' = no what-if\n");
}

int mc_cost_report_option(struct mc_cost_opts *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    int is_cost = !strcmp(a, "--cost"), is_whatif = !strcmp(a, "--whatif-hw");
    if (!is_cost && !is_whatif) return 0;
    if (*i + 1 >= argc) { fprintf(stderr, "moecap report: %s needs a value\n", a); return -1; }
    const char *v = argv[++*i];
    if (is_whatif) c->whatif_hw = v;
    else if (c->n_specs < MC_COST_MAX_SPECS) c->specs[c->n_specs++] = v;
    else { fprintf(stderr, "moecap report: at most %d --cost options\n", MC_COST_MAX_SPECS); return -1; }
    return 1;
}

/* Each name of a comma-separated list, or each profile file of the profile directory. */
static int add_targets(struct mc_cost_report *c, char *err, size_t errlen)
{
    char dir[1024];
    if (!c->whatif_hw) {
        /* the run's own hardware first: at the achieved efficiency it must predict the run itself */
        mc_whatif_add_target(c->whatif, c->hw);
        if (mc_hw_profile_dir(dir, sizeof dir) != 0) return 0;   /* no profile directory: no what-if */
        DIR *d = opendir(dir);
        if (!d) return 0;
        char (*names)[256] = calloc(MC_WHATIF_MAX, sizeof *names);
        int n = 0;
        struct dirent *de;
        while (names && (de = readdir(d)) && n < MC_WHATIF_MAX) {
            size_t l = strlen(de->d_name);
            if (l > 5 && !strcmp(de->d_name + l - 5, ".json")) snprintf(names[n++], 256, "%.*s", (int)(l - 5), de->d_name);
        }
        closedir(d);
        if (!names) return 0;
        qsort(names, (size_t)n, sizeof *names, (int (*)(const void *, const void *))strcmp);
        for (int k = 0; k < n; k++) {
            struct mc_hw t;
            char e2[512], p[1400];
            snprintf(p, sizeof p, "%s/%s.json", dir, names[k]);
            if (!strcmp(names[k], c->hw->name)) continue;
            if (mc_hw_load(p, &t, e2, sizeof e2) == 0) { mc_whatif_add_target(c->whatif, &t); mc_hw_free(&t); }
        }
        free(names);
        return 0;
    }
    if (!strcmp(c->whatif_hw, "none")) return 0;
    char *copy = strdup(c->whatif_hw), *save = NULL;
    if (!copy) { snprintf(err, errlen, "out of memory"); return -1; }
    int rc = 0;
    for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        struct mc_hw t;
        char e2[1024];
        if (mc_hw_load(s, &t, e2, sizeof e2) != 0) { snprintf(err, errlen, "--whatif-hw: %s", e2); rc = -1; break; }
        int full = mc_whatif_add_target(c->whatif, &t);
        mc_hw_free(&t);
        if (full) { snprintf(err, errlen, "--whatif-hw: at most %d profiles", MC_WHATIF_MAX); rc = -1; break; }
    }
    free(copy);
    return rc;
}

struct mc_cost_report *mc_cost_report_new(const struct mc_cost_opts *o, const struct mc_hw *hw, int devices, char *err,
                                          size_t errlen)
{
    struct mc_cost_report *c = calloc(1, sizeof *c);
    if (!c || !(c->energy = mc_energy_new()) || !(c->whatif = calloc(1, sizeof *c->whatif))) {
        snprintf(err, errlen, "out of memory");
        mc_cost_report_free(c);
        return NULL;
    }
    c->hw = hw;
    c->devices = devices;
    c->whatif_hw = o->whatif_hw;
    mc_cost_params_from_profile(&c->params, hw->json, hw->name, devices);
    int bad = 0;
    for (int k = 0; k < o->n_specs && !bad; k++) bad = mc_cost_params_override(&c->params, o->specs[k], err, errlen) != 0;
    if (!bad) bad = mc_cost_params_check(&c->params, err, errlen) != 0;
    if (!bad) {
        mc_whatif_init(c->whatif, devices);
        bad = add_targets(c, err, errlen) != 0;
    }
    if (bad) { mc_cost_report_free(c); return NULL; }
    return c;
}

void mc_cost_report_host(struct mc_cost_report *c, int32_t pid, const char *host)
{
    mc_energy_set_host(c->energy, pid, host);
}

void mc_cost_report_counter(struct mc_cost_report *c, int32_t pid, const char *name, const char *unit, int32_t device,
                            int cumulative, uint64_t t_ns, double value)
{
    mc_energy_add(c->energy, pid, name, unit, device, cumulative, t_ns, value);
}

static double jnum(const cJSON *root, const char *a, const char *b, const char *d)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (d) x = cJSON_GetObjectItemCaseSensitive(x, d);
    return cJSON_IsNumber(x) && isfinite(x->valuedouble) ? x->valuedouble : NAN;
}

/* Hardware threads of a CPU profile: hwprobe's "threads", else cores x sockets. */
static double cpu_threads(const cJSON *profile)
{
    double t = jnum(profile, "threads", NULL, NULL);
    if (t > 0) return t;
    double cores = jnum(profile, "cores", NULL, NULL), sockets = jnum(profile, "sockets", NULL, NULL);
    return cores > 0 ? cores * (sockets > 0 ? sockets : 1) : 0;
}

static void energy_and_cost(struct mc_cost_report *c, cJSON *root, const struct report_steps *r, cJSON *notes)
{
    char msg[512];
    uint64_t t0 = r->first_begin, t1 = r->last_end > r->first_begin ? r->last_end : r->first_begin;
    struct mc_cost_work work;
    memset(&work, 0, sizeof work);
    for (size_t i = 0; i < r->n_rows; i++)
        mc_cost_work_add_step(&work, r->rows[i].kind, r->rows[i].tokens, r->rows[i].sequences, r->rows[i].time_s);
    work.run_s = (double)(t1 - t0) / 1e9;

    struct mc_energy_measured m;
    mc_energy_measure(c->energy, t0, t1, &m);
    struct mc_energy_inputs in = {0};
    in.gpu = c->hw->kind && !strcmp(c->hw->kind, "gpu");
    in.window_s = work.run_s;
    in.cpu_threads = in.gpu ? 0 : cpu_threads(c->hw->json);
    double busy = jnum(root, "aggregate", "gpu_kernels", "busy_fraction_of_step_span");
    if (in.gpu && isfinite(busy)) {
        in.busy_fraction = busy;
        in.busy_source = "GPU kernel busy time / step span (CUPTI)";
    } else {
        in.busy_fraction = work.run_s > 0 ? jnum(root, "aggregate", "time_s", NULL) / work.run_s : NAN;
        in.busy_source = "step time / step span (device assumed fully busy during steps)";
    }
    struct mc_energy_result er;
    mc_energy_decide(&m, &in, &c->params, &er);
    cJSON_AddItemToObject(root, "energy", mc_energy_json(&er, &m, work.run_s));
    if (er.estimated) {
        snprintf(msg, sizeof msg, "energy is estimated (%s%s%s): no energy counter for %s", er.device.estimated ? "devices" : "",
                 er.device.estimated && er.host.estimated ? " and " : "", er.host.estimated ? "host" : "",
                 er.device.estimated ? (in.gpu ? "the GPUs (NVML)" : "the CPU package (RAPL)") : "the host (RAPL)");
        report_add_note(notes, "info", msg);
    }
    if ((m.have_rapl_package || m.have_gpu) && m.coverage < 0.5) {
        snprintf(msg, sizeof msg, "energy counters cover only %.0f %% of the run's span; the rest is extrapolated at "
                 "the counters' mean power", m.coverage * 100);
        report_add_note(notes, "warning", msg);
    }
    struct mc_cost_result cr;
    mc_cost_compute(&c->params, &work, er.total_J, &cr);
    cJSON_AddItemToObject(root, "cost", mc_cost_json(&c->params, &work, &cr, er.estimated));
    if (!isfinite(cr.owned.run_usd)) {
        snprintf(msg, sizeof msg, "cost of the run unknown: %s (set it with --cost NAME=VALUE)",
                 isnan(c->params.v[MC_CP_PRICE_USD]) ? "the hardware profile has no price_usd"
                 : isnan(c->params.v[MC_CP_TDP_W]) ? "no energy counter and no tdp_w to estimate from" : "energy unknown");
        report_add_note(notes, "warning", msg);
    }
}

static void whatif(struct mc_cost_report *c, cJSON *root, const struct report_steps *r)
{
    struct mc_whatif *w = c->whatif;
    if (!w || !w->n) return;
    double elt = jnum(root, "run", "attribution", "gemm_weight_bytes_per_element");
    if (!(elt > 0)) elt = jnum(root, "model", "bytes_per_element", NULL);
    double params = jnum(root, "model", "params", "total");
    mc_whatif_set_run(w, r->compute_key, r->bw, r->peak, elt > 0 && params > 0 ? elt * params : 0);
    for (size_t i = 0; i < r->n_rows; i++)
        mc_whatif_add_step(w, r->rows[i].kind, r->rows[i].bytes, r->rows[i].flops, r->rows[i].time_s, r->rows[i].tokens,
                           r->rows[i].sequences);
    cJSON_AddItemToObject(root, "whatif", mc_whatif_json(w));
}

static void memory(struct mc_cost_report *c, cJSON *root)
{
    double rss, dev;
    mc_energy_memory(c->energy, &rss, &dev);
    if (isnan(rss) && isnan(dev)) return;
    cJSON *m = cJSON_AddObjectToObject(root, "memory");
    if (!isnan(rss)) cJSON_AddNumberToObject(m, "peak_rss_bytes", rss);
    if (!isnan(dev)) cJSON_AddNumberToObject(m, "peak_device_bytes", dev);
    cJSON_AddStringToObject(m, "how", "largest sampled proc.rss per process, summed over processes; largest sampled "
                                      "nvml.mem_used per GPU, summed over GPUs (samples every MOECAP_SAMPLE_MS / "
                                      "MOECAP_NVML_INTERVAL_MS: shorter peaks can be missed)");
}

void mc_cost_report_sections(struct mc_cost_report *c, cJSON *root, const struct report_steps *r, cJSON *notes)
{
    memory(c, root);
    energy_and_cost(c, root, r, notes);
    whatif(c, root, r);
}
