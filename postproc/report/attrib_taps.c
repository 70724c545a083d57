/* Placing taps into steps (docs/attribution.md §4b, §4c): router-logit taps matched to
 * their router GEMM (before or after it), kernel-parameter (top-k) taps placed by their
 * CUPTI launch record or arrival time, and the comparison of two views of one layer. */
#include "report/attrib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int attrib_take_tap(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t, int64_t *out)
{
    for (size_t i = 0; i < a->n_taps; i++) {
        struct tap_ent *e = &a->taps[i];
        if (e->pid != pid || e->tid != tid || e->t != t) continue;
        memcpy(out, e->cnt, (size_t)a->m->experts * sizeof *out);
        free(e->cnt);
        a->taps[i] = a->taps[--a->n_taps];
        return 1;
    }
    return 0;
}

void mc_attrib_router_tap(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t_ns, int64_t tokens,
                          int64_t experts, int dtype, int layout, const void *data, size_t len)
{
    const struct mc_model *m = a->m;
    if (!a->n_moe) return;
    int64_t *cnt = calloc((size_t)m->experts, sizeof *cnt);
    if (!cnt) return;
    if (mc_route_counts(m, tokens, experts, dtype, layout, data, len, cnt) != 0) {
        a->st.taps_unreadable++;
        free(cnt);
        return;
    }
    a->st.taps++;
    /* a queued step waiting for it */
    for (struct pend *p = a->pend_head; p; p = p->next) {
        if (p->st.pid != pid || p->st.tid != tid) continue;
        for (int i = 0; i < a->n_moe; i++) {
            if (!p->need[i] && p->src[i] == 2 && p->router_t[i] == t_ns) {   /* a top-k tap came first: compare */
                attrib_compare_counts(a, cnt, p->counts + (size_t)i * (size_t)m->experts, 1);
                free(cnt);
                return;
            }
            if (!p->need[i] || p->router_t[i] != t_ns) continue;
            if (p->has_rtap && !p->has_rtap[i]) {   /* a top-k tap is awaited: keep for the comparison */
                memcpy(p->rtap + (size_t)i * (size_t)m->experts, cnt, (size_t)m->experts * sizeof *cnt);
                p->has_rtap[i] = 1;
                free(cnt);
                return;
            }
            attrib_pend_apply(a, p, i, cnt, 1);
            free(cnt);
            attrib_flush_pending(a, 0);
            return;
        }
    }
    /* the open step of its thread */
    for (struct stream *s = a->streams; s; s = s->next) {
        if (s->pid != pid || s->tid != tid || !s->open) continue;
        for (int i = 0; i < a->n_moe; i++)
            if (s->router_t[i] == t_ns && !s->have_tap[i]) {
                memcpy(s->tap_counts + (size_t)i * (size_t)m->experts, cnt, (size_t)m->experts * sizeof *cnt);
                s->have_tap[i] = 1;
                free(cnt);
                return;
            }
    }
    /* before its router GEMM: keep it (bounded) */
    if (a->n_taps >= TAP_TABLE_MAX) {
        free(a->taps[0].cnt);
        memmove(a->taps, a->taps + 1, (a->n_taps - 1) * sizeof *a->taps);
        a->n_taps--;
        a->st.taps_unmatched++;
    }
    if (!(a->n_taps % 64)) {
        void *np = realloc(a->taps, (a->n_taps + 64) * sizeof *a->taps);
        if (!np) { free(cnt); return; }
        a->taps = np;
    }
    a->taps[a->n_taps++] = (struct tap_ent){pid, tid, t_ns, cnt};
}

/* Two views of one layer's tokens per expert (a top-k tap against a router-logit tap or
 * the expert GEMMs): counted as agreeing or not (report notes). */
void attrib_compare_counts(struct mc_attrib *a, const int64_t *x, const int64_t *y, int router)
{
    int same = 1;
    for (int64_t e = 0; e < a->m->experts && same; e++) same = x[e] == y[e];
    if (router) { if (same) a->st.topk_router_agree++; else a->st.topk_router_disagree++; }
    else { if (same) a->st.topk_gemm_agree++; else a->st.topk_gemm_disagree++; }
}

/* ---------- kernel-parameter (top-k) taps ---------- */

static struct launch_ent *lt_slot(struct mc_attrib *a, int32_t pid, uint64_t corr, int insert)
{
    if (insert && (a->lt_used + 1) * 2 > a->lt_cap) {
        if (a->lt_cap >= (1u << 24)) return NULL;
        size_t nc = a->lt_cap ? a->lt_cap * 2 : 1024;
        struct launch_ent *nt = calloc(nc, sizeof *nt);
        if (!nt) return NULL;
        for (size_t i = 0; i < a->lt_cap; i++) {
            if (!a->lt[i].corr) continue;
            size_t j = hash_addr(a->lt[i].corr, a->lt[i].pid) & (nc - 1);
            while (nt[j].corr) j = (j + 1) & (nc - 1);
            nt[j] = a->lt[i];
        }
        free(a->lt);
        a->lt = nt; a->lt_cap = nc;
    }
    if (!a->lt_cap) return NULL;
    size_t mask = a->lt_cap - 1;
    for (size_t i = hash_addr(corr, pid) & mask;; i = (i + 1) & mask) {
        if (a->lt[i].corr == corr && a->lt[i].pid == pid) return &a->lt[i];
        if (!a->lt[i].corr) {
            if (!insert) return NULL;
            a->lt[i] = (struct launch_ent){pid, -1, corr, 0, 0, 0};
            a->lt_used++;
            return &a->lt[i];
        }
    }
}

