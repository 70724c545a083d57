/* Step segmentation and expert attribution (see attrib.h and docs/attribution.md).
 *
 * Every GEMM is normalised to "tokens x out x in" with one weight operand, then classified
 * (router, routed expert, shared expert, attention, dense FFN, lm_head) — by the tensor
 * name of its weight address when the trace (or the model directory's safetensors
 * headers + the trace's file maps) lets us name it, else by shape and position in the
 * layer. The classification of a weight address never changes, so it is cached: the hot
 * path is one hash lookup per GEMM. lm_head (out = V) closes a step; per-sequence contexts
 * are tracked per thread (KV bytes, attention FLOPs). Layers whose experts ran in a fused
 * kernel get their experts from router-logit taps; steps waiting for a late tap, or (GPU)
 * for the synchronising copy that ends them, are queued and delivered in order. */
#include "report/attrib.h"
#include "report/devmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- names ---------- */

static int parse_index_after(const char *name, const char *key)
{
    const char *p = strstr(name, key);
    if (!p) return -1;
    p += strlen(key);
    if (*p < '0' || *p > '9') return -1;
    int v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    return v;
}

static enum mc_proj proj_from_name(const char *n)
{
    if (strstr(n, "gate_up_proj")) return MC_PROJ_GATE_UP;
    if (strstr(n, "gate_proj") || strstr(n, ".w1.") || strstr(n, ".w1")) return MC_PROJ_GATE;
    if (strstr(n, "up_proj") || strstr(n, ".w3")) return MC_PROJ_UP;
    if (strstr(n, "down_proj") || strstr(n, ".w2")) return MC_PROJ_DOWN;
    return MC_PROJ_OTHER;
}

enum mc_role mc_role_from_name(const char *n, int *layer, int *expert, enum mc_proj *proj)
{
    *layer = parse_index_after(n, "layers.");
    *expert = -1;
    *proj = MC_PROJ_OTHER;
    if (strstr(n, "lm_head") || strstr(n, "embed_tokens")) return MC_ROLE_LM_HEAD;
    if (strstr(n, "shared_expert_gate")) return MC_ROLE_SHARED_GATE;
    if (strstr(n, "shared_expert.") || strstr(n, "shared_experts.")) {
        *proj = proj_from_name(n);
        return MC_ROLE_SHARED;
    }
    if (strstr(n, ".experts.")) {
        *expert = parse_index_after(n, ".experts.");
        *proj = proj_from_name(n);
        return MC_ROLE_EXPERT;
    }
    if (strstr(n, "self_attn.") || strstr(n, ".attention.")) return MC_ROLE_ATTN;
    if (strstr(n, "mlp.gate.") || strstr(n, "block_sparse_moe.gate.") || strstr(n, ".router."))
        return MC_ROLE_ROUTER;
    if (strstr(n, "mlp.")) {
        *proj = proj_from_name(n);
        if (*proj != MC_PROJ_OTHER) return MC_ROLE_DENSE_FFN;
    }
    return MC_ROLE_UNKNOWN;
}

const char *mc_role_name(enum mc_role r)
{
    static const char *n[] = {"unknown", "attention", "router", "routed_expert", "shared_expert",
                              "shared_expert_gate", "dense_ffn", "lm_head"};
    return r < MC_ROLE_MAX ? n[r] : "?";
}

/* ---------- address -> tensor name ---------- */

struct tensor_ent { char *base, *name; uint64_t fb, fe; int64_t shape0; int ndim; };
/* rule: how the address range got its file bytes (stats, docs §3b): host map, device file
 * map written by the shim (how = 3), or a host->device copy joined with a host map here */
enum { RULE_HOST = 0, RULE_DEVICE_MAP = 1, RULE_DEVICE_COPY = 2 };
struct fmap_ent { char *base; int32_t pid, device; uint64_t addr, off, len, t_from, t_until, t_rec; int rule; };
struct interval { int32_t pid; int rule; uint64_t b, e, t_from, t_until; const struct tensor_ent *t; };
struct h2d_ent { int32_t pid, device; uint64_t src, dst, bytes, t; };

/* ---------- weight cache ---------- */

struct went {
    uint64_t addr;          /* 0 = empty slot */
    int32_t pid;            /* address spaces are per process */
    int64_t out, in;
    uint64_t stamp;         /* step stamp of the last step that counted its bytes */
    int16_t role, proj;
    uint8_t attn_out;       /* attention output projection (ends the attention phase) */
    int32_t layer, expert;  /* model layer (-1 unknown), expert id (-1 unknown) */
    uint8_t named;
    uint64_t t_from, t_until;   /* the naming holds for GEMMs in [t_from, t_until) (device memory reuse) */
};

/* ---------- router-logit taps ---------- */

#define TAP_TABLE_MAX 4096
struct tap_ent { int32_t pid, tid; uint64_t t; int64_t *cnt; };

/* kernel-parameter taps: correlation id -> launching thread and host time; taps waiting for
 * the GEMMs around their launch */
struct launch_ent { int32_t pid, tid; uint64_t corr, t; uint8_t used, known; };
struct topk_wait { int32_t pid, tid; uint64_t tl; int64_t *cnt; };
#define TOPK_WAIT_MAX 4096

