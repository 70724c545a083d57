/* Closing a forward step at its lm_head (docs/attribution.md §5): step kind (prefill /
 * decode / mixed), per-sequence contexts, KV bytes, attention FLOPs, the step's totals,
 * fused layers' taps applied, then delivery (attrib_pending.c). */
#include "report/attrib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A step with T > B tokens and more sequences than are running: either the running ones
 * decode and newcomers join (mixed), or the running ones have finished and B new sequences
 * prefill. Prefer the reading whose per-newcomer prompt length is a whole number equal to the
 * last prompt length seen (servers benchmarked with fixed prompt lengths); otherwise mixed. */
static int mixed_more_likely(const struct stream *s, int64_t T, int64_t B)
{
    int64_t nnew = B - s->nctx, rest = T - s->nctx;
    int mixed_fits = nnew > 0 && rest >= nnew && rest % nnew == 0 && (!s->plen || rest / nnew == s->plen);
    int prefill_fits = B > 0 && T % B == 0 && (!s->plen || T / B == s->plen);
    if (prefill_fits && !mixed_fits) return 0;
    return 1;
}

/* With a known prompt length P > 1, a step of T > B tokens read as r running sequences
 * decoding plus B - r newcomers of P tokens each has T = r + (B - r) * P, so r = (P*B - T) /
 * (P - 1) — one reading at most. r = 0 is a prefill of newcomers only; 0 < r < B a mixed step
 * (when r is below the running count, the oldest ones finished, as in decode steps). Returns r,
 * or -1 when no such reading exists. */
static int64_t running_in_step(const struct stream *s, int64_t T, int64_t B)
{
    int64_t P = s->plen;
    if (P <= 1 || T <= B || B <= 0 || P * B < T || (P * B - T) % (P - 1)) return -1;
    int64_t r = (P * B - T) / (P - 1);
    return r < B && r <= s->nctx ? r : -1;
}

/* Room for n per-sequence contexts; n <= 2 * MC_ATTRIB_MAX_SEQUENCES (callers bound it), so
 * the size computation cannot overflow. */
static int ctx_reserve(struct stream *s, int64_t n)
{
    if (n <= s->ctx_cap) return 0;
    if (n < 0 || n > 2 * (int64_t)MC_ATTRIB_MAX_SEQUENCES) return -1;
    int64_t nc = n < 16 ? 16 : n * 2;
    void *p = realloc(s->ctx, (size_t)nc * sizeof *s->ctx);
    if (!p) return -1;
    s->ctx = p; s->ctx_cap = nc;
    return 0;
}

/* Causal attention context of a sequence's n new tokens: 1 + 2 + ... + n (n <= 2^31: GEMM
 * dimensions are bounded, so the product fits). */
static uint64_t triangle(int64_t n)
{
    uint64_t u = n > 0 ? (uint64_t)n : 0;
    return u % 2 ? u * ((u + 1) / 2) : (u / 2) * (u + 1);
}

