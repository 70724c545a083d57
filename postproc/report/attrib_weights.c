/* Classification of a GEMM's weight operand (docs/attribution.md §3-4): the weight cache
 * (one entry per (process, address), so the hot path is one hash lookup), the shape rules
 * of the model's geometry and the position in the layer, and attrib_lookup_weight, which
 * names a weight by tensor name, expert device range or first-seen order and caches it. */
#include "report/attrib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- weight table ---------- */

static struct went *tab_find(struct mc_attrib *a, int32_t pid, uint64_t addr)
{
    size_t mask = a->tab_cap - 1;
    for (size_t i = hash_addr(addr, pid) & mask;; i = (i + 1) & mask) {
        if (a->tab[i].addr == addr && a->tab[i].pid == pid) return &a->tab[i];
        if (!a->tab[i].addr) return NULL;
    }
}

static struct went *tab_insert(struct mc_attrib *a, int32_t pid, uint64_t addr)
{
    if ((a->tab_used + 1) * 2 > a->tab_cap) {
        if (a->tab_cap >= (1u << 22)) return NULL;   /* bounded: 4 M weights */
        size_t nc = a->tab_cap * 2;
        struct went *nt = calloc(nc, sizeof *nt);
        if (!nt) return NULL;
        for (size_t i = 0; i < a->tab_cap; i++) {
            if (!a->tab[i].addr) continue;
            size_t j = hash_addr(a->tab[i].addr, a->tab[i].pid) & (nc - 1);
            while (nt[j].addr) j = (j + 1) & (nc - 1);
            nt[j] = a->tab[i];
        }
        free(a->tab);
        a->tab = nt; a->tab_cap = nc;
    }
    size_t mask = a->tab_cap - 1, i = hash_addr(addr, pid) & mask;
    while (a->tab[i].addr) i = (i + 1) & mask;
    memset(&a->tab[i], 0, sizeof a->tab[i]);
    a->tab[i].addr = addr;
    a->tab[i].pid = pid;
    a->tab_used++;
    return &a->tab[i];
}

/* ---------- shapes ---------- */

static int is_attn_shape(const struct mc_model *m, int64_t out, int64_t in)
{
    int64_t d = m->d, qd = m->heads * m->head_dim, kvd = m->kv_heads * m->head_dim;
    if (m->kv_lora_rank > 0) {
        int64_t qh = m->heads * (m->qk_nope_dim + m->qk_rope_dim);
        if (in == d && (out == qh || out == m->q_lora_rank || out == m->kv_lora_rank + m->qk_rope_dim)) return 1;
        if (in == m->q_lora_rank && out == qh) return 1;
        if (in == m->kv_lora_rank && out == m->heads * (m->qk_nope_dim + m->v_head_dim)) return 1;
        if (in == m->heads * m->v_head_dim && out == d) return 1;
        return 0;
    }
    if (in == d && (out == qd || out == kvd || out == qd + 2 * kvd)) return 1;
    return in == qd && out == d;
}
static int is_ffn_shape(const struct mc_model *m, int64_t x, int64_t out, int64_t in, enum mc_proj *p)
{
    if (x <= 0) return 0;
    if (in == m->d && out == x) { *p = MC_PROJ_GATE; return 1; }   /* gate or up */
    if (in == m->d && out == 2 * x) { *p = MC_PROJ_GATE_UP; return 1; }
    if (in == x && out == m->d) { *p = MC_PROJ_DOWN; return 1; }
    return 0;
}

/* Does a weight named as `role` have a shape the model's config predicts? */
static int named_shape_ok(const struct mc_model *m, enum mc_role role, int64_t out, int64_t in)
{
    enum mc_proj p;
    switch (role) {
    case MC_ROLE_LM_HEAD: return out == m->vocab && in == m->d;
    case MC_ROLE_ROUTER: return out == m->experts && in == m->d;
    case MC_ROLE_SHARED_GATE: return out == 1 && in == m->d;
    case MC_ROLE_EXPERT: return is_ffn_shape(m, m->f, out, in, &p);
    case MC_ROLE_SHARED: return is_ffn_shape(m, m->fs, out, in, &p);
    case MC_ROLE_DENSE_FFN: return is_ffn_shape(m, m->fd, out, in, &p);
    case MC_ROLE_ATTN: return is_attn_shape(m, out, in);
    default: return 1;
    }
}

/* Is an attention GEMM of shape out x in the output projection? With q == o shapes (d x d)
 * only the position tells: o follows q, k, v (or one fused qkv GEMM). */
static int attn_is_out(const struct mc_model *m, const struct stream *s, int64_t out, int64_t in);

