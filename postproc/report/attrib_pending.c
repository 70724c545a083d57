/* Finished steps that wait (docs/attribution.md §4b, §6): for the taps of their fused
 * layers, or (GPU) for the synchronising host call that ends them; delivered to the
 * callback in step order, bounded. */
#include "report/attrib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEND_MAX 256

void attrib_pend_free(struct pend *p)
{
    free(p->counts); free(p->ctx); free(p->router_t); free(p->need); free(p->src); free(p->rtap); free(p->has_rtap); free(p);
}

/* MoE layer i of queued step p takes its tokens per expert from a tap (src: 1 router-logit
 * tap, 2 top-k tap) and waits no more. */
void attrib_pend_apply(struct mc_attrib *a, struct pend *p, int i, const int64_t *cnt, uint8_t src)
{
    attrib_apply_tap(a->m, cnt, p->counts, NULL, NULL, &p->st.activated, &p->st.bytes_routed,
                     &p->st.flops_routed, &p->st.flops_gemm, (int64_t)i * a->m->experts, p->elt);
    p->need[i] = 0;
    p->n_need--;
    p->src[i] = src;
}

void attrib_flush_pending(struct mc_attrib *a, int force)
{
    size_t n = 0;
    for (struct pend *p = a->pend_head; p; p = p->next) n++;
    while (a->pend_head && ((a->pend_head->n_need == 0 && !a->pend_head->open_end) || force || n > PEND_MAX)) {
        struct pend *p = a->pend_head;
        a->pend_head = p->next;
        if (!a->pend_head) a->pend_tail = NULL;
        n--;
        for (int i = 0; p->n_need && p->has_rtap && i < a->n_moe; i++)
            if (p->need[i] && p->has_rtap[i])   /* no top-k tap came: the router-logit tap's counts */
                attrib_pend_apply(a, p, i, p->rtap + (size_t)i * (size_t)a->m->experts, 1);
        if (p->n_need) a->st.tap_missing_layers += (uint64_t)p->n_need;
        p->st.counts = p->counts;
        p->st.cell_pid = NULL;   /* the stream has moved on: its per-expert processes are gone */
        p->st.context = p->ctx;
        if (a->cb) a->cb(&p->st, a->user);
        attrib_pend_free(p);
    }
}

/* Hand a finished step to the callback, or queue it (it waits for taps, or an earlier step
 * does: steps are delivered in order). */
void attrib_deliver(struct mc_attrib *a, struct stream *s, struct mc_step *st, int n_need, int open_end,
                    uint64_t lm_begin)
{
    if (!n_need && !open_end && !a->pend_head) {
        if (a->cb) a->cb(st, a->user);
        return;
    }
    struct pend *p = calloc(1, sizeof *p);
    size_t cells = (size_t)(a->n_moe ? a->n_moe : 1) * (size_t)(a->m->experts ? a->m->experts : 1);
    if (p) {
        p->counts = malloc(cells * sizeof *p->counts);
        p->ctx = malloc((size_t)(st->n_context ? st->n_context : 1) * sizeof *p->ctx);
        p->router_t = calloc((size_t)(a->n_moe ? a->n_moe : 1), sizeof *p->router_t);
        p->need = calloc((size_t)(a->n_moe ? a->n_moe : 1), 1);
        p->src = calloc((size_t)(a->n_moe ? a->n_moe : 1), 1);
        if (a->topk_any) {
            p->rtap = calloc(cells, sizeof *p->rtap);
            p->has_rtap = calloc((size_t)(a->n_moe ? a->n_moe : 1), 1);
        }
    }
    if (!p || !p->counts || !p->ctx || !p->router_t || !p->need || !p->src || (a->topk_any && (!p->rtap || !p->has_rtap))) {
        /* no memory: deliver as is */
        if (p) attrib_pend_free(p);
        a->st.tap_missing_layers += (uint64_t)n_need;
        attrib_flush_pending(a, 1);
        if (a->cb) a->cb(st, a->user);
        return;
    }
    p->st = *st;
    memcpy(p->counts, st->counts, cells * sizeof *p->counts);
    if (st->n_context) memcpy(p->ctx, st->context, (size_t)st->n_context * sizeof *p->ctx);
    for (int i = 0; i < a->n_moe; i++) {
        p->router_t[i] = s->router_t[i];
        /* a fused layer waits for a top-k tap when the trace has them, even with a router tap */
        p->need[i] = s->router_t[i] && !s->expert_calls[i] && !s->have_topk[i] && (!s->have_tap[i] || a->topk_any);
        p->src[i] = s->expert_calls[i] ? 0 : s->have_topk[i] ? 2 : s->have_tap[i] && !p->need[i] ? 1 : 0;
        if (p->need[i] && s->have_tap[i] && p->has_rtap) {
            memcpy(p->rtap + (size_t)i * (size_t)a->m->experts, s->tap_counts + (size_t)i * (size_t)a->m->experts,
                   (size_t)a->m->experts * sizeof *p->rtap);
            p->has_rtap[i] = 1;
        }
    }
    p->elt = st->elt;
    p->n_need = n_need;
    p->open_end = open_end;
    p->lm_begin = lm_begin;
    if (a->pend_tail) a->pend_tail->next = p; else a->pend_head = p;
    a->pend_tail = p;
    attrib_flush_pending(a, 0);
}

void attrib_close_open_end(struct mc_attrib *a, int32_t pid, int32_t tid)
{
    int closed = 0;
    for (struct pend *p = a->pend_head; p; p = p->next)
        if (p->open_end && p->st.pid == pid && p->st.tid == tid) { p->open_end = 0; closed = 1; }
    if (closed) attrib_flush_pending(a, 0);
}

int mc_attrib_gpu_sync(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t_begin, uint64_t t_end)
{
    for (struct pend *p = a->pend_head; p; p = p->next) {
        if (!p->open_end || p->st.pid != pid || (tid >= 0 && p->st.tid != tid) || t_begin < p->lm_begin) continue;
        if (t_end > p->st.t_end_ns) p->st.t_end_ns = t_end;
        p->open_end = 0;
        attrib_flush_pending(a, 0);
        return 1;
    }
    return 0;
}

void mc_attrib_gpu_activity(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t)
{
    for (struct stream *s = a->streams; s; s = s->next) {
        if (s->pid != pid || (tid >= 0 && s->tid != tid) || s->open || !s->gpu || !s->steps_done) continue;
        if (t >= s->prev_end && (!s->pre_begin || t < s->pre_begin)) s->pre_begin = t;
    }
}
