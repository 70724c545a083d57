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
 * each product (MUL_MAT_ID: rows = routed (token, slot) pairs) + causal attention.
 *
 * Every record is untrusted: dimensions, counts and positions are range-checked before use
 * (a record that fails is skipped and counted as implausible), products are checked for
 * overflow and sums saturate. The state grows with the records read, never with a number a
 * record states: a step keeps its routing as the non-zero counts its GGML_ROUTE records
 * carried (summed into one layers x experts table only while the step is delivered), and
 * steps and sequences are found through hash tables (no search over all of them). */
#include "report/attrib_ggml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One non-zero count of a routing record (summed into the layers x experts table when the
 * step is delivered). */
struct route_cell { int32_t layer, expert; uint32_t count; };
/* Distinct experts the latest routing of a layer chose in this step (what its MUL_MAT_ID reads). */
struct layer_act { int32_t layer; uint32_t act; };

struct gstep {
    int32_t pid, tid;
    uint64_t id;
    uint64_t t_begin, t_end;
    int64_t tokens, sequences;
    enum mc_step_kind kind;
    struct route_cell *cells;
    size_t n_cells, cap_cells;
    struct layer_act *acts;     /* one entry per routed layer */
    size_t n_acts, cap_acts;
    int64_t *ctx;               /* per sequence, after the step */
    uint64_t att_ctx;           /* Σ over tokens of their causal context */
    uint64_t b_dense, b_routed, b_shared, b_all_extra;
    uint64_t f_gemm, f_routed, f_all_extra;
    uint64_t calls, ubatches;
    char first_w[65];           /* the first weight of a graph: seeing it again = next ubatch */
    int done;
};

struct seqctx { int32_t pid, seq; int64_t ctx; };

/* (pid, 64-bit key) -> index into an array; open addressing, grown at half full. */
struct ix_ent { uint64_t key; int32_t pid; uint32_t used; size_t idx; };
struct index_map { struct ix_ent *e; size_t cap, used; };

struct mc_ggml_attrib {
    const struct mc_model *m;
    mc_step_cb cb;
    void *user;
    struct gstep **steps;
    size_t n, cap;
    struct index_map step_ix;   /* (pid, step id) -> steps[] */
    struct seqctx *sc;
    size_t n_sc, cap_sc;
    struct index_map seq_ix;    /* (pid, sequence id) -> sc[] */
    int *moe_layers;
    int64_t *counts;            /* layers x experts of the step being delivered */
    uint64_t norm_bytes, embd_row_bytes;
    struct mc_ggml_stats st;
};

/* ---------- arithmetic on untrusted sizes ---------- */

/* Step figures saturate at 2^60 (an exabyte, 10^18 FLOPs: no real step comes near): the
 * report adds up to five of them (report_steps.c), which then cannot wrap either. */
#define GG_SAT ((uint64_t)1 << 60)
static uint64_t sat_add(uint64_t a, uint64_t b) { return a >= GG_SAT || b >= GG_SAT - a ? GG_SAT : a + b; }
static uint64_t sat_mul(uint64_t a, uint64_t b) { uint64_t r; return __builtin_mul_overflow(a, b, &r) || r > GG_SAT ? GG_SAT : r; }
/* *r = a x b x c x d; 0 when it overflows */
static int mul4(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t *r)
{
    return !__builtin_mul_overflow(a, b, r) && !__builtin_mul_overflow(*r, c, r) && !__builtin_mul_overflow(*r, d, r);
}

/* ggml dimensions, llama.cpp token counts and positions are 32-bit in practice (n_tokens and
 * llama_pos are int32): negative or larger values mark a corrupt record. */
#define GG_MAX_DIM INT32_MAX
static int dim_ok(int64_t v) { return v >= 0 && v <= GG_MAX_DIM; }

/* ---------- index maps ---------- */

static size_t ix_hash(int32_t pid, uint64_t key)
{
    uint64_t x = key ^ (uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)x;
}

