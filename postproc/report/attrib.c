/* Step segmentation and expert attribution (see attrib.h and docs/attribution.md): the
 * attributor's life cycle (new, free, end of the run) and its statistics.
 *
 * Every GEMM is normalised to "tokens x out x in" with one weight operand, then classified
 * (router, routed expert, shared expert, attention, dense FFN, lm_head) — by the tensor
 * name of its weight address when the trace (or the model directory's safetensors
 * headers + the trace's file maps) lets us name it, else by shape and position in the
 * layer. The classification of a weight address never changes, so it is cached: the hot
 * path is one hash lookup per GEMM. lm_head (out = V) closes a step; per-sequence contexts
 * are tracked per thread (KV bytes, attention FLOPs). Layers whose experts ran in a fused
 * kernel get their experts from router-logit taps; steps waiting for a late tap, or (GPU)
 * for the synchronising copy that ends them, are queued and delivered in order.
 *
 * The work is split over attrib_*.c (one job each, shared state in attrib_internal.h):
 * attrib_names.c (tensor names, address -> name), attrib_weights.c (weight cache, shape
 * rules, classification of a weight operand), attrib_gemm.c (GEMM normalisation, layer
 * phases, per-role bytes), attrib_step.c (closing a step: kind, contexts, KV, FLOPs),
 * attrib_route.c (routing rule on router logits), attrib_taps.c (router-logit and top-k
 * taps), attrib_pending.c (steps queued for taps / GPU step ends, in-order delivery). */
#include "report/attrib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mc_attrib *mc_attrib_new(const struct mc_model *m, mc_step_cb cb, void *user)
{
    struct mc_attrib *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->m = m; a->cb = cb; a->user = user;
    for (int l = 0; l < m->layers; l++) {
        a->moe_ord[l] = m->is_moe[l] ? a->n_moe : -1;
        if (m->is_moe[l]) a->moe_layers[a->n_moe++] = l;
    }
    a->tab_cap = 4096;
    a->tab = calloc(a->tab_cap, sizeof *a->tab);
    a->next_stamp = 1;
    a->st.expert_ids_exact = 1;
    a->dm = mc_devmem_new();
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct mc_st_tensor *t = &m->tensors[i];
        mc_attrib_tensor(a, t->path, t->name, t->file_begin, t->file_end, t->shape, t->ndim, t->dtype);
    }
    if (!a->tab || !a->dm) { free(a->tab); mc_devmem_free(a->dm); free(a); return NULL; }
    return a;
}

void mc_attrib_observe_gemms(struct mc_attrib *a, mc_gemm_observer fn, void *user)
{
    a->obs = fn;
    a->obs_user = user;
}

void mc_attrib_free(struct mc_attrib *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_tens; i++) { free(a->tens[i].base); free(a->tens[i].name); }
    for (size_t i = 0; i < a->n_maps; i++) free(a->maps[i].base);
    free(a->tens); free(a->maps); free(a->iv); free(a->tab); free(a->ctx_scratch); free(a->procs);
    for (struct stream *s = a->streams, *n; s; s = n) {
        n = s->next;
        attrib_stream_free(s);
    }
    for (size_t i = 0; i < a->n_taps; i++) free(a->taps[i].cnt);
    free(a->taps);
    for (size_t i = 0; i < a->n_tw; i++) free(a->tw[i].cnt);
    free(a->tw); free(a->lt); free(a->h2d);
    mc_devmem_free(a->dm);
    for (struct pend *p = a->pend_head, *n; p; p = n) {
        n = p->next;
        attrib_pend_free(p);
    }
    free(a);
}

void mc_attrib_finish(struct mc_attrib *a)
{
    if (a->n_tw) attrib_retry_topk(a, 0, 1);
    attrib_flush_pending(a, 1);
    for (struct stream *s = a->streams; s; s = s->next)
        if (s->open) { a->st.open_steps_dropped++; attrib_reset_step(s); }
}

static int cnt_cmp(const void *x, const void *y)
{
    const uint64_t *a = x, *b = y;
    return a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0;
}

void mc_attrib_stats(const struct mc_attrib *a, struct mc_attrib_stats *st)
{
    *st = a->st;
    uint64_t rows[64][3];
    for (int i = 0; i < a->n_unk; i++) {
        rows[i][0] = a->unk_count[i]; rows[i][1] = (uint64_t)a->unk_out[i]; rows[i][2] = (uint64_t)a->unk_in[i];
    }
    qsort(rows, (size_t)a->n_unk, sizeof rows[0], cnt_cmp);
    st->n_unknown_shapes = a->n_unk < 8 ? a->n_unk : 8;
    for (int i = 0; i < st->n_unknown_shapes; i++) {
        st->unknown_shape_count[i] = rows[i][0];
        st->unknown_shape_out[i] = (int64_t)rows[i][1];
        st->unknown_shape_in[i] = (int64_t)rows[i][2];
    }
}