void mc_attrib_topk_expect(struct mc_attrib *a, int32_t pid, uint64_t corr)
{
    a->topk_any++;
    if (corr) lt_slot(a, pid, corr, 1);
}

uint64_t mc_attrib_topk_expected(const struct mc_attrib *a) { return a->lt_used; }

void mc_attrib_launch(struct mc_attrib *a, int32_t pid, uint64_t corr, int32_t tid, uint64_t t)
{
    struct launch_ent *e = corr && a->lt_used ? lt_slot(a, pid, corr, 0) : NULL;
    if (!e || e->known || tid < 0) return;
    e->tid = tid; e->t = t; e->known = 1;
}

/* The MoE layer of a step whose router GEMM is the last one launched at or before tl
 * (the top-k kernel runs between its layer's router GEMM and the next layer's). */
static int layer_at(const uint64_t *router_t, int n, uint64_t tl)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (router_t[i] && router_t[i] <= tl && (best < 0 || router_t[i] > router_t[best])) best = i;
    return best;
}

/* Place a tap launched at tl by thread tid (-1: any thread of pid): 1 placed, 0 not yet
 * (the GEMMs around tl have not been read), -1 never (its step was delivered already). */
static int place_topk(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t tl, const int64_t *cnt, int force)
{
    const struct mc_model *m = a->m;
    if (tid >= 0) {   /* a thread id no GEMM stream has (another id convention): any thread */
        int known = 0;
        for (struct stream *s = a->streams; s && !known; s = s->next) known = s->pid == pid && s->tid == tid;
        if (!known) tid = -1;
    }
    for (struct pend *p = a->pend_head; p; p = p->next) {
        if (p->st.pid != pid || (tid >= 0 && p->st.tid != tid) || tl >= p->lm_begin) continue;
        int i = layer_at(p->router_t, a->n_moe, tl);
        if (i < 0) continue;
        int64_t *c = p->counts + (size_t)i * (size_t)m->experts;
        if (p->need[i]) {
            if (p->has_rtap && p->has_rtap[i]) attrib_compare_counts(a, p->rtap + (size_t)i * (size_t)m->experts, cnt, 1);
            attrib_pend_apply(a, p, i, cnt, 2);
            a->st.topk_used++;
            attrib_flush_pending(a, 0);
        } else attrib_compare_counts(a, cnt, c, p->src[i] == 1);
        return 1;
    }
    for (struct stream *s = a->streams; s; s = s->next) {
        if (s->pid != pid || (tid >= 0 && s->tid != tid)) continue;
        if (!force && s->last_t <= tl) continue;           /* its router may still come */
        if (!s->open) continue;
        int i = layer_at(s->router_t, a->n_moe, tl);
        if (i < 0) continue;
        memcpy(s->topk_counts + (size_t)i * (size_t)m->experts, cnt, (size_t)m->experts * sizeof *cnt);
        s->have_topk[i] = 1;
        return 1;
    }
    for (struct stream *s = a->streams; s; s = s->next)
        if (s->pid == pid && (tid < 0 || s->tid == tid) && (force || s->last_t > tl)) return -1;
    return force ? -1 : 0;
}

void attrib_retry_topk(struct mc_attrib *a, int32_t pid, int force)
{
    for (size_t i = 0; i < a->n_tw;) {
        struct topk_wait *w = &a->tw[i];
        int r = (force || w->pid == pid) ? place_topk(a, w->pid, w->tid, w->tl, w->cnt, force) : 0;
        if (!r) { i++; continue; }
        if (r < 0) a->st.topk_unplaced++;
        free(w->cnt);
        a->tw[i] = a->tw[--a->n_tw];
    }
}

void mc_attrib_topk_tap(struct mc_attrib *a, int32_t pid, uint64_t corr, uint64_t t_ns, int64_t rows,
                        int64_t k, int64_t invalid, const uint32_t *counts, int64_t n_counts)
{
    const struct mc_model *m = a->m;
    (void)rows; (void)k;
    a->st.topk_taps++;
    if (!a->n_moe || m->experts <= 0) { a->st.topk_unplaced++; return; }
    int64_t *cnt = calloc((size_t)m->experts, sizeof *cnt);
    if (!cnt) return;
    for (int64_t e = 0; e < n_counts; e++) {
        if (e < m->experts) cnt[e] = counts[e];
        else a->st.topk_ids_beyond_model += counts[e];
    }
    if (invalid > 0) a->st.topk_invalid_ids += (uint64_t)invalid;
    /* where it was launched: the CUPTI API record of its correlation id (thread, host time);
     * else the time the ids arrived on the host (after the kernel ran), any thread */
    const struct launch_ent *l = corr && a->lt_used ? lt_slot(a, pid, corr, 0) : NULL;
    int32_t tid = -1;
    uint64_t tl = t_ns;
    if (l && l->known) { tid = l->tid; tl = l->t; a->st.topk_by_launch++; }
    else a->st.topk_by_time++;
    int r = place_topk(a, pid, tid, tl, cnt, 0);
    if (r) {
        if (r < 0) a->st.topk_unplaced++;
        free(cnt);
        return;
    }
    if (a->n_tw >= TOPK_WAIT_MAX) {   /* bounded: the oldest waiting one is given up */
        free(a->tw[0].cnt);
        memmove(a->tw, a->tw + 1, (a->n_tw - 1) * sizeof *a->tw);
        a->n_tw--;
        a->st.topk_unplaced++;
    }
    if (!(a->n_tw % 64)) {
        void *np = realloc(a->tw, (a->n_tw + 64) * sizeof *a->tw);
        if (!np) { free(cnt); return; }
        a->tw = np;
    }
    a->tw[a->n_tw++] = (struct topk_wait){pid, tid, tl, cnt};
}