/* A finished step that waits for the taps of some of its MoE layers. */
struct pend {
    struct mc_step st;
    int64_t *counts, *ctx;
    uint64_t *router_t;
    uint8_t *need;
    uint8_t *src;            /* per moe layer: 0 expert GEMMs / none, 1 router-logit tap, 2 top-k tap */
    int64_t *rtap;           /* router-logit tap counts kept while a top-k tap is awaited (n_moe x E) */
    uint8_t *has_rtap;
    int n_need;
    int elt;
    int open_end;            /* GPU step: its end waits for the host's synchronising copy/sync */
    uint64_t lm_begin;       /* lm_head GEMM launch time */
    struct pend *next;
};

/* ---------- per-thread stream state ---------- */

enum phase { PH_ATTN = 0, PH_FFN = 1 };

struct stream {
    int32_t pid, tid;
    int n_moe;
    int open;               /* a step is in progress */
    int gpu;                /* the last GEMM ran on a device (asynchronous launches) */
    uint64_t steps_done, prev_end, pre_begin, lm_begin;  /* GPU: first host CUDA activity since the last step */
    uint64_t stamp;
    uint64_t t_begin, t_end;
    int64_t tokens_router, tokens_first;
    uint64_t calls, unattr;
    uint64_t b_dense, b_routed, b_shared;
    uint64_t f_gemm, f_routed, f_unattr;
    int routers;            /* routers seen this step */
    uint64_t shared_calls, dense_ffn_calls;
    int cur_moe;            /* moe ordinal of the current MoE block (-1 none) */
    int phase, in_moe;
    int n_attn, attn_fused;
    int sep_gate;            /* this MoE block had an expert with separate gate/up GEMMs */  /* attention GEMMs so far in this layer; first one was fused qkv */
    int64_t *counts;        /* n_moe x E */
    int32_t *touched;       /* indices into counts set this step */
    int64_t n_touched;
    int32_t *order_next;    /* per moe layer: next first-seen expert id (shape-only) */
    /* router-logit taps (GPU fused experts): per moe layer of the open step */
    uint64_t *router_t;     /* router GEMM t_begin (0 = no router yet) */
    uint64_t *expert_calls; /* expert GEMMs seen */
    uint8_t *have_tap;
    int64_t *tap_counts;    /* n_moe x E */
    uint8_t *have_topk;     /* kernel-parameter (top-k) taps per moe layer of the open step */
    int64_t *topk_counts;   /* n_moe x E */
    uint64_t last_t;        /* t_begin of the last GEMM seen */
    int elt;                /* bytes per element of this step's non-expert weight operands (0 unknown) */
    int64_t *ctx;           /* per sequence context after the last step */
    int64_t nctx, ctx_cap;
    int64_t plen;            /* last per-sequence prompt length seen (0 = none) */
    int ctx_exact;
    struct stream *next;
};

struct mc_attrib {
    const struct mc_model *m;
    mc_step_cb cb;
    void *user;
    int moe_ord[MC_MODEL_MAX_LAYERS];   /* model layer -> moe ordinal, -1 dense */
    int moe_layers[MC_MODEL_MAX_LAYERS];
    int n_moe;
    struct tensor_ent *tens; size_t n_tens, cap_tens;
    struct fmap_ent *maps; size_t n_maps, cap_maps;
    struct interval *iv; size_t n_iv;
    int iv_dirty;
    struct went *tab; size_t tab_cap, tab_used;
    struct stream *streams;
    uint64_t next_stamp, step_index;
    struct mc_attrib_stats st;
    uint64_t unk_count[64]; int64_t unk_out[64], unk_in[64]; int n_unk;
    int64_t *ctx_scratch;
    struct tap_ent *taps; size_t n_taps;     /* taps not matched to a router GEMM yet */
    struct pend *pend_head, *pend_tail;      /* steps waiting for taps, in step order */
    struct mc_devmem *dm;                    /* device ranges over time (names end on reuse) */
    struct h2d_ent *h2d; size_t n_h2d, cap_h2d;   /* first pass only */
    struct launch_ent *lt; size_t lt_cap, lt_used; /* correlation id -> launch */
    struct topk_wait *tw; size_t n_tw;
    uint64_t topk_any;                       /* the trace holds top-k taps: fused layers wait for them */
    int32_t er_pid; int er_pid_valid, er_known;   /* expert_ranges_known cache (last pid asked) */
};

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

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

void mc_attrib_free(struct mc_attrib *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_tens; i++) { free(a->tens[i].base); free(a->tens[i].name); }
    for (size_t i = 0; i < a->n_maps; i++) free(a->maps[i].base);
    free(a->tens); free(a->maps); free(a->iv); free(a->tab); free(a->ctx_scratch);
    for (struct stream *s = a->streams, *n; s; s = n) {
        n = s->next;
        free(s->counts); free(s->touched); free(s->order_next); free(s->ctx);
        free(s->router_t); free(s->expert_calls); free(s->have_tap); free(s->tap_counts);
        free(s->have_topk); free(s->topk_counts); free(s);
    }
    for (size_t i = 0; i < a->n_taps; i++) free(a->taps[i].cnt);
    free(a->taps);
    for (size_t i = 0; i < a->n_tw; i++) free(a->tw[i].cnt);
    free(a->tw); free(a->lt); free(a->h2d);
    mc_devmem_free(a->dm);
    for (struct pend *p = a->pend_head, *n; p; p = n) {
        n = p->next;
        free(p->counts); free(p->ctx); free(p->router_t); free(p->need); free(p->src); free(p->rtap);
        free(p->has_rtap); free(p);
    }
    free(a);
}