static struct ix_ent *ix_find(const struct index_map *mp, int32_t pid, uint64_t key)
{
    if (!mp->cap) return NULL;
    size_t mask = mp->cap - 1;
    for (size_t h = ix_hash(pid, key) & mask; mp->e[h].used; h = (h + 1) & mask)
        if (mp->e[h].key == key && mp->e[h].pid == pid) return &mp->e[h];
    return NULL;
}

static int ix_put(struct index_map *mp, int32_t pid, uint64_t key, size_t idx)
{
    if ((mp->used + 1) * 2 > mp->cap) {
        size_t nc = mp->cap ? mp->cap * 2 : 64;
        struct ix_ent *ne = calloc(nc, sizeof *ne);
        if (!ne) return -1;
        for (size_t i = 0; i < mp->cap; i++) {
            if (!mp->e[i].used) continue;
            size_t h = ix_hash(mp->e[i].pid, mp->e[i].key) & (nc - 1);
            while (ne[h].used) h = (h + 1) & (nc - 1);
            ne[h] = mp->e[i];
        }
        free(mp->e);
        mp->e = ne; mp->cap = nc;
    }
    size_t h = ix_hash(pid, key) & (mp->cap - 1);
    while (mp->e[h].used) h = (h + 1) & (mp->cap - 1);
    mp->e[h] = (struct ix_ent){ .key = key, .pid = pid, .used = 1, .idx = idx };
    mp->used++;
    return 0;
}

/* arr with room for one more element (grown by doubling; *cap updated), NULL when out of
 * memory (arr is then unchanged and still owned by the caller). */
static void *grow(void *arr, size_t *cap, size_t n, size_t elt, size_t first)
{
    if (n < *cap) return arr;
    size_t nc = *cap ? *cap * 2 : first;
    void *p = realloc(arr, nc * elt);
    if (p) *cap = nc;
    return p;
}

/* ---------- lifetime ---------- */

struct mc_ggml_attrib *mc_ggml_attrib_new(const struct mc_model *m, mc_step_cb cb, void *user)
{
    struct mc_ggml_attrib *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->m = m; a->cb = cb; a->user = user;
    size_t layers = (size_t)(m->layers > 0 ? m->layers : 1), cells = layers * (size_t)(m->experts > 0 ? m->experts : 1);
    a->moe_layers = calloc(layers, sizeof *a->moe_layers);
    a->counts = calloc(cells, sizeof *a->counts);   /* model limits: at most 1024 x 4096 */
    if (!a->moe_layers || !a->counts) { mc_ggml_attrib_free(a); return NULL; }
    for (int64_t l = 0; l < m->layers; l++) a->moe_layers[l] = (int)l;
    /* vectors read by every graph compute (norms) and the embedding row size, from the GGUF
     * table (spans inside the file: their sum is at most its size) */
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct mc_st_tensor *t = &m->tensors[i];
        size_t nl = strlen(t->name);
        uint64_t bytes = t->file_end - t->file_begin;
        if (nl > 12 && !strcmp(t->name + nl - 12, "_norm.weight")) a->norm_bytes = sat_add(a->norm_bytes, bytes);
        else if (!strcmp(t->name, "token_embd.weight") && m->vocab > 0) a->embd_row_bytes = bytes / (uint64_t)m->vocab;
    }
    return a;
}

static void step_free(struct gstep *s)
{
    if (!s) return;
    free(s->cells); free(s->acts); free(s->ctx);
    free(s);
}

void mc_ggml_attrib_free(struct mc_ggml_attrib *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) step_free(a->steps[i]);
    free(a->steps); free(a->sc); free(a->moe_layers); free(a->counts);
    free(a->step_ix.e); free(a->seq_ix.e);
    free(a);
}

static struct gstep *step_get(struct mc_ggml_attrib *a, int32_t pid, uint64_t id)
{
    const struct ix_ent *e = ix_find(&a->step_ix, pid, id);
    if (e) return a->steps[e->idx];
    struct gstep **steps = grow(a->steps, &a->cap, a->n, sizeof *a->steps, 64);
    if (!steps) return NULL;
    a->steps = steps;
    struct gstep *s = calloc(1, sizeof *s);
    if (!s || ix_put(&a->step_ix, pid, id, a->n) != 0) { free(s); return NULL; }
    s->pid = pid; s->id = id;
    a->steps[a->n++] = s;
    return s;
}

