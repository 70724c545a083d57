/* Energy from recorded counters, or an estimate labelled as such (see energy.h). */
#include "cost/energy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum series_kind { S_RAPL_PACKAGE, S_RAPL_DRAM, S_RAPL_PSYS, S_GPU_ENERGY, S_GPU_POWER, S_CPU_TIME, S_RSS, S_GPU_MEM };

struct series {
    int kind;
    int32_t pid, device;
    char zone[64];               /* RAPL zone or counter name: what identifies the series on its host */
    uint64_t *t;
    double *v;                   /* cumulative, in J (energy), W (power, not cumulative) or s */
    size_t n, cap;
};

struct host_of { int32_t pid; char host[128]; };

struct mc_energy {
    struct series *s;
    size_t n, cap;
    struct host_of *hosts;
    size_t nh, caph;
};

struct mc_energy *mc_energy_new(void) { return calloc(1, sizeof(struct mc_energy)); }

void mc_energy_free(struct mc_energy *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n; i++) { free(e->s[i].t); free(e->s[i].v); }
    free(e->s);
    free(e->hosts);
    free(e);
}

void mc_energy_set_host(struct mc_energy *e, int32_t pid, const char *host)
{
    if (!e || !host) return;
    for (size_t i = 0; i < e->nh; i++)
        if (e->hosts[i].pid == pid) { snprintf(e->hosts[i].host, sizeof e->hosts[i].host, "%s", host); return; }
    if (e->nh == e->caph) {
        size_t c = e->caph ? e->caph * 2 : 8;
        struct host_of *h = realloc(e->hosts, c * sizeof *h);
        if (!h) return;
        e->hosts = h; e->caph = c;
    }
    e->hosts[e->nh].pid = pid;
    snprintf(e->hosts[e->nh].host, sizeof e->hosts[e->nh].host, "%s", host);
    e->nh++;
}

static const char *host_of(const struct mc_energy *e, int32_t pid)
{
    for (size_t i = 0; i < e->nh; i++)
        if (e->hosts[i].pid == pid) return e->hosts[i].host;
    return "";
}

/* Which series a counter belongs to, and its scale to J / W / s; -1 = not used. */
static int classify(const char *name, const char *unit, int cumulative, double *scale)
{
    if (!strncmp(name, "rapl.", 5)) {
        if (!cumulative || !unit || strcmp(unit, "uJ")) return -1;
        *scale = 1e-6;
        const char *z = name + 5;
        if (!strncmp(z, "package-", 8) && !strchr(z, '.')) return S_RAPL_PACKAGE;
        size_t l = strlen(z);
        if (!strcmp(z, "dram") || (l > 5 && !strcmp(z + l - 5, ".dram"))) return S_RAPL_DRAM;
        if (!strcmp(z, "psys")) return S_RAPL_PSYS;
        return -1;   /* core / uncore subzones are inside their package's figure */
    }
    if (!strcmp(name, "nvml.energy") && cumulative && unit && !strcmp(unit, "mJ")) { *scale = 1e-3; return S_GPU_ENERGY; }
    if (!strcmp(name, "nvml.power") && !cumulative && unit && !strcmp(unit, "mW")) { *scale = 1e-3; return S_GPU_POWER; }
    if ((!strcmp(name, "proc.cpu_user") || !strcmp(name, "proc.cpu_system")) && cumulative && unit && !strcmp(unit, "s")) {
        *scale = 1;
        return S_CPU_TIME;
    }
    if (!strcmp(name, "proc.rss") && !cumulative && unit && !strcmp(unit, "bytes")) { *scale = 1; return S_RSS; }
    if (!strcmp(name, "nvml.mem_used") && !cumulative && unit && !strcmp(unit, "bytes")) { *scale = 1; return S_GPU_MEM; }
    return -1;
}

