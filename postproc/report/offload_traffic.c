/* Offload traffic of `moecap report` (see offload_traffic.h). */
#include "report/offload_traffic.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct pid_end { int32_t pid; uint64_t end; };

struct mc_offload_view {
    const struct mc_model *m;
    struct mc_expert_load *ld;
    size_t n;
    double bw;
    struct pid_end *ends; size_t n_ends;   /* per process: end of its previous step */
    uint8_t *flag;                         /* [layers x E] loaded in the current window */
    /* run totals */
    uint64_t steps, steps_loading, loaded_experts, loaded_bytes, hits, misses;
    uint64_t resident_peak;
    double resident_sum, time_s;
};

struct mc_offload_view *mc_offload_view_new(const struct mc_model *m, struct mc_expert_load *loads, size_t n,
                                            double bw)
{
    struct mc_offload_view *v = calloc(1, sizeof *v);
    size_t cells = (size_t)(m->layers > 0 ? m->layers : 1) * (size_t)(m->experts > 0 ? m->experts : 1);
    if (v) v->flag = calloc(cells, 1);
    if (!v || !v->flag) { free(loads); if (v) free(v->flag); free(v); return NULL; }
    /* a process that copies experts to a device offloads into device memory: its host reads
     * (the pinned staging copy) are the tier behind, not what compute reads */
    int32_t dev_pids[64];
    int nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (loads[i].device < 0) continue;
        int k = 0;
        while (k < nd && dev_pids[k] != loads[i].pid) k++;
        if (k == nd && nd < 64) dev_pids[nd++] = loads[i].pid;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int on_dev_pid = 0;
        for (int k = 0; k < nd; k++) on_dev_pid |= dev_pids[k] == loads[i].pid;
        if (!on_dev_pid || loads[i].device >= 0) loads[kept++] = loads[i];
    }
    v->m = m; v->ld = loads; v->n = kept; v->bw = bw;
    return v;
}

void mc_offload_view_free(struct mc_offload_view *v)
{
    if (!v) return;
    free(v->ld); free(v->ends); free(v->flag); free(v);
}

int mc_offload_view_any(const struct mc_offload_view *v) { return v && v->n > 0; }

/* first load of process pid with t_from > t (loads sorted by (pid, t_from)) */
static size_t first_after(const struct mc_offload_view *v, int32_t pid, uint64_t t)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct mc_expert_load *x = &v->ld[mid];
        if (x->pid < pid || (x->pid == pid && x->t_from <= t)) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* first load of process pid */
static size_t first_of_pid(const struct mc_offload_view *v, int32_t pid)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->ld[mid].pid < pid) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static uint64_t *prev_end(struct mc_offload_view *v, int32_t pid, uint64_t first_begin)
{
    for (size_t i = 0; i < v->n_ends; i++) if (v->ends[i].pid == pid) return &v->ends[i].end;
    void *p = realloc(v->ends, (v->n_ends + 1) * sizeof *v->ends);
    if (!p) return NULL;
    v->ends = p;
    /* a process's first step: reads before it began are the initial load, not its traffic */
    v->ends[v->n_ends] = (struct pid_end){pid, first_begin};
    return &v->ends[v->n_ends++].end;
}