/* Layer number of a weight named "blk.<layer>.…", -1 when it has none or it is not a number
 * that fits (a name like "blk.4294967296." must not wrap to layer 0). */
static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4)) return -1;
    long v = 0;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > MC_MODEL_MAX_LAYERS) return -1;
    }
    return *p == '.' ? (int)v : -1;
}

/* ---------- records ---------- */

static void on_route(struct mc_ggml_attrib *a, int32_t pid, const struct mc_rec_ggml_route *r, const void *var, size_t len)
{
    const struct mc_model *m = a->m;
    a->st.routes++;
    if (!r->step_id) { a->st.outside_decode++; return; }
    a->st.invalid_ids += (uint64_t)(r->invalid > 0 ? r->invalid : 0);
    if (r->layer < 0 || r->layer >= m->layers) { a->st.bad_layers++; return; }
    struct gstep *s = step_get(a, pid, r->step_id);
    if (!s) return;
    size_t n = len / 4;
    uint32_t act = 0;
    for (size_t e = 0; e < n; e++) {
        uint32_t c;
        memcpy(&c, (const char *)var + 4 * e, 4);
        if (!c) continue;
        if ((int64_t)e >= m->experts) { a->st.invalid_ids += c; continue; }
        struct route_cell *cells = grow(s->cells, &s->cap_cells, s->n_cells, sizeof *s->cells, 16);
        if (!cells) return;
        s->cells = cells;
        s->cells[s->n_cells++] = (struct route_cell){ .layer = r->layer, .expert = (int32_t)e, .count = c };
        act++;
    }
    /* the layer's latest routing in this step: what its expert products read */
    size_t i = s->n_acts;
    while (i-- > 0 && s->acts[i].layer != r->layer) {}
    if (i == (size_t)-1) {
        struct layer_act *acts = grow(s->acts, &s->cap_acts, s->n_acts, sizeof *s->acts, 8);
        if (!acts) return;
        s->acts = acts;
        i = s->n_acts++;
    }
    s->acts[i] = (struct layer_act){ .layer = r->layer, .act = act };
}

static const struct layer_act *layer_act(const struct gstep *s, int layer)
{
    for (size_t i = s->n_acts; i-- > 0;)   /* the products follow their layer's routing */
        if (s->acts[i].layer == layer) return &s->acts[i];
    return NULL;
}

static int matmul_plausible(const struct mc_rec_ggml_matmul *x)
{
    if (x->op != MC_GGML_MUL_MAT && x->op != MC_GGML_MUL_MAT_ID) return 0;
    for (int i = 0; i < 4; i++)
        if (!dim_ok(x->w_ne[i]) || !dim_ok(x->x_ne[i])) return 0;
    return x->op == MC_GGML_MUL_MAT || (dim_ok(x->ids_k) && dim_ok(x->ids_rows));
}