int mc_energy_add(struct mc_energy *e, int32_t pid, const char *name, const char *unit, int32_t device,
                  int cumulative, uint64_t t_ns, double value)
{
    double scale = 1;
    if (!e || !name || !isfinite(value)) return 0;
    int kind = classify(name, unit, cumulative, &scale);
    if (kind < 0) return 0;
    /* CPU time: user and system are one series per process (summed sample by sample below). */
    const char *zone = kind == S_CPU_TIME ? "proc.cpu" : name;
    struct series *s = NULL;
    for (size_t i = e->n; i-- > 0;)
        if (e->s[i].kind == kind && e->s[i].pid == pid && e->s[i].device == device && !strcmp(e->s[i].zone, zone)) {
            s = &e->s[i];
            break;
        }
    if (!s) {
        if (e->n == e->cap) {
            size_t c = e->cap ? e->cap * 2 : 16;
            struct series *ns = realloc(e->s, c * sizeof *ns);
            if (!ns) return -1;
            e->s = ns; e->cap = c;
        }
        s = &e->s[e->n++];
        memset(s, 0, sizeof *s);
        s->kind = kind; s->pid = pid; s->device = device;
        snprintf(s->zone, sizeof s->zone, "%s", zone);
    }
    value *= scale;
    if (kind == S_CPU_TIME && s->n && s->t[s->n - 1] == t_ns) {
        /* the other half (user or system) of a sample already stored at this time */
        s->v[s->n - 1] += value;
        return 0;
    }
    if (s->n && t_ns < s->t[s->n - 1]) return 0;   /* out of order: keep the series monotonic in time */
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 64;
        uint64_t *nt = realloc(s->t, c * sizeof *nt);
        if (!nt) return -1;
        s->t = nt;
        double *nv = realloc(s->v, c * sizeof *nv);
        if (!nv) return -1;
        s->v = nv; s->cap = c;
    }
    s->t[s->n] = t_ns;
    s->v[s->n] = value;
    s->n++;
    return 0;
}