/* Close the step at lm_head: kinds, contexts, KV bytes, attention FLOPs, callback. */
void attrib_finish_step(struct mc_attrib *a, struct stream *s, int64_t sequences)
{
    if (sequences > MC_ATTRIB_MAX_SEQUENCES) {   /* no real batch: a corrupt record, not a step */
        a->st.implausible++;
        attrib_reset_step(s);
        return;
    }
    const struct mc_model *m = a->m;
    int64_t T = s->tokens_router ? s->tokens_router : s->tokens_first;
    if (T <= 0) T = sequences;
    int64_t B = sequences;
    int elt = mc_model_elt(m, s->elt);
    struct mc_step st;
    memset(&st, 0, sizeof st);
    enum mc_step_kind kind;
    /* MoE layers whose experts ran in a fused kernel (router, no expert GEMM): the taps. A
     * kernel-parameter (top-k) tap holds the kernel's own choice and wins; a router-logit tap
     * of the same layer is compared with it. */
    int n_need = 0;
    int64_t tapped_act = 0;
    for (int i = 0; i < a->n_moe; i++) {
        size_t base = (size_t)i * (size_t)m->experts;
        if (s->have_topk[i] && s->expert_calls[i])   /* experts ran as GEMMs too: check the tap */
            attrib_compare_counts(a, s->topk_counts + base, s->counts + base, 0);
        if (!s->router_t[i] || s->expert_calls[i]) continue;
        if (s->have_topk[i]) {
            if (s->have_tap[i]) attrib_compare_counts(a, s->tap_counts + base, s->topk_counts + base, 1);
            attrib_apply_tap(m, s->topk_counts + base, s->counts, s->touched, &s->n_touched,
                      &tapped_act, &s->b_routed, &s->f_routed, &s->f_gemm, (int64_t)base, elt);
            a->st.topk_used++;
        } else if (s->have_tap[i] && !a->topk_any)
            attrib_apply_tap(m, s->tap_counts + base, s->counts, s->touched, &s->n_touched,
                      &tapped_act, &s->b_routed, &s->f_routed, &s->f_gemm, (int64_t)base, elt);
        else
            n_need++;
    }
    /* attention work: Σ over the step's tokens of their causal context (pos + 1) */
    uint64_t att_ctx = 0;
    /* The running sequences are kept oldest first. A step holds either all of them (decode,
     * mixed) or only new ones (prefill): a server may prefill newcomers in steps of their own
     * while others wait for the next decode step. */
    int64_t first = 0;    /* the step's sequences are ctx[first .. first + B) */
    if (s->nctx > (1 << 16)) {   /* bound the state: forget the oldest */
        int64_t drop = s->nctx - (1 << 16);
        memmove(s->ctx, s->ctx + drop, (size_t)(s->nctx - drop) * sizeof *s->ctx);
        s->nctx -= drop;
    }
    if (ctx_reserve(s, s->nctx + B) != 0) B = 0;
    int64_t keep = T > B ? running_in_step(s, T, B) : -1;
    if (keep > 0 && keep < s->nctx) {
        /* a mixed step with fewer running sequences than we count: the oldest finished
         * (continuous batching retires and admits in one iteration, e.g. moe-ref serve --mixed) */
        int64_t drop = s->nctx - keep;
        for (int64_t i = drop + 1; i < s->nctx; i++) if (s->ctx[i] != s->ctx[drop]) s->ctx_exact = 0;
        memmove(s->ctx, s->ctx + drop, (size_t)keep * sizeof *s->ctx);
        s->nctx = keep;
    }
    if (T == B) {
        /* every sequence brings one token: decode (also when new one-token sequences join) */
        kind = MC_STEP_DECODE;
        if (s->nctx > B) {
            /* some sequences finished and we cannot tell which: assume the oldest (they
             * joined first; with equal generation budgets they finish first) */
            int64_t drop = s->nctx - B;
            for (int64_t i = drop + 1; i < s->nctx; i++) if (s->ctx[i] != s->ctx[drop]) s->ctx_exact = 0;
            memmove(s->ctx, s->ctx + drop, (size_t)B * sizeof *s->ctx);
            s->nctx = B;
        }
        for (int64_t i = s->nctx; i < B; i++) s->ctx[i] = 0;
        s->nctx = B;
        for (int64_t i = 0; i < B; i++) { s->ctx[i] += 1; att_ctx += (uint64_t)s->ctx[i]; }
    } else if (keep > 0 || (keep < 0 && s->nctx > 0 && B > s->nctx && mixed_more_likely(s, T, B))) {
        /* more sequences than running and more tokens than sequences: the running ones
         * decode one token each and the new ones (appended after them) share the rest —
         * continuous batching's mixed step. The split among the new ones is assumed even. */
        kind = MC_STEP_MIXED;
        int64_t old = s->nctx, nnew = B - old, rest = T - old;
        for (int64_t i = 0; i < old; i++) { s->ctx[i] += 1; att_ctx += (uint64_t)s->ctx[i]; }
        if (rest < nnew) { rest = nnew; s->ctx_exact = 0; }
        if (rest % nnew) s->ctx_exact = 0;
        for (int64_t i = 0; i < nnew; i++) {
            int64_t n = rest / nnew + (i < rest % nnew);
            s->ctx[old + i] = n;
            att_ctx += triangle(n);
        }
        if (rest % nnew == 0) s->plen = rest / nnew;
        s->nctx = B;
    } else {
        /* tokens > sequences: a prefill of new sequences, appended to the running ones (those
         * that finished leave at the next decode step). The split of T among them is not in
         * the trace: the most even one is assumed (exact for equal prompt lengths). */
        kind = MC_STEP_PREFILL;
        s->ctx_exact = (B > 0 && T % B == 0);
        if (B > 0 && T % B == 0) s->plen = T / B;
        first = s->nctx;
        for (int64_t i = 0; i < B; i++) {
            int64_t n = T / B + (i < T % B);
            s->ctx[first + i] = n;
            att_ctx += triangle(n);
        }
        s->nctx = first + B;
    }
    uint64_t ctx_sum = 0;
    for (int64_t i = 0; i < B; i++) ctx_sum += (uint64_t)s->ctx[first + i];

    uint64_t kv_tok = (uint64_t)mc_model_kv_elems_per_token(m) * (uint64_t)elt * (uint64_t)m->layers;
    st.index = a->step_index++;
    st.pid = s->pid; st.tid = s->tid;
    st.kind = kind;
    st.tokens = T; st.sequences = B;
    if (s->t_end < s->t_begin) s->t_end = s->t_begin;   /* corrupt timestamps: no negative times */
    st.t_begin_ns = s->t_begin; st.t_end_ns = s->t_end;
    st.gemm_calls = s->calls; st.unattributed_calls = s->unattr;
    /* dense = GEMM weights seen + vectors the trace cannot see: per-layer norms, final norm,
     * and the embedding rows gathered for this step's tokens */
    st.bytes_dense = s->b_dense + (uint64_t)elt * ((uint64_t)m->layers * (uint64_t)mc_model_norm_params(m)
                     + (uint64_t)m->d + (uint64_t)T * (uint64_t)m->d);
    st.bytes_routed = s->b_routed;
    st.bytes_shared = s->b_shared;
    st.kv_read = ctx_sum * kv_tok;
    st.kv_written = (uint64_t)T * kv_tok;
    uint64_t qk = m->kv_lora_rank > 0 ? (uint64_t)(m->qk_nope_dim + m->qk_rope_dim) : (uint64_t)m->head_dim;
    uint64_t vd = m->kv_lora_rank > 0 ? (uint64_t)m->v_head_dim : (uint64_t)m->head_dim;
    st.flops_attention = (uint64_t)m->layers * 2ull * (uint64_t)m->heads * (qk + vd) * att_ctx;
    st.flops_gemm = s->f_gemm;
    st.flops_routed = s->f_routed;
    st.flops_unattributed = s->f_unattr;
    uint64_t ebytes = (uint64_t)mc_model_expert_params(m) * (uint64_t)elt;
    st.bytes_all_experts = st.bytes_dense + st.bytes_shared + st.kv_read + st.kv_written
                           + (uint64_t)a->n_moe * (uint64_t)m->experts * ebytes;
    st.flops_all_experts = st.flops_gemm - st.flops_routed + st.flops_attention
                           + (uint64_t)T * (uint64_t)a->n_moe * (uint64_t)m->experts * 2ull
                             * (uint64_t)mc_model_expert_params(m);
    int64_t act = 0;
    for (int64_t i = 0; i < s->n_touched; i++) act++;
    st.activated = act;
    st.n_moe = a->n_moe;
    st.moe_layers = a->moe_layers;
    st.counts = s->counts;
    st.n_experts = m->experts;
    st.context = s->ctx + first;
    st.n_context = B;
    st.context_exact = s->ctx_exact;
    st.layers_seen = s->routers;
    st.elt = elt;
    st.cell_pid = s->cell_pid;
    st.n_procs = s->n_procs; st.remote_procs = s->remote_procs; st.comm_bytes = s->comm_bytes;
    memcpy(st.procs, s->procs, (size_t)s->n_procs * sizeof *s->procs);
    if (a->n_moe && s->routers != a->n_moe) a->st.router_mismatch_steps++;
    if ((m->fs > 0 && !s->shared_calls) || (a->n_moe < m->layers && !s->dense_ffn_calls))
        a->st.structure_mismatch_steps++;
    a->st.steps++;
    s->steps_done++;
    s->prev_end = s->t_end;
    attrib_deliver(a, s, &st, n_need, s->gpu, s->lm_begin);
    attrib_reset_step(s);
}
