/* One GEMM record into the stream of its thread (docs/attribution.md §2-4): per-thread
 * stream state, normalisation to tokens x out x in with one weight operand, the layer's
 * attention / FFN phase, and the weight bytes and FLOPs each role adds to the open step;
 * lm_head closes the step (attrib_step.c). */
#include "report/attrib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moecap/trace_facts.h"

/* ---------- streams ---------- */

void attrib_stream_free(struct stream *s)
{
    free(s->counts); free(s->touched); free(s->order_next); free(s->ctx);
    free(s->router_t); free(s->expert_calls); free(s->have_tap); free(s->tap_counts);
    free(s->have_topk); free(s->topk_counts); free(s->cell_pid); free(s);
}

static struct stream *get_stream(struct mc_attrib *a, int32_t pid, int32_t tid)
{
    for (struct stream *s = a->streams; s; s = s->next)
        if (s->pid == pid && s->tid == tid) return s;
    struct stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->pid = pid; s->tid = tid; s->n_moe = a->n_moe;
    size_t n = (size_t)(a->n_moe ? a->n_moe : 1) * (size_t)(a->m->experts ? a->m->experts : 1);
    s->counts = calloc(n, sizeof *s->counts);
    s->touched = calloc(n, sizeof *s->touched);
    size_t nm = (size_t)(a->n_moe ? a->n_moe : 1);
    s->order_next = calloc(nm, sizeof *s->order_next);
    s->router_t = calloc(nm, sizeof *s->router_t);
    s->expert_calls = calloc(nm, sizeof *s->expert_calls);
    s->have_tap = calloc(nm, sizeof *s->have_tap);
    s->tap_counts = calloc(n, sizeof *s->tap_counts);
    s->have_topk = calloc(nm, sizeof *s->have_topk);
    s->topk_counts = calloc(n, sizeof *s->topk_counts);
    s->cell_pid = calloc(n, sizeof *s->cell_pid);
    s->cur_moe = -1;
    s->ctx_exact = 1;
    if (!s->counts || !s->touched || !s->order_next || !s->router_t || !s->expert_calls || !s->have_tap || !s->tap_counts ||
        !s->have_topk || !s->topk_counts || !s->cell_pid) {
        attrib_stream_free(s);
        return NULL;
    }
    s->next = a->streams;
    a->streams = s;
    return s;
}

void attrib_reset_step(struct stream *s)
{
    for (int64_t i = 0; i < s->n_touched; i++) s->counts[s->touched[i]] = 0;
    s->n_touched = 0;
    s->open = 0;
    s->tokens_router = s->tokens_first = 0;
    s->calls = s->unattr = 0;
    s->b_dense = s->b_routed = s->b_shared = 0;
    s->f_gemm = s->f_routed = s->f_unattr = 0;
    s->routers = 0;
    s->shared_calls = s->dense_ffn_calls = 0;
    for (int i = 0; i < s->n_moe; i++) { s->router_t[i] = 0; s->expert_calls[i] = 0; s->have_tap[i] = 0; s->have_topk[i] = 0; }
    s->cur_moe = -1;
    s->phase = PH_ATTN;
    s->in_moe = 0;
    s->n_attn = 0;
    s->n_procs = s->remote_procs = 0;
    s->comm_bytes = 0;
}

void mc_attrib_process(struct mc_attrib *a, int32_t pid, int32_t ppid)
{
    void *p = realloc(a->procs, (a->n_procs + 1) * sizeof *a->procs);
    if (!p) return;
    a->procs = p;
    a->procs[a->n_procs].pid = pid;
    a->procs[a->n_procs++].ppid = ppid;
}

/* Expert parallelism: a process that only computes routed experts (no step of its own on
 * this thread) and whose parent has a step open hands its expert GEMMs to that step. */
static struct stream *expert_owner_step(struct mc_attrib *a, struct stream *s)
{
    if (s->open) return NULL;
    int32_t ppid = -1;
    for (size_t i = 0; i < a->n_procs; i++) if (a->procs[i].pid == s->pid) ppid = a->procs[i].ppid;
    if (ppid < 0) return NULL;
    for (struct stream *x = a->streams; x; x = x->next)
        if (x->pid == ppid && x->open && x->routers > 0) return x;
    return NULL;
}

/* Multi-threaded engines: a thread that never had a step of its own (a helper running some
 * of a step's products, e.g. moe-ref --threads: experts, q/k/v) hands its GEMMs to the one
 * step open on another thread of its process. The step thread issues the step's first
 * product and its lm_head, so the helpers' GEMMs fall inside the step (merged by time). */
static struct stream *helper_owner_step(struct mc_attrib *a, const struct stream *s)
{
    if (s->open || s->steps_done || s->calls) return NULL;
    struct stream *owner = NULL;
    for (struct stream *x = a->streams; x; x = x->next)
        if (x != s && x->pid == s->pid && x->open) {
            if (owner) return NULL;   /* two steps open in the process: no way to tell */
            owner = x;
        }
    return owner;
}

