/* Expert parallelism in `moecap report` (see expert_parallel_view.h). */
#include "report/expert_parallel_view.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct ep_proc { int32_t pid; uint64_t steps, experts, bytes, flops, calls; uint64_t *tokens; };

struct mc_ep_view {
    const struct mc_model *m;
    struct ep_proc p[MC_STEP_MAX_PROCS];
    int n;
    uint64_t steps, comm;
};

struct mc_ep_view *mc_ep_view_new(const struct mc_model *m)
{
    struct mc_ep_view *v = calloc(1, sizeof *v);
    if (v) v->m = m;
    return v;
}

void mc_ep_view_free(struct mc_ep_view *v)
{
    if (!v) return;
    for (int i = 0; i < v->n; i++) free(v->p[i].tokens);
    free(v);
}

static struct ep_proc *proc_of(struct mc_ep_view *v, int32_t pid, size_t cells)
{
    for (int i = 0; i < v->n; i++) if (v->p[i].pid == pid) return &v->p[i];
    if (v->n == MC_STEP_MAX_PROCS) return NULL;
    struct ep_proc *p = &v->p[v->n];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->tokens = calloc(cells ? cells : 1, sizeof *p->tokens);
    if (!p->tokens) return NULL;
    v->n++;
    return p;
}

void mc_ep_view_step(struct mc_ep_view *v, const struct mc_step *s, FILE *o)
{
    if (!v || !s->remote_procs) return;
    size_t cells = (size_t)s->n_moe * (size_t)s->n_experts;
    fprintf(o, ", \"expert_parallel\": {\"comm_bytes\": %" PRIu64 ", \"processes\": [", s->comm_bytes);
    for (int i = 0; i < s->n_procs; i++) {
        const struct mc_step_proc *x = &s->procs[i];
        fprintf(o, "%s{\"pid\": %d, \"activated_experts\": %" PRIu64 ", \"routed_expert_weights\": %" PRIu64
                ", \"flops\": %" PRIu64 ", \"gemm_calls\": %" PRIu64 "}", i ? ", " : "", x->pid, x->experts, x->bytes,
                x->flops, x->calls);
        struct ep_proc *p = proc_of(v, x->pid, cells);
        if (!p) continue;
        p->steps++; p->experts += x->experts; p->bytes += x->bytes; p->flops += x->flops; p->calls += x->calls;
    }
    fputs("]}", o);
    for (size_t c = 0; s->cell_pid && c < cells; c++) {   /* heatmap per process */
        if (!s->counts[c]) continue;
        struct ep_proc *p = proc_of(v, s->cell_pid[c], cells);
        if (p) p->tokens[c] += (uint64_t)s->counts[c];
    }
    v->steps++;
    v->comm += s->comm_bytes;
}

cJSON *mc_ep_view_json(const struct mc_ep_view *v)
{
    if (!v || !v->steps) return NULL;
    const struct mc_model *m = v->m;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "steps", (double)v->steps);
    cJSON_AddNumberToObject(o, "comm_bytes", (double)v->comm);
    cJSON_AddNumberToObject(o, "comm_bytes_per_step", (double)v->comm / (double)v->steps);
    cJSON_AddNumberToObject(o, "processes_used", v->n);
    cJSON *ps = cJSON_AddArrayToObject(o, "processes");
    for (int i = 0; i < v->n; i++) {
        const struct ep_proc *p = &v->p[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "pid", p->pid);
        cJSON_AddNumberToObject(x, "steps", (double)p->steps);
        cJSON_AddNumberToObject(x, "activated_experts", (double)p->experts);
        cJSON_AddNumberToObject(x, "routed_expert_weights", (double)p->bytes);
        cJSON_AddNumberToObject(x, "flops", (double)p->flops);
        cJSON_AddNumberToObject(x, "gemm_calls", (double)p->calls);
        cJSON *h = cJSON_AddArrayToObject(x, "expert_load_tokens");   /* [MoE layer][expert] */
        for (int64_t l = 0; l < m->n_moe_layers; l++) {
            cJSON *row = cJSON_CreateArray();
            for (int64_t e = 0; e < m->experts; e++)
                cJSON_AddItemToArray(row, cJSON_CreateNumber((double)p->tokens[l * m->experts + e]));
            cJSON_AddItemToArray(h, row);
        }
        cJSON_AddItemToArray(ps, x);
    }
    return o;
}