static void on_matmul(struct mc_ggml_attrib *a, int32_t pid, const struct mc_rec_ggml_matmul *x)
{
    a->st.matmuls++;
    if (!x->step_id) { a->st.outside_decode++; return; }
    uint64_t in = (uint64_t)x->w_ne[0], out = (uint64_t)x->w_ne[1];
    /* FLOPs and bytes of the product, every product checked before anything is counted */
    uint64_t f, f_all = 0, b_all = 0, bytes = 0, rows = 0;
    int ok = matmul_plausible(x);
    if (ok && x->op == MC_GGML_MUL_MAT_ID)
        ok = mul4(2, in, out, (uint64_t)x->ids_rows * (uint64_t)x->ids_k, &f) &&
             mul4(2, in, out, (uint64_t)x->ids_rows * (uint64_t)x->w_ne[2], &f_all) &&
             !__builtin_mul_overflow(x->w_nb[2], (uint64_t)x->w_ne[2], &b_all);
    else if (ok) {
        rows = (uint64_t)x->x_ne[1] * (uint64_t)x->x_ne[2];
        ok = !__builtin_mul_overflow(rows, (uint64_t)x->x_ne[3], &rows) && mul4(2, in, out, rows, &f) &&
             !__builtin_mul_overflow(x->w_nb[3], (uint64_t)x->w_ne[3], &bytes);   /* the whole weight (contiguous) */
    }
    if (!ok) { a->st.implausible++; return; }
    struct gstep *s = step_get(a, pid, x->step_id);
    if (!s) return;
    char name[65];
    memcpy(name, x->w_name, 64);
    name[64] = 0;
    if (!s->first_w[0]) memcpy(s->first_w, name, sizeof s->first_w);
    if (!strcmp(s->first_w, name)) s->ubatches++;
    s->calls++;
    if (x->op == MC_GGML_MUL_MAT_ID) {
        s->f_gemm = sat_add(s->f_gemm, f); s->f_routed = sat_add(s->f_routed, f);
        s->f_all_extra = sat_add(s->f_all_extra, f_all);
        s->b_all_extra = sat_add(s->b_all_extra, b_all);
        const struct layer_act *la = layer_act(s, layer_of(name));
        if (!la) { a->st.routes_missing++; return; }
        s->b_routed = sat_add(s->b_routed, sat_mul(la->act, x->w_nb[2]));
        return;
    }
    if (!rows) return;   /* e.g. the last layer's FFN in a ubatch without output rows: nothing read */
    s->f_gemm = sat_add(s->f_gemm, f);
    if (strstr(name, "_shexp.weight") && !strstr(name, "gate_inp_shexp")) s->b_shared = sat_add(s->b_shared, bytes);
    else s->b_dense = sat_add(s->b_dense, bytes);
}

static int64_t *seq_ctx(struct mc_ggml_attrib *a, int32_t pid, int32_t seq)
{
    const struct ix_ent *e = ix_find(&a->seq_ix, pid, (uint64_t)(uint32_t)seq);
    if (e) return &a->sc[e->idx].ctx;
    struct seqctx *sc = grow(a->sc, &a->cap_sc, a->n_sc, sizeof *a->sc, 16);
    if (!sc) return NULL;
    a->sc = sc;
    if (ix_put(&a->seq_ix, pid, (uint64_t)(uint32_t)seq, a->n_sc) != 0) return NULL;
    a->sc[a->n_sc] = (struct seqctx){ .pid = pid, .seq = seq, .ctx = 0 };
    return &a->sc[a->n_sc++].ctx;
}

/* A batch's per-sequence entry is plausible when its tokens and first position (-1: continue
 * the sequence) are, and its positions stay within llama_pos. */
static int seq_plausible(const struct mc_llama_seq *q)
{
    return q->tokens >= 0 && q->pos_first >= -1 && (int64_t)q->pos_first + q->tokens <= (int64_t)GG_MAX_DIM + 1;
}

