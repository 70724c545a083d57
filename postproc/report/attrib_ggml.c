/* llama.cpp steps from the ggml adapter's records (attrib_ggml.h). Records of one
 * llama_decode call share its step id and come from the thread that ran it, in order: for
 * each graph compute (ubatch), per MoE layer its routing (GGML_ROUTE) before the expert
 * products that use it (GGML_MATMUL, MUL_MAT_ID), then the call's LLAMA_BATCH record.
 *
 * Per step: bytes = every weight product's weight bytes, per graph compute (a step split in
 * ubatches streams its weights once per ubatch): MUL_MAT the weight's full size (none when it
 * has no rows to multiply), MUL_MAT_ID
 * the distinct experts the ubatch's routing chose x bytes per expert (nb[2], quantized blocks
 * included); + the norm vectors once per graph compute; + the embedding rows of the step's
 * tokens; + KV (contexts from the batch positions, F16 cache). FLOPs = 2 x in x out x rows of
 * each product (MUL_MAT_ID: rows = routed (token, slot) pairs) + causal attention. */
#include "report/attrib_ggml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gstep {
    int32_t pid, tid;
    uint64_t id;
    uint64_t t_begin, t_end;
    int64_t tokens, sequences;
    enum mc_step_kind kind;
    int64_t *counts;            /* layers x E, summed over ubatches */
    int64_t *cur;               /* layers x E, the current ubatch's routing per layer */
    uint8_t *have_cur;
    int64_t *ctx;               /* per sequence, after the step */
    uint64_t att_ctx;           /* Σ over tokens of their causal context */
    uint64_t b_dense, b_routed, b_shared, b_all_extra;
    uint64_t f_gemm, f_routed, f_all_extra;
    uint64_t calls, ubatches;
    char first_w[65];           /* the first weight of a graph: seeing it again = next ubatch */
    int done;
};

struct seqctx { int32_t pid, seq; int64_t ctx; };

struct mc_ggml_attrib {
    const struct mc_model *m;
    mc_step_cb cb;
    void *user;
    struct gstep **steps;
    size_t n, cap;
    struct seqctx *sc;
    size_t n_sc, cap_sc;
    int *moe_layers;
    uint64_t norm_bytes, embd_row_bytes;
    struct mc_ggml_stats st;
};

struct mc_ggml_attrib *mc_ggml_attrib_new(const struct mc_model *m, mc_step_cb cb, void *user)
{
    struct mc_ggml_attrib *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->m = m; a->cb = cb; a->user = user;
    a->moe_layers = calloc((size_t)(m->layers > 0 ? m->layers : 1), sizeof *a->moe_layers);
    if (!a->moe_layers) { free(a); return NULL; }
    for (int64_t l = 0; l < m->layers; l++) a->moe_layers[l] = (int)l;
    /* vectors read by every graph compute (norms) and the embedding row size, from the GGUF table */
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct mc_st_tensor *t = &m->tensors[i];
        size_t nl = strlen(t->name);
        uint64_t bytes = t->file_end - t->file_begin;
        if (nl > 12 && !strcmp(t->name + nl - 12, "_norm.weight")) a->norm_bytes += bytes;
        else if (!strcmp(t->name, "token_embd.weight") && m->vocab > 0) a->embd_row_bytes = bytes / (uint64_t)m->vocab;
    }
    return a;
}

static void step_free(struct gstep *s)
{
    if (!s) return;
    free(s->counts); free(s->cur); free(s->have_cur); free(s->ctx);
    free(s);
}

void mc_ggml_attrib_free(struct mc_ggml_attrib *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) step_free(a->steps[i]);
    free(a->steps); free(a->sc); free(a->moe_layers);
    free(a);
}

static struct gstep *step_get(struct mc_ggml_attrib *a, int32_t pid, uint64_t id)
{
    for (size_t i = a->n; i-- > 0;)   /* the open step is almost always the last one */
        if (a->steps[i]->id == id && a->steps[i]->pid == pid) return a->steps[i];
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        void *p = realloc(a->steps, nc * sizeof *a->steps);
        if (!p) return NULL;
        a->steps = p; a->cap = nc;
    }
    size_t cells = (size_t)a->m->layers * (size_t)a->m->experts;
    struct gstep *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->counts = calloc(cells ? cells : 1, sizeof *s->counts);
    s->cur = calloc(cells ? cells : 1, sizeof *s->cur);
    s->have_cur = calloc((size_t)(a->m->layers > 0 ? a->m->layers : 1), 1);
    if (!s->counts || !s->cur || !s->have_cur) { step_free(s); return NULL; }
    s->pid = pid; s->id = id;
    a->steps[a->n++] = s;
    return s;
}

static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4)) return -1;
    return atoi(name + 4);
}