void mc_attrib_tensor(struct mc_attrib *a, const char *path, const char *name,
                      uint64_t fb, uint64_t fe, const int64_t *shape, int ndim, int dtype)
{
    (void)dtype;
    if (!path || !name || fe <= fb) return;
    const char *b = base_name(path);
    for (size_t i = 0; i < a->n_tens; i++)   /* the same table may come from trace and model dir */
        if (a->tens[i].fb == fb && !strcmp(a->tens[i].name, name) && !strcmp(a->tens[i].base, b)) return;
    if (a->n_tens == a->cap_tens) {
        size_t nc = a->cap_tens ? a->cap_tens * 2 : 256;
        void *p = realloc(a->tens, nc * sizeof *a->tens);
        if (!p) return;
        a->tens = p; a->cap_tens = nc;
    }
    struct tensor_ent *t = &a->tens[a->n_tens++];
    t->base = strdup(b); t->name = strdup(name); t->fb = fb; t->fe = fe;
    t->ndim = ndim; t->shape0 = ndim > 0 ? shape[0] : 0;
    a->iv_dirty = 1;
}

void mc_attrib_file_map(struct mc_attrib *a, int32_t pid, const char *path, uint64_t addr,
                        uint64_t off, uint64_t len, int32_t device)
{
    mc_attrib_file_map_t(a, pid, path, addr, off, len, device, 0);
}

static struct fmap_ent *add_map(struct mc_attrib *a, int32_t pid, const char *base, uint64_t addr, uint64_t off,
                                uint64_t len, int32_t device, uint64_t t, int rule)
{
    if (a->n_maps == a->cap_maps) {
        size_t nc = a->cap_maps ? a->cap_maps * 2 : 64;
        void *p = realloc(a->maps, nc * sizeof *a->maps);
        if (!p) return NULL;
        a->maps = p; a->cap_maps = nc;
    }
    struct fmap_ent *f = &a->maps[a->n_maps++];
    f->base = strdup(base); f->pid = pid; f->addr = addr; f->off = off; f->len = len;
    f->device = device; f->rule = rule;
    /* host memory keeps its names for the whole run (as before); device names hold from the
     * copy on, until mc_attrib_names_done finds the memory freed or overwritten */
    f->t_from = device >= 0 ? t : 0;
    f->t_until = UINT64_MAX;
    f->t_rec = t;
    a->iv_dirty = 1;
    return f;
}

void mc_attrib_file_map_t(struct mc_attrib *a, int32_t pid, const char *path, uint64_t addr,
                          uint64_t off, uint64_t len, int32_t device, uint64_t t)
{
    if (!path || !len) return;
    add_map(a, pid, base_name(path), addr, off, len, device, t, device >= 0 ? RULE_DEVICE_MAP : RULE_HOST);
}

void mc_attrib_alloc(struct mc_attrib *a, int32_t pid, int32_t device, uint64_t ptr, uint64_t bytes,
                     int is_free, uint64_t t)
{
    if (device < 0 || !ptr) return;
    if (is_free || !bytes) mc_devmem_release(a->dm, pid, ptr, t);
    else mc_devmem_alloc(a->dm, pid, device, ptr, bytes, t);
}

void mc_attrib_h2d(struct mc_attrib *a, int32_t pid, int32_t device, uint64_t src, uint64_t dst,
                   uint64_t bytes, uint64_t t)
{
    if (!bytes || !dst) return;
    if (a->n_h2d == a->cap_h2d) {
        size_t nc = a->cap_h2d ? a->cap_h2d * 2 : 256;
        void *p = realloc(a->h2d, nc * sizeof *a->h2d);
        if (!p) return;
        a->h2d = p; a->cap_h2d = nc;
    }
    a->h2d[a->n_h2d++] = (struct h2d_ent){pid, device < 0 ? 0 : device, src, dst, bytes, t};
}

static uint64_t bytes_tag(const char *base, uint64_t off)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a over the file's base name, then the offset */
    for (const char *c = base; *c; c++) { h ^= (unsigned char)*c; h *= 1099511628211ULL; }
    h ^= off; h *= 1099511628211ULL;
    return h ? h : 1;
}

static const struct fmap_ent *g_sort_maps;   /* qsort has no context argument in C11 */
static int devmap_cmp(const void *x, const void *y)
{
    const struct fmap_ent *p = &g_sort_maps[*(const size_t *)x], *q = &g_sort_maps[*(const size_t *)y];
    if (p->pid != q->pid) return p->pid < q->pid ? -1 : 1;
    return p->addr < q->addr ? -1 : p->addr > q->addr;
}