/* A step's per-process account of routed experts (the step's own process first). */
static struct mc_step_proc *step_proc(struct stream *s, int32_t pid)
{
    for (int i = 0; i < s->n_procs; i++) if (s->procs[i].pid == pid) return &s->procs[i];
    if (s->n_procs == MC_STEP_MAX_PROCS) return NULL;
    struct mc_step_proc *p = &s->procs[s->n_procs++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    if (pid != s->pid) s->remote_procs++;
    return p;
}

static void note_unknown(struct mc_attrib *a, int64_t out, int64_t in)
{
    for (int i = 0; i < a->n_unk; i++)
        if (a->unk_out[i] == out && a->unk_in[i] == in) { a->unk_count[i]++; return; }
    if (a->n_unk < 64) {
        a->unk_out[a->n_unk] = out; a->unk_in[a->n_unk] = in; a->unk_count[a->n_unk++] = 1;
    }
}


static int role_is_dense_weight(enum mc_role r)
{
    return r == MC_ROLE_ATTN || r == MC_ROLE_ROUTER || r == MC_ROLE_LM_HEAD || r == MC_ROLE_DENSE_FFN;
}

void mc_attrib_gemm(struct mc_attrib *a, int32_t pid, const struct mc_rec_gemm *g)
{
    const struct mc_model *m = a->m;
    a->st.gemms++;
    struct stream *s = get_stream(a, pid, g->tid);
    if (!s) return;
    struct stream *helped = helper_owner_step(a, s);
    if (helped) { s = helped; a->st.helper_gemms++; }   /* classified and counted in that step */
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0 || g->m > MC_ATTRIB_MAX_DIM ||
        g->n > MC_ATTRIB_MAX_DIM || g->k > MC_ATTRIB_MAX_DIM || g->batch > MC_ATTRIB_MAX_DIM) {
        a->st.unattributed++;   /* corrupt record: count, skip */
        a->st.implausible++;
        return;
    }
    int64_t batch = g->batch > 1 ? g->batch : 1;
    uint64_t flops = 2ull * (uint64_t)g->m * (uint64_t)(g->n > 0 ? g->n : 1) * (uint64_t)g->k * (uint64_t)batch;
    /* Normalise: candidates (tokens, out, in, weight). */
    int64_t tok1, out1, in1, tok2, out2, in2;
    uint64_t w1, w2;
    int dt1, dt2;
    if (mc_api_is_gemv(g->api)) {
        tok1 = tok2 = 1;
        if (g->trans_a == MC_OP_N) { out1 = g->m; in1 = g->k; } else { out1 = g->k; in1 = g->m; }
        out2 = out1; in2 = in1;
        w1 = w2 = g->a; dt1 = dt2 = g->dtype_a;
    } else {
        tok1 = g->m; out1 = g->n; in1 = g->k; w1 = g->b; dt1 = g->dtype_b;   /* Y = X * W^T */
        tok2 = g->n; out2 = g->m; in2 = g->k; w2 = g->a; dt2 = g->dtype_a;   /* Y^T = W * X^T */
    }
    /* Prefer the transposed operand as the weight (frameworks store W as out x in). */
    int prefer2 = !mc_api_is_gemv(g->api) && g->trans_a != MC_OP_N && g->trans_b == MC_OP_N;
    if (!prefer2 && g->trans_a == g->trans_b && g->layout == MC_LAYOUT_COL_MAJOR) prefer2 = 1;
    struct went *w = NULL;
    int64_t tokens;
    int wdt;
    if (prefer2) {
        w = attrib_lookup_weight(a, s, w2, out2, in2, dt2, g->t_begin_ns, g->device >= 0); tokens = tok2; wdt = dt2;
        if (!w) { w = attrib_lookup_weight(a, s, w1, out1, in1, dt1, g->t_begin_ns, g->device >= 0); tokens = tok1; wdt = dt1; }
    } else {
        w = attrib_lookup_weight(a, s, w1, out1, in1, dt1, g->t_begin_ns, g->device >= 0); tokens = tok1; wdt = dt1;
        if (!w) { w = attrib_lookup_weight(a, s, w2, out2, in2, dt2, g->t_begin_ns, g->device >= 0); tokens = tok2; wdt = dt2; }
    }
    int32_t gemm_pid = pid;
    if (w && w->role == MC_ROLE_EXPERT && !s->open) {
        struct stream *owner = expert_owner_step(a, s);
        if (owner) s = owner;   /* accounted in the coordinator's step from here on */
    }
    int remote = s->pid != gemm_pid;
    s->gpu = g->device >= 0;
    if (!remote && !helped) attrib_close_open_end(a, pid, g->tid);
    if (g->t_begin_ns > s->last_t) s->last_t = g->t_begin_ns;
    if (a->n_tw) attrib_retry_topk(a, pid, 0);
    if (!s->open) {
        s->open = 1;
        s->stamp = a->next_stamp++;
        s->t_begin = g->t_begin_ns;
        /* GPU: the step's host work began with its first CUDA call after the previous step
         * (token uploads, embedding launch), before the first (asynchronous) GEMM */
        if (s->gpu && s->pre_begin && s->pre_begin < s->t_begin) s->t_begin = s->pre_begin;
        s->pre_begin = 0;
    }
    if (!remote && (!helped || g->t_end_ns > s->t_end)) s->t_end = g->t_end_ns;
    s->calls++;
    if (a->obs)
        a->obs(a->obs_user, pid, g, w ? (enum mc_role)w->role : MC_ROLE_UNKNOWN, w ? w->layer : -1, w ? w->expert : -1);
    if (!w || w->role == MC_ROLE_UNKNOWN) {
        a->st.unattributed++;
        s->unattr++;
        s->f_unattr += flops;
        note_unknown(a, out1, in1);
        return;
    }
    int elt = mc_dtype_bytes(wdt);
    if (elt && role_is_dense_weight((enum mc_role)w->role)) {
        /* the element size the step's dense weights were read with: norms, embedding rows
         * and the KV cache follow it (moe-ref bf16 on an F32 file reads 2-byte weights) */
        s->elt = elt;
        a->st.weight_elt = !a->st.weight_elt || a->st.weight_elt == elt ? elt : -1;
    }
    elt = mc_model_elt(m, elt);
    uint64_t wbytes = (uint64_t)w->out * (uint64_t)w->in * (uint64_t)elt;
    int first_use = w->stamp != s->stamp;
    w->stamp = s->stamp;
    s->f_gemm += flops;
    enum mc_role role = (enum mc_role)w->role;
    if (role == MC_ROLE_ATTN) {
        if (s->phase == PH_FFN) { s->phase = PH_ATTN; s->in_moe = 0; s->n_attn = 0; }
        if (!s->n_attn) s->attn_fused = m->kv_lora_rank == 0 && w->in == m->d &&
                                        w->out == (m->heads + 2 * m->kv_heads) * m->head_dim;
        s->n_attn++;
        if (!s->tokens_first) s->tokens_first = tokens;
        if (w->attn_out) s->phase = PH_FFN;
    } else if (role == MC_ROLE_ROUTER) {
        s->phase = PH_FFN; s->in_moe = 1; s->sep_gate = 0;
        int ord = w->named && w->layer >= 0 && w->layer < m->layers ? a->moe_ord[w->layer] : s->routers;
        s->cur_moe = ord;
        s->routers++;
        if (ord >= 0 && ord < a->n_moe) {
            s->router_t[ord] = g->t_begin_ns;
            s->have_tap[ord] = (uint8_t)attrib_take_tap(a, pid, g->tid, g->t_begin_ns,
                                                 s->tap_counts + (size_t)ord * (size_t)m->experts);
        }
        if (!s->tokens_router) s->tokens_router = tokens;
    } else if (role == MC_ROLE_DENSE_FFN) {
        s->phase = PH_FFN; s->in_moe = 0;
    } else if (role == MC_ROLE_EXPERT || role == MC_ROLE_SHARED || role == MC_ROLE_SHARED_GATE) {
        s->phase = PH_FFN; s->in_moe = 1;
        if (w->proj == MC_PROJ_GATE || w->proj == MC_PROJ_UP) s->sep_gate = 1;
    }
    if (!s->tokens_first && tokens > 0 && role != MC_ROLE_LM_HEAD) s->tokens_first = tokens;
    switch (role) {
    case MC_ROLE_EXPERT: {
        if (first_use) s->b_routed += wbytes;
        s->f_routed += flops;
        struct mc_step_proc *pp = step_proc(s, gemm_pid);
        if (pp) {
            pp->calls++;
            pp->flops += flops;
            if (first_use) pp->bytes += wbytes;
            if (w->proj == MC_PROJ_DOWN) pp->experts++;   /* one down projection per expert */
        }
        if (remote && w->proj == MC_PROJ_DOWN) s->comm_bytes += 2ull * (uint64_t)tokens * (uint64_t)m->d * (uint64_t)elt;
        int ord = w->layer >= 0 && w->layer < m->layers ? a->moe_ord[w->layer] : s->cur_moe;
        if (ord >= 0 && ord < a->n_moe) s->expert_calls[ord]++;
        if (ord >= 0 && ord < a->n_moe && w->expert >= 0 && w->expert < m->experts) {
            int64_t idx = (int64_t)ord * m->experts + w->expert;
            if (tokens > 0 && !s->counts[idx]) s->touched[s->n_touched++] = (int32_t)idx;
            if (tokens > s->counts[idx]) s->counts[idx] = tokens;
            s->cell_pid[idx] = gemm_pid;
        }
        break;
    }
    case MC_ROLE_SHARED:
        if (first_use) s->b_shared += wbytes;
        s->shared_calls++;
        break;
    case MC_ROLE_DENSE_FFN:
        if (first_use) s->b_dense += wbytes;
        s->dense_ffn_calls++;
        break;
    case MC_ROLE_LM_HEAD:
        if (first_use) s->b_dense += wbytes;
        s->lm_begin = g->t_begin_ns;
        attrib_finish_step(a, s, tokens);
        break;
    default:
        if (first_use) s->b_dense += wbytes;
        break;
    }
}