static void on_route(struct mc_ggml_attrib *a, int32_t pid, const struct mc_rec_ggml_route *r, const void *var, size_t len)
{
    const struct mc_model *m = a->m;
    a->st.routes++;
    if (!r->step_id) { a->st.outside_decode++; return; }
    a->st.invalid_ids += (uint64_t)(r->invalid > 0 ? r->invalid : 0);
    if (r->layer < 0 || r->layer >= m->layers) { a->st.bad_layers++; return; }
    struct gstep *s = step_get(a, pid, r->step_id);
    if (!s) return;
    int64_t *cur = s->cur + (size_t)r->layer * (size_t)m->experts;
    memset(cur, 0, (size_t)m->experts * sizeof *cur);
    size_t n = len / 4;
    for (size_t e = 0; e < n; e++) {
        uint32_t c;
        memcpy(&c, (const char *)var + 4 * e, 4);
        if ((int64_t)e < m->experts) cur[e] = c;
        else if (c) a->st.invalid_ids += c;
    }
    int64_t *tot = s->counts + (size_t)r->layer * (size_t)m->experts;
    for (int64_t e = 0; e < m->experts; e++) tot[e] += cur[e];
    s->have_cur[r->layer] = 1;
}

static void on_matmul(struct mc_ggml_attrib *a, int32_t pid, const struct mc_rec_ggml_matmul *x)
{
    const struct mc_model *m = a->m;
    a->st.matmuls++;
    if (!x->step_id) { a->st.outside_decode++; return; }
    struct gstep *s = step_get(a, pid, x->step_id);
    if (!s) return;
    char name[65];
    memcpy(name, x->w_name, 64);
    name[64] = 0;
    if (!s->first_w[0]) memcpy(s->first_w, name, sizeof s->first_w);
    if (!strcmp(s->first_w, name)) s->ubatches++;
    s->calls++;
    uint64_t in = (uint64_t)x->w_ne[0], out = (uint64_t)x->w_ne[1];
    if (x->op == MC_GGML_MUL_MAT_ID) {
        uint64_t pairs = (uint64_t)x->ids_rows * (uint64_t)x->ids_k;
        uint64_t f = 2ull * in * out * pairs;
        s->f_gemm += f; s->f_routed += f;
        s->f_all_extra += 2ull * in * out * (uint64_t)x->ids_rows * (uint64_t)x->w_ne[2];
        s->b_all_extra += x->w_nb[2] * (uint64_t)x->w_ne[2];
        int l = layer_of(name);
        if (l < 0 || l >= m->layers || !s->have_cur[l]) { a->st.routes_missing++; return; }
        const int64_t *cur = s->cur + (size_t)l * (size_t)m->experts;
        uint64_t act = 0;
        for (int64_t e = 0; e < m->experts; e++) act += cur[e] > 0;
        s->b_routed += act * x->w_nb[2];
        return;
    }
    uint64_t rows = (uint64_t)x->x_ne[1] * (uint64_t)x->x_ne[2] * (uint64_t)x->x_ne[3];
    if (!rows) return;   /* e.g. the last layer's FFN in a ubatch without output rows: nothing read */
    s->f_gemm += 2ull * in * out * rows;
    uint64_t bytes = x->w_nb[3] * (uint64_t)x->w_ne[3];   /* the whole weight (contiguous: nb[3] x ne[3]) */
    if (strstr(name, "_shexp.weight") && !strstr(name, "gate_inp_shexp")) s->b_shared += bytes;
    else s->b_dense += bytes;
}

static int64_t *seq_ctx(struct mc_ggml_attrib *a, int32_t pid, int32_t seq)
{
    for (size_t i = 0; i < a->n_sc; i++) if (a->sc[i].pid == pid && a->sc[i].seq == seq) return &a->sc[i].ctx;
    if (a->n_sc == a->cap_sc) {
        size_t nc = a->cap_sc ? a->cap_sc * 2 : 16;
        void *p = realloc(a->sc, nc * sizeof *a->sc);
        if (!p) return NULL;
        a->sc = p; a->cap_sc = nc;
    }
    a->sc[a->n_sc] = (struct seqctx){ .pid = pid, .seq = seq, .ctx = 0 };
    return &a->sc[a->n_sc++].ctx;
}