void mc_attrib_names_done(struct mc_attrib *a)
{
    const struct mc_model *m = a->m;
    /* smallest device range worth keeping for the expert rule: E experts of f x d bytes at 1 byte */
    uint64_t min_expert_range = (uint64_t)(m->experts > 0 ? m->experts : 1) * (uint64_t)(m->f > 0 ? m->f : 1) *
                                (uint64_t)(m->d > 0 ? m->d : 1);
    size_t n_host = a->n_maps;
    /* the shim's own device maps, sorted by (pid, address), to skip copies it described */
    size_t *dev = malloc((n_host ? n_host : 1) * sizeof *dev), n_dev = 0;
    for (size_t j = 0; dev && j < n_host; j++) if (a->maps[j].device >= 0) dev[n_dev++] = j;
    if (dev) { g_sort_maps = a->maps; qsort(dev, n_dev, sizeof *dev, devmap_cmp); }
    for (size_t i = 0; i < a->n_h2d; i++) {
        const struct h2d_ent *c = &a->h2d[i];
        /* the host map holding the copied bytes: of several (a read buffer filled again), the
         * latest one recorded before the copy, else the first */
        const struct fmap_ent *hm = NULL;
        for (size_t j = 0; j < n_host; j++) {
            const struct fmap_ent *f = &a->maps[j];
            if (f->device >= 0 || f->pid != c->pid || c->src < f->addr || c->src + c->bytes > f->addr + f->len ||
                c->src + c->bytes < c->src)
                continue;
            int before = f->t_rec <= c->t;
            if (!hm || (before && (hm->t_rec > c->t || f->t_rec >= hm->t_rec))) hm = f;
        }
        if (!hm) {   /* anonymous bytes (converted buffers, activations): only ranges an expert array fits */
            if (c->bytes >= min_expert_range) mc_devmem_copy(a->dm, c->pid, c->device, c->dst, c->bytes, c->t, 0);
            continue;
        }
        uint64_t off = hm->off + (c->src - hm->addr);
        mc_devmem_copy(a->dm, c->pid, c->device, c->dst, c->bytes, c->t, bytes_tag(hm->base, off));
        int dup = 0;   /* the shim's own device file map (how = 3) of the same copy */
        size_t lo = 0, hi = n_dev;
        while (dev && lo < hi) {   /* first map at (pid, dst) or after */
            size_t mid = (lo + hi) / 2;
            const struct fmap_ent *f = &a->maps[dev[mid]];
            if (f->pid < c->pid || (f->pid == c->pid && f->addr < c->dst)) lo = mid + 1; else hi = mid;
        }
        for (size_t j = lo; dev && j < n_dev && !dup; j++) {
            const struct fmap_ent *f = &a->maps[dev[j]];
            if (f->pid != c->pid || f->addr != c->dst) break;
            dup = f->off == off && f->len == c->bytes && !strcmp(f->base, hm->base);
        }
        if (dup) continue;
        char *base = strdup(hm->base);   /* add_map may move a->maps */
        if (!base) continue;
        if (add_map(a, c->pid, base, c->dst, off, c->bytes, c->device, c->t, RULE_DEVICE_COPY)) a->st.device_maps_derived++;
        free(base);
    }
    free(dev);
    free(a->h2d); a->h2d = NULL; a->n_h2d = a->cap_h2d = 0;
    mc_devmem_finish(a->dm);
    for (size_t j = 0; j < a->n_maps; j++) {
        struct fmap_ent *f = &a->maps[j];
        if (f->device >= 0)
            f->t_until = mc_devmem_end(a->dm, f->pid, f->addr, f->addr + f->len, f->t_from, bytes_tag(f->base, f->off));
    }
    a->iv_dirty = 1;
}

static int iv_cmp(const void *x, const void *y)
{
    const struct interval *a = x, *b = y;
    if (a->pid != b->pid) return a->pid < b->pid ? -1 : 1;
    return a->b < b->b ? -1 : a->b > b->b;
}

static void rebuild_intervals(struct mc_attrib *a)
{
    a->iv_dirty = 0;
    free(a->iv); a->iv = NULL; a->n_iv = 0;
    size_t cap = 0;
    for (size_t i = 0; i < a->n_maps; i++) {
        const struct fmap_ent *f = &a->maps[i];
        for (size_t j = 0; j < a->n_tens; j++) {
            const struct tensor_ent *t = &a->tens[j];
            if (t->fb < f->off || t->fe > f->off + f->len || strcmp(t->base, f->base)) continue;
            if (a->n_iv == cap) {
                cap = cap ? cap * 2 : 256;
                void *p = realloc(a->iv, cap * sizeof *a->iv);
                if (!p) return;
                a->iv = p;
            }
            if (f->t_until <= f->t_from) continue;   /* overwritten before it could be used */
            a->iv[a->n_iv++] = (struct interval){f->pid, f->rule, f->addr + (t->fb - f->off), f->addr + (t->fe - f->off),
                                                 f->t_from, f->t_until, t};
        }
    }
    qsort(a->iv, a->n_iv, sizeof *a->iv, iv_cmp);
}