static void on_batch(struct mc_ggml_attrib *a, int32_t pid, const struct mc_rec_llama_batch *b, const void *var, size_t len)
{
    a->st.batches++;
    if (b->result != 0) { a->st.failed_batches++; return; }
    size_t n = len / sizeof(struct mc_llama_seq);
    int ok = dim_ok(b->tokens) && b->t_end_ns >= b->t_begin_ns;
    for (size_t i = 0; i < n && ok; i++) {
        struct mc_llama_seq q;
        memcpy(&q, (const char *)var + i * sizeof q, sizeof q);
        ok = seq_plausible(&q);
    }
    struct gstep *s = ok ? step_get(a, pid, b->step_id) : NULL;
    if (s && s->done) ok = 0;   /* one llama_decode call, one record */
    if (!ok) { a->st.implausible++; return; }
    if (!s || !(s->ctx = calloc(n ? n : 1, sizeof *s->ctx))) return;
    s->tid = b->tid;
    s->t_begin = b->t_begin_ns; s->t_end = b->t_end_ns;
    s->tokens = b->tokens;
    s->sequences = (int64_t)n;
    int prefill = 0, decode = 0;
    for (size_t i = 0; i < n; i++) {
        struct mc_llama_seq q;
        memcpy(&q, (const char *)var + i * sizeof q, sizeof q);
        int64_t *c = seq_ctx(a, pid, q.seq_id);
        if (!c) continue;
        int64_t first = q.pos_first >= 0 ? q.pos_first : *c;   /* positions left to llama.cpp: continue the sequence */
        int64_t nt = q.tokens;
        if (first + nt > (int64_t)GG_MAX_DIM + 1) { a->st.implausible++; s->ctx[i] = *c; continue; }
        /* Σ_{p=first}^{first+nt-1} (p + 1): below 2^63 with first, nt <= 2^31 */
        uint64_t u = (uint64_t)nt, f1 = (uint64_t)first + 1;
        s->att_ctx = sat_add(s->att_ctx, u * f1 + u * (u - (u > 0)) / 2);
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

/* ---------- delivery ---------- */

static int by_begin(const void *x, const void *y)
{
    const struct gstep *a = *(struct gstep *const *)x, *b = *(struct gstep *const *)y;
    if (a->t_begin != b->t_begin) return a->t_begin < b->t_begin ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

void mc_ggml_attrib_finish(struct mc_ggml_attrib *a)
{
    const struct mc_model *m = a->m;
    if (a->n) qsort(a->steps, a->n, sizeof *a->steps, by_begin);
    /* model dimensions are at most 2^24 and layers 1024 (model limits): no overflow here */
    uint64_t kv_tok = (uint64_t)mc_model_kv_elems_per_token(m) * MC_GGML_KV_ELT * (uint64_t)m->layers;
    uint64_t att_per_ctx = (uint64_t)m->layers * 2ull * (uint64_t)m->heads * 2ull * (uint64_t)m->head_dim;
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
        st.bytes_dense = sat_add(sat_add(s->b_dense, sat_mul(s->ubatches, a->norm_bytes)),
                                 sat_mul((uint64_t)s->tokens, a->embd_row_bytes));
        st.bytes_routed = s->b_routed;
        st.bytes_shared = s->b_shared;
        uint64_t ctx_sum = 0;
        for (int64_t q = 0; q < s->sequences; q++) ctx_sum = sat_add(ctx_sum, (uint64_t)s->ctx[q]);
        st.kv_read = sat_mul(ctx_sum, kv_tok);
        st.kv_written = sat_mul((uint64_t)s->tokens, kv_tok);
        st.flops_attention = sat_mul(att_per_ctx, s->att_ctx);
        st.flops_gemm = s->f_gemm;
        st.flops_routed = s->f_routed;
        st.bytes_all_experts = sat_add(sat_add(sat_add(st.bytes_dense, st.bytes_shared), sat_add(st.kv_read, st.kv_written)),
                                       s->b_all_extra);
        st.flops_all_experts = sat_add(sat_add(st.flops_gemm - st.flops_routed, st.flops_attention), s->f_all_extra);
        if (st.bytes_all_experts == GG_SAT || st.flops_all_experts == GG_SAT || st.bytes_dense == GG_SAT ||
            st.bytes_routed == GG_SAT || st.flops_gemm == GG_SAT) a->st.saturated++;
        /* the step's routing as the layers x experts table, cleared again after the callback */
        int64_t act = 0;
        for (size_t c = 0; c < s->n_cells; c++) {
            int64_t *cell = &a->counts[(size_t)s->cells[c].layer * (size_t)m->experts + (size_t)s->cells[c].expert];
            act += *cell == 0;
            *cell += s->cells[c].count;
        }
        st.activated = act;
        st.n_moe = (int)m->layers;
        st.moe_layers = a->moe_layers;
        st.counts = a->counts;
        st.n_experts = m->experts;
        st.context = s->ctx;
        st.n_context = s->sequences;
        st.context_exact = 1;
        st.layers_seen = (int)m->layers;
        st.elt = m->elt ? m->elt : 4;
        a->st.ubatches += s->ubatches;
        a->cb(&st, a->user);
        for (size_t c = 0; c < s->n_cells; c++)
            a->counts[(size_t)s->cells[c].layer * (size_t)m->experts + (size_t)s->cells[c].expert] = 0;
    }
}

void mc_ggml_attrib_stats(const struct mc_ggml_attrib *a, struct mc_ggml_stats *st) { *st = a->st; }