/* Cumulative value at time x: interpolated inside, extrapolated at the mean rate outside. */
static double value_at(const uint64_t *t, const double *v, size_t n, uint64_t x, double rate)
{
    if (x <= t[0]) return v[0] - rate * (double)(t[0] - x);
    if (x >= t[n - 1]) return v[n - 1] + rate * (double)(x - t[n - 1]);
    size_t lo = 0, hi = n - 1;            /* t[lo] <= x < t[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid] <= x) lo = mid; else hi = mid;
    }
    double f = (double)(x - t[lo]) / (double)(t[hi] - t[lo]);
    return v[lo] + f * (v[hi] - v[lo]);
}

int mc_cumulative_window(const uint64_t *t, const double *v, size_t n, uint64_t t0, uint64_t t1, double *amount,
                         double *covered)
{
    if (n < 2 || t[n - 1] <= t[0] || t1 < t0) return -1;
    double rate = (v[n - 1] - v[0]) / (double)(t[n - 1] - t[0]);
    *amount = value_at(t, v, n, t1, rate) - value_at(t, v, n, t0, rate);
    uint64_t a = t0 > t[0] ? t0 : t[0], b = t1 < t[n - 1] ? t1 : t[n - 1];
    *covered = t1 == t0 ? 1.0 : (b > a ? (double)(b - a) / (double)(t1 - t0) : 0.0);
    return 0;
}

/* A power series (W) as a cumulative energy series (J) by the trapezoid rule, in place. */
static void integrate_power(struct series *s)
{
    double acc = 0, prev = s->n ? s->v[0] : 0;
    for (size_t i = 0; i < s->n; i++) {
        double p = s->v[i];
        if (i) acc += 0.5 * (prev + p) * (double)(s->t[i] - s->t[i - 1]) * 1e-9;
        prev = p;
        s->v[i] = acc;
    }
}

static uint64_t span_of(const struct series *s) { return s->n >= 2 ? s->t[s->n - 1] - s->t[0] : 0; }

/* Machine-wide series (RAPL, NVML) are counted once per host: of the series with the same
 * host, kind, zone and device, the one spanning the longest time. */
static int is_best_on_host(const struct mc_energy *e, size_t i)
{
    const struct series *a = &e->s[i];
    const char *ha = host_of(e, a->pid);
    for (size_t j = 0; j < e->n; j++) {
        const struct series *b = &e->s[j];
        if (j == i || b->kind != a->kind || b->device != a->device || strcmp(b->zone, a->zone)) continue;
        if (strcmp(host_of(e, b->pid), ha)) continue;
        if (span_of(b) > span_of(a) || (span_of(b) == span_of(a) && j < i)) return 0;
    }
    return 1;
}

static int has_gpu_energy(const struct mc_energy *e, const struct series *p)
{
    for (size_t j = 0; j < e->n; j++)
        if (e->s[j].kind == S_GPU_ENERGY && e->s[j].device == p->device && !strcmp(host_of(e, e->s[j].pid), host_of(e, p->pid)))
            return 1;
    return 0;
}

void mc_energy_measure(const struct mc_energy *e, uint64_t t0, uint64_t t1, struct mc_energy_measured *m)
{
    memset(m, 0, sizeof *m);
    m->coverage = 1;
    if (!e) return;
    double psys_J = 0;
    int have_psys = 0;
    for (size_t i = 0; i < e->n; i++) {
        struct series *s = &e->s[i];
        if (s->kind == S_RSS || s->kind == S_GPU_MEM) continue;
        if (s->kind == S_GPU_POWER && has_gpu_energy(e, s)) continue;
        if (s->kind != S_CPU_TIME && !is_best_on_host(e, i)) continue;
        if (s->kind == S_GPU_POWER) {
            /* integrate a copy so the collector stays reusable */
            struct series c = *s;
            c.v = malloc(s->n * sizeof *c.v);
            if (!c.v) continue;
            memcpy(c.v, s->v, s->n * sizeof *c.v);
            integrate_power(&c);
            double a, cov;
            if (mc_cumulative_window(c.t, c.v, c.n, t0, t1, &a, &cov) == 0) {
                m->gpu_J += a; m->have_gpu = 1; m->gpu_from_power = 1;
                if (cov < m->coverage) m->coverage = cov;
            }
            free(c.v);
            continue;
        }
        double a, cov;
        if (mc_cumulative_window(s->t, s->v, s->n, t0, t1, &a, &cov) != 0) continue;
        if (a < 0) a = 0;   /* a counter reset would read as negative energy: count nothing */
        switch (s->kind) {
        case S_RAPL_PACKAGE: m->rapl_package_J += a; m->have_rapl_package = 1; break;
        case S_RAPL_DRAM: m->rapl_dram_J += a; m->have_rapl_dram = 1; break;
        case S_RAPL_PSYS: psys_J += a; have_psys = 1; break;
        case S_GPU_ENERGY: m->gpu_J += a; m->have_gpu = 1; break;
        case S_CPU_TIME: m->cpu_s += a; m->have_cpu = 1; break;
        }
        if (s->kind != S_CPU_TIME && cov < m->coverage) m->coverage = cov;
    }
    /* psys is the whole platform; it stands in for the package only where no package zone exists */
    if (!m->have_rapl_package && have_psys) { m->rapl_package_J = psys_J; m->have_rapl_package = 1; }
    const char *seen[64];
    for (size_t i = 0; i < e->nh && m->hosts < 64; i++) {
        int dup = 0;
        for (int k = 0; k < m->hosts; k++) dup |= !strcmp(seen[k], e->hosts[i].host);
        if (!dup) seen[m->hosts++] = e->hosts[i].host;
    }
    if (!m->hosts && e->n) m->hosts = 1;
}

void mc_energy_memory(const struct mc_energy *e, double *peak_rss, double *peak_device)
{
    *peak_rss = *peak_device = NAN;
    for (size_t i = 0; e && i < e->n; i++) {
        const struct series *s = &e->s[i];
        if ((s->kind != S_RSS && s->kind != S_GPU_MEM) || !s->n) continue;
        if (s->kind == S_GPU_MEM && !is_best_on_host(e, i)) continue;
        double mx = s->v[0];
        for (size_t k = 1; k < s->n; k++) mx = s->v[k] > mx ? s->v[k] : mx;
        double *dst = s->kind == S_RSS ? peak_rss : peak_device;
        *dst = (isnan(*dst) ? 0 : *dst) + mx;
    }
}

static void estimate_part(struct mc_energy_part *part, double watts, double seconds, const char *what)
{
    part->joules = watts * seconds;
    part->estimated = 1;
    snprintf(part->method, sizeof part->method, "estimated: %.180s", what);
}

void mc_energy_decide(const struct mc_energy_measured *m, const struct mc_energy_inputs *in,
                      const struct mc_cost_params *p, struct mc_energy_result *r)
{
    memset(r, 0, sizeof *r);
    r->device.joules = r->host.joules = r->total_J = r->utilisation = NAN;
    double n = p->v[MC_CP_DEVICES] >= 1 ? p->v[MC_CP_DEVICES] : 1;
    double tdp = p->v[MC_CP_TDP_W], idle = p->v[MC_CP_IDLE_W];
    /* device */
    if (in->gpu && m->have_gpu) {
        r->device.joules = m->gpu_J;
        snprintf(r->device.method, sizeof r->device.method, "measured: NVML %s",
                 m->gpu_from_power ? "board power samples integrated over time (no energy counter)" : "board energy counter (nvml.energy)");
    } else if (!in->gpu && m->have_rapl_package) {
        r->device.joules = m->rapl_package_J;
        snprintf(r->device.method, sizeof r->device.method, "measured: RAPL package energy (rapl.package-*)");
    } else {
        double u = in->busy_fraction;
        const char *src = in->busy_source;
        if (!in->gpu && m->have_cpu && in->cpu_threads > 0 && in->window_s > 0) {
            u = m->cpu_s / (in->window_s * in->cpu_threads);
            snprintf(r->utilisation_source, sizeof r->utilisation_source,
                     "process CPU time %.3g s / (%.3g s x %g hardware threads)", m->cpu_s, in->window_s, in->cpu_threads);
        } else {
            snprintf(r->utilisation_source, sizeof r->utilisation_source, "%s", src ? src : "unknown");
        }
        if (u > 1) u = 1;
        if (isfinite(u) && u >= 0 && isfinite(tdp) && isfinite(idle)) {
            r->utilisation = u;
            char what[200];
            snprintf(what, sizeof what, "%g device(s) x (idle_w %g + (tdp_w %g - idle_w) x utilisation %.3f) x %.4g s",
                     n, idle, tdp, u, in->window_s);
            estimate_part(&r->device, n * (idle + (tdp - idle) * u), in->window_s, what);
        } else {
            snprintf(r->device.method, sizeof r->device.method, "unknown: no energy counter and %s",
                     isfinite(tdp) ? "no utilisation" : "no tdp_w to estimate from");
        }
    }
    /* host: CPU package + DRAM for a GPU node, DRAM for a CPU device */
    double host_meas = in->gpu ? m->rapl_package_J + m->rapl_dram_J : m->rapl_dram_J;
    int have_host = in->gpu ? (m->have_rapl_package || m->have_rapl_dram) : m->have_rapl_dram;
    if (have_host) {
        r->host.joules = host_meas;
        snprintf(r->host.method, sizeof r->host.method, "measured: RAPL %s", in->gpu ? "package + DRAM zones" : "DRAM zone");
    } else if (p->v[MC_CP_HOST_POWER_W] == 0) {
        r->host.joules = 0;
        snprintf(r->host.method, sizeof r->host.method, "not counted: no RAPL counter and host_power_w = 0 (no host share)");
    } else if (isfinite(p->v[MC_CP_HOST_POWER_W])) {
        char what[200];
        snprintf(what, sizeof what, "%g device(s) x host_power_w %g x %.4g s", n, p->v[MC_CP_HOST_POWER_W], in->window_s);
        estimate_part(&r->host, n * p->v[MC_CP_HOST_POWER_W], in->window_s, what);
    } else {
        snprintf(r->host.method, sizeof r->host.method, "unknown: no RAPL counter and no host_power_w");
    }
    r->estimated = r->device.estimated || r->host.estimated;
    if (isfinite(r->device.joules) && isfinite(r->host.joules)) r->total_J = r->device.joules + r->host.joules;
}

static void part_json(cJSON *o, const char *key, const struct mc_energy_part *p)
{
    cJSON *x = cJSON_AddObjectToObject(o, key);
    mc_json_add_num_or_null(x, "joules", p->joules);
    cJSON_AddStringToObject(x, "method", p->estimated ? "estimated" : !isfinite(p->joules) ? "unknown"
                                         : !strncmp(p->method, "measured", 8) ? "measured" : "not counted");
    cJSON_AddStringToObject(x, "how", p->method);
}

cJSON *mc_energy_json(const struct mc_energy_result *r, const struct mc_energy_measured *m, double window_s)
{
    cJSON *o = cJSON_CreateObject();
    int measured = isfinite(r->total_J) && !r->estimated;
    /* "partly estimated" only when one part was measured and the other estimated */
    int some_measured = !strncmp(r->device.method, "measured", 8) || !strncmp(r->host.method, "measured", 8);
    cJSON_AddStringToObject(o, "method", !isfinite(r->total_J) ? "unknown" : measured ? "measured"
                                         : some_measured ? "partly estimated" : "estimated");
    cJSON_AddBoolToObject(o, "estimated", r->estimated);
    mc_json_add_num_or_null(o, "joules", r->total_J);
    if (isfinite(r->total_J) && window_s > 0) cJSON_AddNumberToObject(o, "mean_power_w", r->total_J / window_s);
    cJSON_AddNumberToObject(o, "window_s", window_s);
    part_json(o, "devices", &r->device);
    part_json(o, "host", &r->host);
    if (isfinite(r->utilisation)) {
        cJSON_AddNumberToObject(o, "utilisation", r->utilisation);
        cJSON_AddStringToObject(o, "utilisation_source", r->utilisation_source);
    }
    cJSON *c = cJSON_AddObjectToObject(o, "counters");
    if (m->have_rapl_package) cJSON_AddNumberToObject(c, "rapl_package_J", m->rapl_package_J);
    if (m->have_rapl_dram) cJSON_AddNumberToObject(c, "rapl_dram_J", m->rapl_dram_J);
    if (m->have_gpu) cJSON_AddNumberToObject(c, "nvml_J", m->gpu_J);
    if (m->have_cpu) cJSON_AddNumberToObject(c, "process_cpu_s", m->cpu_s);
    if (m->have_rapl_package || m->have_rapl_dram || m->have_gpu)
        cJSON_AddNumberToObject(c, "window_covered_by_samples", m->coverage);
    return o;
}