/* The tensor at addr of process pid at time t (device names hold only while their memory does). */
static const struct interval *find_interval(struct mc_attrib *a, int32_t pid, uint64_t addr, uint64_t t)
{
    if (a->iv_dirty) rebuild_intervals(a);
    size_t lo = 0, hi = a->n_iv;
    while (lo < hi) {   /* first interval after (pid, addr) */
        size_t mid = (lo + hi) / 2;
        if (a->iv[mid].pid < pid || (a->iv[mid].pid == pid && a->iv[mid].b <= addr)) lo = mid + 1; else hi = mid;
    }
    /* the last interval starting at or before addr (mappings of the same file may repeat) */
    for (size_t i = lo; i-- > 0;) {
        if (a->iv[i].pid != pid) break;
        if (addr < a->iv[i].e && a->iv[i].t_from <= t && t < a->iv[i].t_until) return &a->iv[i];
        if (lo - i > 64) break;
    }
    return NULL;
}

/* ---------- weight table ---------- */

static inline size_t hash_addr(uint64_t x, int32_t pid)
{
    x ^= (uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)x;
}

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

/* ---------- streams ---------- */

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
    s->cur_moe = -1;
    s->ctx_exact = 1;
    if (!s->counts || !s->touched || !s->order_next || !s->router_t || !s->expert_calls || !s->have_tap || !s->tap_counts ||
        !s->have_topk || !s->topk_counts) {
        free(s->counts); free(s->touched); free(s->order_next); free(s->router_t);
        free(s->expert_calls); free(s->have_tap); free(s->tap_counts); free(s->have_topk); free(s->topk_counts); free(s);
        return NULL;
    }
    s->next = a->streams;
    a->streams = s;
    return s;
}

static void reset_step(struct stream *s)
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
}

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

static int ctx_reserve(struct stream *s, int64_t n)
{
    if (n <= s->ctx_cap) return 0;
    int64_t nc = n < 16 ? 16 : n * 2;
    void *p = realloc(s->ctx, (size_t)nc * sizeof *s->ctx);
    if (!p) return -1;
    s->ctx = p; s->ctx_cap = nc;
    return 0;
}

/* ---------- router-logit taps: routing rule, matching, steps waiting for taps ---------- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (!man) bits = sign;
        else {   /* subnormal */
            exp = 127 - 15 + 1;
            while (!(man & 1024)) { man <<= 1; exp--; }
            bits = sign | exp << 23 | (man & 1023) << 13;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | man << 13;
    else bits = sign | (exp + 127 - 15) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float logit_at(const void *data, int dtype, size_t i)
{
    const unsigned char *p = data;
    float f;
    uint16_t h;
    switch (dtype) {
    case MC_DT_F32: memcpy(&f, p + 4 * i, 4); return f;
    case MC_DT_BF16: { memcpy(&h, p + 2 * i, 2); uint32_t b = (uint32_t)h << 16; memcpy(&f, &b, 4); return f; }
    case MC_DT_F16: memcpy(&h, p + 2 * i, 2); return half_to_float(h);
    case MC_DT_F64: { double d; memcpy(&d, p + 8 * i, 8); return (float)d; }
    default: return 0;
    }
}

/* The model's top-k rule on router logits (softmax / sigmoid are monotone, so the order of
 * the logits decides): optional DeepSeek group limit (groups ranked by their best expert),
 * then top_k experts, ties to the lower index (moe-ref's rule). Adds (token, slot) pairs
 * per expert to cnt[E]. Returns 0, -1 when the tap cannot be read. */
int mc_route_counts(const struct mc_model *m, int64_t tokens, int64_t experts, int dtype, int layout,
                    const void *data, size_t len, int64_t *cnt)
{
    int esz = dtype == MC_DT_F32 ? 4 : dtype == MC_DT_F64 ? 8 : (dtype == MC_DT_BF16 || dtype == MC_DT_F16) ? 2 : 0;
    if (!esz || experts != m->experts || tokens <= 0 || experts <= 0 || experts > 4096 ||
        (uint64_t)tokens * (uint64_t)experts * (uint64_t)esz > len)
        return -1;
    float lg[4096];
    unsigned char allowed[4096], taken[4096];
    int64_t E = experts, K = m->top_k;
    int64_t G = m->n_group, TG = m->topk_group;
    int grouped = G > 1 && TG > 0 && TG < G && E % G == 0 && G <= 64;
    for (int64_t t = 0; t < tokens; t++) {
        for (int64_t e = 0; e < E; e++) {
            size_t i = layout == MC_LAYOUT_COL_MAJOR ? (size_t)(e * tokens + t) : (size_t)(t * E + e);
            lg[e] = logit_at(data, dtype, i);
            allowed[e] = 1;
            taken[e] = 0;
        }
        if (grouped) {
            int64_t gs = E / G;
            float gmax[64];
            unsigned char gsel[64];
            for (int64_t g = 0; g < G; g++) {
                gmax[g] = lg[g * gs]; gsel[g] = 0;
                for (int64_t e = g * gs; e < (g + 1) * gs; e++) if (lg[e] > gmax[g]) gmax[g] = lg[e];
            }
            for (int64_t r = 0; r < TG; r++) {
                int64_t best = -1;
                for (int64_t g = 0; g < G; g++) if (!gsel[g] && (best < 0 || gmax[g] > gmax[best])) best = g;
                if (best >= 0) gsel[best] = 1;
            }
            for (int64_t e = 0; e < E; e++) allowed[e] = gsel[e / gs];
        }
        for (int64_t r = 0; r < K && r < E; r++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++) if (allowed[e] && !taken[e] && (best < 0 || lg[e] > lg[best])) best = e;
            if (best < 0) for (int64_t e = 0; e < E; e++) if (!taken[e]) { best = e; break; }
            if (best < 0) break;
            taken[best] = 1;
            cnt[best]++;
        }
    }
    return 0;
}

