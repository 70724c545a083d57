/* Weight naming for attribution (docs/attribution.md §3, §3b): role / layer / expert /
 * projection from a tensor name, and address -> tensor name over time — safetensors
 * tensors, host and device file maps, host->device copies joined with host maps (first
 * pass), turned into sorted intervals looked up per GEMM weight. */
#include "report/attrib_internal.h"

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

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
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
    f->t_from = device >= 0 || rule == RULE_HOST_READ ? t : 0;
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

void mc_attrib_file_read_t(struct mc_attrib *a, int32_t pid, const char *path, uint64_t addr,
                           uint64_t off, uint64_t len, uint64_t t)
{
    if (!path || !len) return;
    add_map(a, pid, base_name(path), addr, off, len, -1, t, RULE_HOST_READ);
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
static int readmap_cmp(const void *x, const void *y)
{
    const struct fmap_ent *p = &g_sort_maps[*(const size_t *)x], *q = &g_sort_maps[*(const size_t *)y];
    if (p->pid != q->pid) return p->pid < q->pid ? -1 : 1;
    if (p->addr != q->addr) return p->addr < q->addr ? -1 : 1;
    return p->t_rec < q->t_rec ? -1 : p->t_rec > q->t_rec;
}

/* Read buffers are reused (an offloading engine's expert slots): a read's names end at the
 * first later read into overlapping memory of the same process that brings other bytes.
 * Reads sorted by (pid, address, time); the overlapping ones of a read are its neighbours
 * within the longest read's length. */
static void end_read_maps(struct mc_attrib *a)
{
    size_t n = 0, *ix = malloc((a->n_maps ? a->n_maps : 1) * sizeof *ix);
    if (!ix) return;
    uint64_t maxlen = 0;
    for (size_t j = 0; j < a->n_maps; j++)
        if (a->maps[j].rule == RULE_HOST_READ) {
            ix[n++] = j;
            if (a->maps[j].len > maxlen) maxlen = a->maps[j].len;
        }
    g_sort_maps = a->maps;
    qsort(ix, n, sizeof *ix, readmap_cmp);
    for (size_t i = 0; i < n; i++) {
        struct fmap_ent *f = &a->maps[ix[i]];
        uint64_t end = UINT64_MAX;
        for (size_t j = i + 1; j < n; j++) {   /* reads starting inside f */
            const struct fmap_ent *g = &a->maps[ix[j]];
            if (g->pid != f->pid || g->addr >= f->addr + f->len) break;
            if (g->t_rec > f->t_rec && g->t_rec < end &&
                !(g->addr == f->addr && g->off == f->off && !strcmp(g->base, f->base)))
                end = g->t_rec;
        }
        for (size_t j = i; j-- > 0;) {          /* reads starting before f that reach into it */
            const struct fmap_ent *g = &a->maps[ix[j]];
            if (g->pid != f->pid || g->addr + maxlen <= f->addr) break;
            if (g->addr + g->len > f->addr && g->t_rec > f->t_rec && g->t_rec < end &&
                !(g->addr == f->addr && g->off == f->off && !strcmp(g->base, f->base)))
                end = g->t_rec;
        }
        f->t_until = end;
    }
    free(ix);
}
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
    if (dev && n_dev) { g_sort_maps = a->maps; qsort(dev, n_dev, sizeof *dev, devmap_cmp); }
    for (size_t i = 0; i < a->n_h2d; i++) {
        const struct h2d_ent *c = &a->h2d[i];
        /* the host map holding the copied bytes: of several (a read buffer filled again), the
         * latest one recorded before the copy, else the first */
        const struct fmap_ent *hm = NULL;
        int part = 0;   /* some host map holds part of the copied bytes */
        for (size_t j = 0; j < n_host; j++) {
            const struct fmap_ent *f = &a->maps[j];
            if (f->device >= 0 || f->pid != c->pid || c->src + c->bytes < c->src) continue;
            if (c->src < f->addr + f->len && f->addr < c->src + c->bytes) part = 1;
            if (c->src < f->addr || c->src + c->bytes > f->addr + f->len) continue;
            int before = f->t_rec <= c->t;
            if (!hm || (before && (hm->t_rec > c->t || f->t_rec >= hm->t_rec))) hm = f;
        }
        if (!hm) {
            /* anonymous bytes (converted buffers, activations): only ranges an expert array fits;
             * bytes of several reads (an expert's tensors read one by one into a staging buffer,
             * which the shim's device maps describe piece by piece): the copy ends whatever its
             * destination held before, whatever its size */
            if (part || c->bytes >= min_expert_range) mc_devmem_copy(a->dm, c->pid, c->device, c->dst, c->bytes, c->t, 0);
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
    end_read_maps(a);
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
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    return a->t_from < b->t_from ? -1 : a->t_from > b->t_from;
}

/* tensors ordered by (file, first byte, table order), for the placement search below */
static const struct tensor_ent *g_sort_tens;   /* qsort has no context argument in C11 */
static int tens_cmp(const void *x, const void *y)
{
    const struct tensor_ent *p = &g_sort_tens[*(const size_t *)x], *q = &g_sort_tens[*(const size_t *)y];
    int c = strcmp(p->base, q->base);
    if (c) return c;
    if (p->fb != q->fb) return p->fb < q->fb ? -1 : 1;
    return *(const size_t *)x < *(const size_t *)y ? -1 : *(const size_t *)x > *(const size_t *)y;
}

static int size_cmp(const void *x, const void *y)
{
    size_t p = *(const size_t *)x, q = *(const size_t *)y;
    return p < q ? -1 : p > q;
}

/* Placements of tensors in mapped memory: every tensor wholly inside every map of its file.
 * Maps x tensors can be large for a hostile trace (n maps of an n-tensor file: n^2), so the
 * search is by binary search over the tensors sorted by offset, and the table holds at most
 * max(2^20, 16 x (tensors + maps)) placements (56 bytes each); the maps past that bound are
 * not placed (counted). */
static void rebuild_intervals(struct mc_attrib *a)
{
    a->iv_dirty = 0;
    free(a->iv); a->iv = NULL; a->n_iv = 0;
    size_t cap = 0, limit = 16 * (a->n_tens + a->n_maps);
    if (limit < ((size_t)1 << 20)) limit = (size_t)1 << 20;
    size_t *ord = malloc((a->n_tens ? a->n_tens : 1) * sizeof *ord), *hit = malloc((a->n_tens ? a->n_tens : 1) * sizeof *hit);
    if (!ord || !hit) { free(ord); free(hit); return; }
    for (size_t j = 0; j < a->n_tens; j++) ord[j] = j;
    g_sort_tens = a->tens;
    if (a->n_tens) qsort(ord, a->n_tens, sizeof *ord, tens_cmp);
    uint64_t dropped = 0;
    for (size_t i = 0; i < a->n_maps; i++) {
        const struct fmap_ent *f = &a->maps[i];
        if (a->n_iv >= limit) { dropped += a->n_maps - i; break; }
        if (f->t_until <= f->t_from) continue;   /* overwritten before it could be used */
        size_t lo = 0, hi = a->n_tens;
        while (lo < hi) {   /* first tensor of f's file at or after f->off */
            size_t mid = (lo + hi) / 2;
            const struct tensor_ent *t = &a->tens[ord[mid]];
            int c = strcmp(t->base, f->base);
            if (c < 0 || (c == 0 && t->fb < f->off)) lo = mid + 1; else hi = mid;
        }
        size_t nh = 0;
        for (size_t k = lo; k < a->n_tens; k++) {
            const struct tensor_ent *t = &a->tens[ord[k]];
            if (t->fb - f->off >= f->len || strcmp(t->base, f->base)) break;
            if (t->fe >= t->fb && t->fe - f->off <= f->len) hit[nh++] = ord[k];
        }
        if (nh > 1) qsort(hit, nh, sizeof *hit, size_cmp);   /* table order, as placements always came */
        for (size_t k = 0; k < nh; k++) {
            const struct tensor_ent *t = &a->tens[hit[k]];
            if (a->n_iv >= limit) { dropped++; break; }
            if (a->n_iv == cap) {
                cap = cap ? cap * 2 : 256;
                void *p = realloc(a->iv, cap * sizeof *a->iv);
                if (!p) { free(ord); free(hit); return; }
                a->iv = p;
            }
            a->iv[a->n_iv++] = (struct interval){f->pid, f->rule, f->addr + (t->fb - f->off), f->addr + (t->fe - f->off),
                                                 f->t_from, f->t_until, t};
        }
    }
    free(ord); free(hit);
    a->st.placements_dropped = dropped;
    if (a->n_iv) qsort(a->iv, a->n_iv, sizeof *a->iv, iv_cmp);   /* qsort(NULL, 0) is undefined */
}

/* The tensor at addr of process pid at time t (device names hold only while their memory
 * does; read buffers until they are read into again). Intervals are sorted by (pid, start,
 * valid-from): a reused buffer (an expert slot filled thousands of times) is one group of
 * equal starts, searched by time. */
const struct interval *attrib_find_interval(struct mc_attrib *a, int32_t pid, uint64_t addr, uint64_t t)
{
    if (a->iv_dirty) rebuild_intervals(a);
    size_t lo = 0, hi = a->n_iv;
    while (lo < hi) {   /* first interval after (pid, addr) */
        size_t mid = (lo + hi) / 2;
        if (a->iv[mid].pid < pid || (a->iv[mid].pid == pid && a->iv[mid].b <= addr)) lo = mid + 1; else hi = mid;
    }
    /* the groups of equal starts at or before addr, nearest first (mappings of the same file
     * may repeat); in each, the latest interval valid from t or before */
    for (int groups = 0; lo > 0 && groups < 64; groups++) {
        const struct interval *last = &a->iv[lo - 1];
        if (last->pid != pid) break;
        size_t gs = 0, ge = lo;
        hi = lo;
        while (gs < hi) {   /* first interval of the group (same pid and start) */
            size_t mid = (gs + hi) / 2;
            if (a->iv[mid].pid < pid || (a->iv[mid].pid == pid && a->iv[mid].b < last->b)) gs = mid + 1; else hi = mid;
        }
        size_t l2 = gs, h2 = ge;
        while (l2 < h2) {   /* first interval of the group valid from after t */
            size_t mid = (l2 + h2) / 2;
            if (a->iv[mid].t_from <= t) l2 = mid + 1; else h2 = mid;
        }
        for (size_t i = l2, seen = 0; i-- > gs && seen < 64; seen++)
            if (addr < a->iv[i].e && t < a->iv[i].t_until) return &a->iv[i];
        lo = gs;
    }
    return NULL;
}

static int load_cmp(const void *x, const void *y)
{
    const struct mc_expert_load *p = x, *q = y;
    if (p->pid != q->pid) return p->pid < q->pid ? -1 : 1;
    return p->t_from < q->t_from ? -1 : p->t_from > q->t_from;
}

struct mc_expert_load *mc_attrib_expert_loads(const struct mc_attrib *a, size_t *n_out)
{
    struct mc_expert_load *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < a->n_maps; i++) {
        const struct fmap_ent *f = &a->maps[i];
        if (f->rule == RULE_HOST || f->t_until <= f->t_from) continue;   /* mappings are not loads */
        for (size_t j = 0; j < a->n_tens; j++) {
            const struct tensor_ent *t = &a->tens[j];
            if (t->fb < f->off || t->fe > f->off + f->len || strcmp(t->base, f->base)) continue;
            int layer, expert;
            enum mc_proj proj;
            if (mc_role_from_name(t->name, &layer, &expert, &proj) != MC_ROLE_EXPERT || layer < 0 || expert < 0) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                void *p = realloc(v, cap * sizeof *v);
                if (!p) { free(v); *n_out = 0; return NULL; }
                v = p;
            }
            v[n++] = (struct mc_expert_load){f->pid, f->device, layer, expert, (int)proj, f->t_from, f->t_until,
                                             t->fe - t->fb};
        }
    }
    if (n) qsort(v, n, sizeof *v, load_cmp);
    *n_out = n;
    return v;
}