/* Classify a weight of shape out x in by shape and the stream's position in its layer:
 * attention phase (q, k, v, o), then the FFN phase (router + experts + shared, or dense). */
static enum mc_role role_from_shape(const struct mc_model *m, const struct stream *s,
                                    int64_t out, int64_t in, enum mc_proj *p, int allow_expert)
{
    *p = MC_PROJ_OTHER;
    int router = in == m->d && out == m->experts;
    if (in == m->d && out == m->vocab) return MC_ROLE_LM_HEAD;
    if (s->phase == PH_ATTN) {
        if (is_attn_shape(m, out, in)) return MC_ROLE_ATTN;
        if (router) return MC_ROLE_ROUTER;
        if (is_ffn_shape(m, m->fd, out, in, p)) return MC_ROLE_DENSE_FFN;
        return MC_ROLE_UNKNOWN;
    }
    if (!s->in_moe) {           /* FFN phase, no router yet in this layer */
        if (router) return MC_ROLE_ROUTER;
        if (is_ffn_shape(m, m->fd, out, in, p)) return MC_ROLE_DENSE_FFN;
    } else {
        /* a 2f x d GEMM after experts with separate gate/up is the next layer's q (d = 2f is
         * common in small models), not a fused expert gate_up */
        if (allow_expert && is_ffn_shape(m, m->f, out, in, p) && !(*p == MC_PROJ_GATE_UP && s->sep_gate)) return MC_ROLE_EXPERT;
        if (is_ffn_shape(m, m->fs, out, in, p) && !(*p == MC_PROJ_GATE_UP && s->sep_gate)) return MC_ROLE_SHARED;
        if (in == m->d && out == 1 && m->shared_gate) return MC_ROLE_SHARED_GATE;
    }
    if (is_attn_shape(m, out, in)) return MC_ROLE_ATTN;   /* the next layer begins */
    return MC_ROLE_UNKNOWN;
}

static int attn_is_out(const struct mc_model *m, const struct stream *s, int64_t out, int64_t in)
{
    int64_t vd = m->kv_lora_rank > 0 ? m->heads * m->v_head_dim : m->heads * m->head_dim;
    if (in != vd || out != m->d) return 0;
    int before = s->phase == PH_ATTN ? s->n_attn : 0;   /* attention GEMMs before this one */
    if (m->kv_lora_rank > 0) return before >= 2;
    if (before == 1 && s->attn_fused) return 1;
    return before >= 3;
}

/* The model layer of the stream's MoE block number `ord` (-1: none). */
static int moe_layer(const struct mc_attrib *a, int ord)
{
    return ord >= 0 && ord < a->n_moe ? a->moe_layers[ord] : -1;
}

/* Does process pid hold a device range the size of a whole expert array (E x f x d or
 * E x 2f x d elements of 1, 2 or 4 bytes)? Then its routed experts live in such ranges. */
static int expert_ranges_known(struct mc_attrib *a, int32_t pid)
{
    if (a->er_pid_valid && a->er_pid == pid) return a->er_known;
    const struct mc_model *m = a->m;
    int known = 0;
    for (int elt = 1; elt <= 4 && !known; elt *= 2)
        for (int g = 1; g <= 2 && !known; g++) {
            uint64_t size = (uint64_t)m->experts * (uint64_t)g * (uint64_t)m->f * (uint64_t)m->d * (uint64_t)elt;
            known = size && mc_devmem_has_size(a->dm, pid, size);
        }
    a->er_pid = pid; a->er_pid_valid = 1; a->er_known = known;
    return known;
}

/* Resolve (or classify and cache) the weight at `addr` seen with shape out x in and element
 * type dt by a GEMM that began at t. */