/* Counts of a tapped MoE layer into a step: experts, tokens, and the fused kernels' bytes
 * and FLOPs (the same as one gate/up/down GEMM per activated expert would have). */
static void apply_tap(const struct mc_model *m, const int64_t *tap, int64_t *counts, int32_t *touched,
                      int64_t *n_touched, int64_t *activated, uint64_t *b_routed, uint64_t *f_routed,
                      uint64_t *f_gemm, int64_t base, int elt)
{
    if (!elt) elt = m->elt ? m->elt : 4;
    uint64_t eb = (uint64_t)mc_model_expert_params(m) * (uint64_t)elt;
    for (int64_t e = 0; e < m->experts; e++) {
        int64_t c = tap[e];
        if (c <= 0 || counts[base + e]) continue;
        counts[base + e] = c;
        if (touched) touched[(*n_touched)++] = (int32_t)(base + e);
        if (activated) (*activated)++;
        *b_routed += eb;
        uint64_t fl = 2ull * (uint64_t)c * (uint64_t)mc_model_expert_params(m);
        *f_routed += fl;
        *f_gemm += fl;
    }
}

static int take_tap(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t, int64_t *out)
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

#define PEND_MAX 256

static void compare_counts(struct mc_attrib *a, const int64_t *x, const int64_t *y, int router);

static void flush_pending(struct mc_attrib *a, int force)
{
    size_t n = 0;
    for (struct pend *p = a->pend_head; p; p = p->next) n++;
    while (a->pend_head && ((a->pend_head->n_need == 0 && !a->pend_head->open_end) || force || n > PEND_MAX)) {
        struct pend *p = a->pend_head;
        a->pend_head = p->next;
        if (!a->pend_head) a->pend_tail = NULL;
        n--;
        for (int i = 0; p->n_need && p->has_rtap && i < a->n_moe; i++)
            if (p->need[i] && p->has_rtap[i]) {   /* no top-k tap came: the router-logit tap's counts */
                apply_tap(a->m, p->rtap + (size_t)i * (size_t)a->m->experts, p->counts, NULL, NULL, &p->st.activated,
                          &p->st.bytes_routed, &p->st.flops_routed, &p->st.flops_gemm, (int64_t)i * a->m->experts, p->elt);
                p->need[i] = 0; p->n_need--; p->src[i] = 1;
            }
        if (p->n_need) a->st.tap_missing_layers += (uint64_t)p->n_need;
        p->st.counts = p->counts;
        p->st.context = p->ctx;
        if (a->cb) a->cb(&p->st, a->user);
        free(p->counts); free(p->ctx); free(p->router_t); free(p->need); free(p->src); free(p->rtap); free(p->has_rtap); free(p);
    }
}

/* Hand a finished step to the callback, or queue it (it waits for taps, or an earlier step
 * does: steps are delivered in order). */
static void deliver(struct mc_attrib *a, struct stream *s, struct mc_step *st, int n_need, int open_end,
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
        if (p) { free(p->counts); free(p->ctx); free(p->router_t); free(p->need); free(p->src); free(p->rtap); free(p->has_rtap); free(p); }
        a->st.tap_missing_layers += (uint64_t)n_need;
        flush_pending(a, 1);
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
    flush_pending(a, 0);
}

static void close_open_end(struct mc_attrib *a, int32_t pid, int32_t tid)
{
    int closed = 0;
    for (struct pend *p = a->pend_head; p; p = p->next)
        if (p->open_end && p->st.pid == pid && p->st.tid == tid) { p->open_end = 0; closed = 1; }
    if (closed) flush_pending(a, 0);
}