static void on_batch(struct mc_ggml_attrib *a, int32_t pid, const struct mc_rec_llama_batch *b, const void *var, size_t len)
{
    a->st.batches++;
    if (b->result != 0) { a->st.failed_batches++; return; }
    struct gstep *s = step_get(a, pid, b->step_id);
    if (!s) return;
    s->tid = b->tid;
    s->t_begin = b->t_begin_ns; s->t_end = b->t_end_ns;
    s->tokens = b->tokens;
    size_t n = len / sizeof(struct mc_llama_seq);
    s->sequences = (int64_t)n;
    s->ctx = calloc(n ? n : 1, sizeof *s->ctx);
    int prefill = 0, decode = 0;
    for (size_t i = 0; i < n && s->ctx; i++) {
        struct mc_llama_seq q;
        memcpy(&q, (const char *)var + i * sizeof q, sizeof q);
        int64_t *c = seq_ctx(a, pid, q.seq_id);
        if (!c) continue;
        int64_t first = q.pos_first >= 0 ? q.pos_first : *c;   /* positions left to llama.cpp: continue the sequence */
        int64_t nt = q.tokens;
        /* Σ_{p=first}^{first+nt-1} (p + 1) */
        s->att_ctx += (uint64_t)(nt * (first + 1) + nt * (nt - 1) / 2);
        *c = first + nt;
        s->ctx[i] = *c;
        if (nt == 1 && first > 0) decode = 1; else prefill = 1;
    }
    s->kind = prefill && decode ? MC_STEP_MIXED : prefill ? MC_STEP_PREFILL : MC_STEP_DECODE;
    s->done = 1;
}

void mc_ggml_attrib_record(struct mc_ggml_attrib *a, int32_t pid, const struct mc_trace_rec *rec)
{
    switch (rec->type) {
    case MC_REC_LLAMA_BATCH: on_batch(a, pid, &rec->u.llama_batch, rec->var, rec->var_len); break;
    case MC_REC_GGML_ROUTE: on_route(a, pid, &rec->u.ggml_route, rec->var, rec->var_len); break;
    case MC_REC_GGML_MATMUL: on_matmul(a, pid, &rec->u.ggml_matmul); break;
    default: break;
    }
}

static int by_begin(const void *x, const void *y)
{
    const struct gstep *a = *(struct gstep *const *)x, *b = *(struct gstep *const *)y;
    if (a->t_begin != b->t_begin) return a->t_begin < b->t_begin ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

void mc_ggml_attrib_finish(struct mc_ggml_attrib *a)
{
    const struct mc_model *m = a->m;
    qsort(a->steps, a->n, sizeof *a->steps, by_begin);
    uint64_t kv_tok = (uint64_t)mc_model_kv_elems_per_token(m) * MC_GGML_KV_ELT * (uint64_t)m->layers;
    uint64_t hd = (uint64_t)m->head_dim;
    for (size_t i = 0; i < a->n; i++) {
        struct gstep *s = a->steps[i];
        if (!s->done || !s->calls) continue;   /* no llama_decode record, or nothing computed */
        struct mc_step st;
        memset(&st, 0, sizeof st);
        st.index = a->st.steps++;
        st.pid = s->pid; st.tid = s->tid;
        st.kind = s->kind;
        st.tokens = s->tokens; st.sequences = s->sequences;
        st.t_begin_ns = s->t_begin; st.t_end_ns = s->t_end;
        st.gemm_calls = s->calls;
        st.bytes_dense = s->b_dense + s->ubatches * a->norm_bytes + (uint64_t)s->tokens * a->embd_row_bytes;
        st.bytes_routed = s->b_routed;
        st.bytes_shared = s->b_shared;
        uint64_t ctx_sum = 0;
        for (int64_t q = 0; q < s->sequences; q++) ctx_sum += (uint64_t)s->ctx[q];
        st.kv_read = ctx_sum * kv_tok;
        st.kv_written = (uint64_t)s->tokens * kv_tok;
        st.flops_attention = (uint64_t)m->layers * 2ull * (uint64_t)m->heads * (hd + hd) * s->att_ctx;
        st.flops_gemm = s->f_gemm;
        st.flops_routed = s->f_routed;
        st.bytes_all_experts = st.bytes_dense + st.bytes_shared + st.kv_read + st.kv_written + s->b_all_extra;
        st.flops_all_experts = st.flops_gemm - st.flops_routed + st.flops_attention + s->f_all_extra;
        int64_t act = 0;
        size_t cells = (size_t)m->layers * (size_t)m->experts;
        for (size_t c = 0; c < cells; c++) act += s->counts[c] > 0;
        st.activated = act;
        st.n_moe = (int)m->layers;
        st.moe_layers = a->moe_layers;
        st.counts = s->counts;
        st.n_experts = m->experts;
        st.context = s->ctx;
        st.n_context = s->sequences;
        st.context_exact = 1;
        st.layers_seen = (int)m->layers;
        st.elt = m->elt ? m->elt : 4;
        a->st.ubatches += s->ubatches;
        a->cb(&st, a->user);
    }
}

void mc_ggml_attrib_stats(const struct mc_ggml_attrib *a, struct mc_ggml_stats *st) { *st = a->st; }