struct went *attrib_lookup_weight(struct mc_attrib *a, struct stream *s, uint64_t addr,
                                  int64_t out, int64_t in, int dt, uint64_t t, int on_device)
{
    struct went *w = tab_find(a, s->pid, addr);
    if (w && w->out == out && w->in == in && w->t_from <= t && t < w->t_until) return w;
    uint64_t t_from = 0, t_until = UINT64_MAX;
    int by_range = 0;
    int layer = -1, expert = -1;
    enum mc_proj proj = MC_PROJ_OTHER;
    enum mc_role role = MC_ROLE_UNKNOWN;
    int named = 0;
    const struct interval *iv = (a->n_maps && a->n_tens) ? attrib_find_interval(a, s->pid, addr, t) : NULL;
    if (iv) {
        role = mc_role_from_name(iv->t->name, &layer, &expert, &proj);
        if (role == MC_ROLE_EXPERT && expert < 0 && iv->t->ndim == 3 && iv->t->shape0 > 0) {
            /* experts fused in one 3-D parameter: the offset inside it names the expert */
            uint64_t per = (iv->e - iv->b) / (uint64_t)iv->t->shape0;
            if (per) expert = (int)((addr - iv->b) / per);
        }
        if (role == MC_ROLE_LM_HEAD && out != a->m->vocab && in != a->m->d) role = MC_ROLE_UNKNOWN; /* embedding as input */
        if (role != MC_ROLE_UNKNOWN && !named_shape_ok(a->m, role, out, in)) {
            /* a named weight whose shape the config does not predict: wrong --model */
            if (!a->st.shape_mismatch++)
                snprintf(a->st.mismatch_example, sizeof a->st.mismatch_example,
                         "%s is used as %lld x %lld", iv->t->name, (long long)out, (long long)in);
            return NULL;
        }
        named = role != MC_ROLE_UNKNOWN;
        if (named) { t_from = iv->t_from; t_until = iv->t_until; }
    }
    if (!named) {
        role = role_from_shape(a->m, s, out, in, &proj, 1);
        if (role == MC_ROLE_UNKNOWN) return NULL;
        if (role == MC_ROLE_EXPERT || role == MC_ROLE_SHARED || role == MC_ROLE_ROUTER || role == MC_ROLE_SHARED_GATE) {
            layer = moe_layer(a, role == MC_ROLE_ROUTER ? s->routers : s->cur_moe);  /* router opens the next */
        }
        if (role == MC_ROLE_EXPERT) {
            /* no name: a device range (allocation or copy destination) of exactly E x this
             * weight's bytes is an expert array, and the offset in it is the expert id
             * (moe-ref's [E, f, d] arrays; transformers' 3-D expert parameters
             * gate_up_proj [E, 2f, d] and down_proj [E, d, f]) */
            int elt = mc_dtype_bytes(dt);
            elt = mc_model_elt(a->m, elt);
            uint64_t per = (uint64_t)out * (uint64_t)in * (uint64_t)elt;
            const struct mc_devmem_range *r = per && a->m->experts > 0
                ? mc_devmem_find(a->dm, s->pid, addr, t, per * (uint64_t)a->m->experts) : NULL;
            if (r && (addr - r->b) % per == 0) {
                expert = (int)((addr - r->b) / per);
                t_from = r->t_from; t_until = r->t_until;
                by_range = 1;
            }
        }
        if (role == MC_ROLE_EXPERT && !by_range && on_device && expert_ranges_known(a, s->pid)) {
            /* this process keeps its experts in E x per-expert-byte ranges and this weight is
             * in none: not a routed expert, whatever its shape (a shared expert shaped like
             * one, the next layer's q when d = 2f and the experts ran fused) */
            role = role_from_shape(a->m, s, out, in, &proj, 0);
            if (role == MC_ROLE_UNKNOWN) return NULL;
            layer = role == MC_ROLE_SHARED || role == MC_ROLE_SHARED_GATE ? moe_layer(a, s->cur_moe) : -1;
        }
        if (role == MC_ROLE_EXPERT && proj == MC_PROJ_DOWN && !by_range) {
            int ord = s->cur_moe;
            if (ord >= 0 && ord < a->n_moe && s->order_next[ord] < a->m->experts) expert = s->order_next[ord]++;
            a->st.expert_ids_exact = 0;
        }
    }
    if (!w) w = tab_insert(a, s->pid, addr);
    if (!w) {   /* table full: classify without caching */
        static struct went tmp;
        w = &tmp;
        memset(w, 0, sizeof *w);
        w->addr = addr;
    }
    w->out = out; w->in = in;
    w->role = (int16_t)role; w->proj = (int16_t)proj;
    w->layer = layer; w->expert = expert;
    w->named = (uint8_t)named;
    w->attn_out = 0;
    if (role == MC_ROLE_ATTN) {
        if (named) w->attn_out = iv && (strstr(iv->t->name, "o_proj") || strstr(iv->t->name, ".dense."));
        else w->attn_out = (uint8_t)attn_is_out(a->m, s, out, in);
    }
    w->stamp = 0;
    w->t_from = t_from; w->t_until = t_until;
    if (named) {
        a->st.named_weights++;
        if (iv->rule == RULE_DEVICE_MAP) a->st.named_device_map++;
        else if (iv->rule == RULE_DEVICE_COPY) a->st.named_device_copy++;
        else a->st.named_host++;
    } else {
        a->st.shape_weights++;
        if (by_range) a->st.expert_range_weights++;
        else if (role == MC_ROLE_EXPERT && proj == MC_PROJ_DOWN) a->st.order_weights++;
    }
    return w;
}