int mc_attrib_gpu_sync(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t_begin, uint64_t t_end)
{
    for (struct pend *p = a->pend_head; p; p = p->next) {
        if (!p->open_end || p->st.pid != pid || (tid >= 0 && p->st.tid != tid) || t_begin < p->lm_begin) continue;
        if (t_end > p->st.t_end_ns) p->st.t_end_ns = t_end;
        p->open_end = 0;
        flush_pending(a, 0);
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
                compare_counts(a, cnt, p->counts + (size_t)i * (size_t)m->experts, 1);
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
            apply_tap(m, cnt, p->counts, NULL, NULL, &p->st.activated, &p->st.bytes_routed,
                      &p->st.flops_routed, &p->st.flops_gemm, (int64_t)i * m->experts, p->elt);
            p->need[i] = 0;
            p->src[i] = 1;
            p->n_need--;
            free(cnt);
            flush_pending(a, 0);
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
static void compare_counts(struct mc_attrib *a, const int64_t *x, const int64_t *y, int router)
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
            if (p->has_rtap && p->has_rtap[i]) compare_counts(a, p->rtap + (size_t)i * (size_t)m->experts, cnt, 1);
            apply_tap(m, cnt, p->counts, NULL, NULL, &p->st.activated, &p->st.bytes_routed,
                      &p->st.flops_routed, &p->st.flops_gemm, (int64_t)i * m->experts, p->elt);
            p->need[i] = 0; p->n_need--; p->src[i] = 2;
            a->st.topk_used++;
            flush_pending(a, 0);
        } else compare_counts(a, cnt, c, p->src[i] == 1);
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

static void retry_topk(struct mc_attrib *a, int32_t pid, int force)
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

/* Close the step at lm_head: kinds, contexts, KV bytes, attention FLOPs, callback. */
static void finish_step(struct mc_attrib *a, struct stream *s, int64_t sequences)
{
    const struct mc_model *m = a->m;
    int64_t T = s->tokens_router ? s->tokens_router : s->tokens_first;
    if (T <= 0) T = sequences;
    int64_t B = sequences;
    int elt = s->elt ? s->elt : m->elt ? m->elt : 4;
    struct mc_step st;
    memset(&st, 0, sizeof st);
    const char *kind;
    /* MoE layers whose experts ran in a fused kernel (router, no expert GEMM): the taps. A
     * kernel-parameter (top-k) tap holds the kernel's own choice and wins; a router-logit tap
     * of the same layer is compared with it. */
    int n_need = 0;
    int64_t tapped_act = 0;
    for (int i = 0; i < a->n_moe; i++) {
        size_t base = (size_t)i * (size_t)m->experts;
        if (s->have_topk[i] && s->expert_calls[i])   /* experts ran as GEMMs too: check the tap */
            compare_counts(a, s->topk_counts + base, s->counts + base, 0);
        if (!s->router_t[i] || s->expert_calls[i]) continue;
        if (s->have_topk[i]) {
            if (s->have_tap[i]) compare_counts(a, s->tap_counts + base, s->topk_counts + base, 1);
            apply_tap(m, s->topk_counts + base, s->counts, s->touched, &s->n_touched,
                      &tapped_act, &s->b_routed, &s->f_routed, &s->f_gemm, (int64_t)base, elt);
            a->st.topk_used++;
        } else if (s->have_tap[i] && !a->topk_any)
            apply_tap(m, s->tap_counts + base, s->counts, s->touched, &s->n_touched,
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
        kind = "decode";
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
        kind = "mixed";
        int64_t old = s->nctx, nnew = B - old, rest = T - old;
        for (int64_t i = 0; i < old; i++) { s->ctx[i] += 1; att_ctx += (uint64_t)s->ctx[i]; }
        if (rest < nnew) { rest = nnew; s->ctx_exact = 0; }
        if (rest % nnew) s->ctx_exact = 0;
        for (int64_t i = 0; i < nnew; i++) {
            int64_t n = rest / nnew + (i < rest % nnew);
            s->ctx[old + i] = n;
            att_ctx += (uint64_t)(n * (n + 1) / 2);
        }
        if (rest % nnew == 0) s->plen = rest / nnew;
        s->nctx = B;
    } else {
        /* tokens > sequences: a prefill of new sequences, appended to the running ones (those
         * that finished leave at the next decode step). The split of T among them is not in
         * the trace: the most even one is assumed (exact for equal prompt lengths). */
        kind = "prefill";
        s->ctx_exact = (B > 0 && T % B == 0);
        if (B > 0 && T % B == 0) s->plen = T / B;
        first = s->nctx;
        for (int64_t i = 0; i < B; i++) {
            int64_t n = T / B + (i < T % B);
            s->ctx[first + i] = n;
            att_ctx += (uint64_t)(n * (n + 1) / 2);
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
    if (a->n_moe && s->routers != a->n_moe) a->st.router_mismatch_steps++;
    if ((m->fs > 0 && !s->shared_calls) || (a->n_moe < m->layers && !s->dense_ffn_calls))
        a->st.structure_mismatch_steps++;
    a->st.steps++;
    s->steps_done++;
    s->prev_end = s->t_end;
    deliver(a, s, &st, n_need, s->gpu, s->lm_begin);
    reset_step(s);
}

static void note_unknown(struct mc_attrib *a, int64_t out, int64_t in)
{
    for (int i = 0; i < a->n_unk; i++)
        if (a->unk_out[i] == out && a->unk_in[i] == in) { a->unk_count[i]++; return; }
    if (a->n_unk < 64) {
        a->unk_out[a->n_unk] = out; a->unk_in[a->n_unk] = in; a->unk_count[a->n_unk++] = 1;
    }
}

static int is_gemv(unsigned api)
{
    return api == MC_API_SGEMV_F77 || api == MC_API_DGEMV_F77 || api == MC_API_CBLAS_SGEMV ||
           api == MC_API_CBLAS_DGEMV;
}

static int role_is_dense_weight(enum mc_role r)
{
    return r == MC_ROLE_ATTN || r == MC_ROLE_ROUTER || r == MC_ROLE_LM_HEAD || r == MC_ROLE_DENSE_FFN;
}

/* Resolve (or classify and cache) the weight at `addr` seen with shape out x in and element
 * type dt by a GEMM that began at t. */
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

static struct went *lookup_weight(struct mc_attrib *a, struct stream *s, uint64_t addr,
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
    const struct interval *iv = (a->n_maps && a->n_tens) ? find_interval(a, s->pid, addr, t) : NULL;
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
            int ord = role == MC_ROLE_ROUTER ? s->routers : s->cur_moe;  /* router opens the next */
            layer = (ord >= 0 && ord < a->n_moe) ? a->moe_layers[ord] : -1;
        }
        if (role == MC_ROLE_EXPERT) {
            /* no name: a device range (allocation or copy destination) of exactly E x this
             * weight's bytes is an expert array, and the offset in it is the expert id
             * (moe-ref's [E, f, d] arrays, HF's 3-D expert parameters; GPU-NOTES) */
            int elt = mc_dtype_bytes(dt);
            if (!elt) elt = a->m->elt ? a->m->elt : 4;
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
            if (role == MC_ROLE_SHARED || role == MC_ROLE_SHARED_GATE) {
                int ord = s->cur_moe;
                layer = (ord >= 0 && ord < a->n_moe) ? a->moe_layers[ord] : -1;
            } else layer = -1;
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

void mc_attrib_gemm(struct mc_attrib *a, int32_t pid, const struct mc_rec_gemm *g)
{
    const struct mc_model *m = a->m;
    a->st.gemms++;
    struct stream *s = get_stream(a, pid, g->tid);
    if (!s) return;
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0) {   /* corrupt record: count, skip */
        a->st.unattributed++;
        return;
    }
    int64_t batch = g->batch > 1 ? g->batch : 1;
    uint64_t flops = 2ull * (uint64_t)g->m * (uint64_t)(g->n > 0 ? g->n : 1) * (uint64_t)g->k * (uint64_t)batch;
    /* Normalise: candidates (tokens, out, in, weight). */
    int64_t tok1, out1, in1, tok2, out2, in2;
    uint64_t w1, w2;
    int dt1, dt2;
    if (is_gemv(g->api)) {
        tok1 = tok2 = 1;
        if (g->trans_a == MC_OP_N) { out1 = g->m; in1 = g->k; } else { out1 = g->k; in1 = g->m; }
        out2 = out1; in2 = in1;
        w1 = w2 = g->a; dt1 = dt2 = g->dtype_a;
    } else {
        tok1 = g->m; out1 = g->n; in1 = g->k; w1 = g->b; dt1 = g->dtype_b;   /* Y = X * W^T */
        tok2 = g->n; out2 = g->m; in2 = g->k; w2 = g->a; dt2 = g->dtype_a;   /* Y^T = W * X^T */
    }
    /* Prefer the transposed operand as the weight (frameworks store W as out x in). */
    int prefer2 = !is_gemv(g->api) && g->trans_a != MC_OP_N && g->trans_b == MC_OP_N;
    if (!prefer2 && g->trans_a == g->trans_b && g->layout == MC_LAYOUT_COL_MAJOR) prefer2 = 1;
    struct went *w = NULL;
    int64_t tokens;
    int wdt;
    if (prefer2) {
        w = lookup_weight(a, s, w2, out2, in2, dt2, g->t_begin_ns, g->device >= 0); tokens = tok2; wdt = dt2;
        if (!w) { w = lookup_weight(a, s, w1, out1, in1, dt1, g->t_begin_ns, g->device >= 0); tokens = tok1; wdt = dt1; }
    } else {
        w = lookup_weight(a, s, w1, out1, in1, dt1, g->t_begin_ns, g->device >= 0); tokens = tok1; wdt = dt1;
        if (!w) { w = lookup_weight(a, s, w2, out2, in2, dt2, g->t_begin_ns, g->device >= 0); tokens = tok2; wdt = dt2; }
    }
    s->gpu = g->device >= 0;
    close_open_end(a, pid, g->tid);
    s->last_t = g->t_begin_ns;
    if (a->n_tw) retry_topk(a, pid, 0);
    if (!s->open) {
        s->open = 1;
        s->stamp = a->next_stamp++;
        s->t_begin = g->t_begin_ns;
        /* GPU: the step's host work began with its first CUDA call after the previous step
         * (token uploads, embedding launch), before the first (asynchronous) GEMM */
        if (s->gpu && s->pre_begin && s->pre_begin < s->t_begin) s->t_begin = s->pre_begin;
        s->pre_begin = 0;
    }
    s->t_end = g->t_end_ns;
    s->calls++;
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
    if (!elt) elt = m->elt ? m->elt : 4;
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
            s->have_tap[ord] = (uint8_t)take_tap(a, pid, g->tid, g->t_begin_ns,
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
        int ord = w->layer >= 0 && w->layer < m->layers ? a->moe_ord[w->layer] : s->cur_moe;
        if (ord >= 0 && ord < a->n_moe) s->expert_calls[ord]++;
        if (ord >= 0 && ord < a->n_moe && w->expert >= 0 && w->expert < m->experts) {
            int64_t idx = (int64_t)ord * m->experts + w->expert;
            if (tokens > 0 && !s->counts[idx]) s->touched[s->n_touched++] = (int32_t)idx;
            if (tokens > s->counts[idx]) s->counts[idx] = tokens;
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
        finish_step(a, s, tokens);
        break;
    default:
        if (first_use) s->b_dense += wbytes;
        break;
    }
}

void mc_attrib_finish(struct mc_attrib *a)
{
    if (a->n_tw) retry_topk(a, 0, 1);
    flush_pending(a, 1);
    for (struct stream *s = a->streams; s; s = s->next)
        if (s->open) { a->st.open_steps_dropped++; reset_step(s); }
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