void mc_offload_step(struct mc_offload_view *v, const struct mc_step *s, FILE *o)
{
    if (!v) return;
    const struct mc_model *m = v->m;
    int64_t E = m->experts;
    uint64_t *pe = prev_end(v, s->pid, s->t_begin_ns);
    if (!pe || !v->n) return;
    size_t from = first_after(v, s->pid, *pe), to = first_after(v, s->pid, s->t_end_ns);
    *pe = s->t_end_ns;
    uint64_t lexp = 0, lbytes = 0, hits = 0, misses = 0, rexp = 0, rbytes = 0;
    memset(v->flag, 0, (size_t)m->layers * (size_t)E);
    for (size_t i = from; i < to; i++) {
        const struct mc_expert_load *x = &v->ld[i];
        if (x->layer >= m->layers || x->expert >= E) continue;
        v->flag[(size_t)x->layer * (size_t)E + (size_t)x->expert] = 1;
        lbytes += x->bytes;
        lexp += x->proj == MC_PROJ_DOWN;   /* one down projection per expert read */
    }
    for (size_t i = first_of_pid(v, s->pid); i < to; i++) {   /* resident at the step's end */
        const struct mc_expert_load *x = &v->ld[i];
        if (x->t_until <= s->t_end_ns) continue;
        rbytes += x->bytes;
        rexp += x->proj == MC_PROJ_DOWN;
    }
    fprintf(o, ", \"offload\": {\"loaded\": [");   /* per layer with reads: the experts read */
    int nl = 0;
    for (int64_t l = 0; l < m->layers; l++) {
        int ne = 0;
        for (int64_t e = 0; e < E; e++) {
            if (!v->flag[l * E + e]) continue;
            if (!ne++) fprintf(o, "%s{\"layer\": %" PRId64 ", \"experts\": [", nl++ ? ", " : "", l);
            fprintf(o, "%s%" PRId64, ne > 1 ? ", " : "", e);
        }
        if (ne) fputs("]}", o);
    }
    for (int i = 0; i < s->n_moe; i++) {
        int l = s->moe_layers[i];
        for (int64_t e = 0; e < E; e++) {
            if (!s->counts[(int64_t)i * E + e]) continue;
            if (v->flag[(size_t)l * (size_t)E + (size_t)e]) misses++; else hits++;
        }
    }
    double t = (double)(s->t_end_ns - s->t_begin_ns) / 1e9;
    fprintf(o, "], \"loaded_experts\": %" PRIu64 ", \"loaded_bytes\": %" PRIu64 ", \"hits\": %" PRIu64
            ", \"misses\": %" PRIu64 ", \"resident_experts\": %" PRIu64 ", \"resident_bytes\": %" PRIu64,
            lexp, lbytes, hits, misses, rexp, rbytes);
    if (v->bw > 0 && t > 0) fprintf(o, ", \"moved_bandwidth_utilization\": %.9g", (double)lbytes / t / v->bw);
    fputc('}', o);
    v->steps++;
    v->steps_loading += lbytes > 0 && v->steps > 1;
    v->loaded_experts += lexp; v->loaded_bytes += lbytes; v->hits += hits; v->misses += misses;
    if (rbytes > v->resident_peak) v->resident_peak = rbytes;
    v->resident_sum += (double)rbytes;
    v->time_s += t;
}

static uint64_t all_expert_bytes(const struct mc_model *m)
{
    int elt = m->elt ? m->elt : 4;
    return (uint64_t)m->n_moe_layers * (uint64_t)m->experts * 3u * (uint64_t)m->d * (uint64_t)m->f * (uint64_t)elt;
}

cJSON *mc_offload_json(const struct mc_offload_view *v)
{
    if (!v || !v->n || !v->steps) return NULL;
    cJSON *o = cJSON_CreateObject();
    int dev = 0;
    for (size_t i = 0; i < v->n; i++) dev |= v->ld[i].device >= 0;
    cJSON_AddStringToObject(o, "source", dev ? "host-to-device copies of routed-expert weight-file bytes (device file maps)"
                                             : "reads of routed-expert tensors into host memory (shim FILE_MAP read/pread)");
    cJSON_AddNumberToObject(o, "steps", (double)v->steps);
    cJSON_AddNumberToObject(o, "steps_loading_after_first", (double)v->steps_loading);
    cJSON_AddNumberToObject(o, "loaded_experts", (double)v->loaded_experts);
    cJSON_AddNumberToObject(o, "loaded_bytes", (double)v->loaded_bytes);
    cJSON_AddNumberToObject(o, "loaded_bytes_per_step", (double)v->loaded_bytes / (double)v->steps);
    cJSON_AddNumberToObject(o, "hits", (double)v->hits);
    cJSON_AddNumberToObject(o, "misses", (double)v->misses);
    if (v->hits + v->misses) cJSON_AddNumberToObject(o, "hit_rate", (double)v->hits / (double)(v->hits + v->misses));
    cJSON_AddNumberToObject(o, "resident_bytes_peak", (double)v->resident_peak);
    cJSON_AddNumberToObject(o, "resident_bytes_mean", v->resident_sum / (double)v->steps);
    cJSON_AddNumberToObject(o, "all_routed_expert_bytes", (double)all_expert_bytes(v->m));
    if (v->bw > 0 && v->time_s > 0)
        cJSON_AddNumberToObject(o, "moved_bandwidth_utilization", (double)v->loaded_bytes / v->time_s / v->bw);
    return o;
}

int mc_offload_step_processes(const struct mc_offload_view *v) { return v ? (int)v->n_ends : 0; }

void mc_offload_summary(const struct mc_offload_view *v, uint64_t *steps_loading, uint64_t *bytes_loaded,
                        uint64_t *resident_peak, uint64_t *all_bytes)
{
    *steps_loading = v ? v->steps_loading : 0;
    *bytes_loaded = v ? v->loaded_bytes : 0;
    *resident_peak = v ? v->resident_peak : 0;
    *all_bytes = v ? all_expert_bytes(v->m) : 0;
}
