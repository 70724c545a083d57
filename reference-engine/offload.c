/* Expert offloading under a byte budget (see offload.h): the policy core (slots, LRU
 * eviction, SwapMoE-style resident sets with routing restricted to them and a background
 * swap thread, the step's counters and ground-truth members) over an engine's loader, and
 * the CPU engine's loader: host slots filled by pread of each expert tensor's exact file
 * range. Also linked into the CUDA engine's shared library: no symbol of the moe-ref
 * executable is used here. */
#include "offload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* swapmoe importance: imp <- DECAY * imp + (1 - DECAY) * (share of the step's routing picks) */
#define SWAP_DECAY 0.9

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

struct mr_offload {
    const mr_model *m;
    enum mr_offload_policy policy;
    struct mr_offload_loader ld;
    uint64_t budget, slot_bytes;
    int nslots, E, L, K;
    int *slot_key;               /* layer * E + expert, -1 empty */
    uint64_t *slot_tick;         /* ondemand: last use (LRU) */
    int *where;                  /* [L x E] slot or -1 */
    uint64_t tick;
    uint8_t *loaded_now;         /* [L x E] loaded in the current window */
    struct mr_offload_step st;
    /* swapmoe */
    int per_layer;               /* resident experts per MoE layer */
    int *moe_ord;                /* [L] MoE ordinal or -1 */
    double *imp;                 /* [L x E] importance */
    uint64_t *picks;             /* [L x E] unrestricted picks of the current step */
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int have_worker, job, busy, quit, io_failed;
    char io_err[256];
};

static int key_of(const struct mr_offload *o, int layer, int x) { return layer * o->E + x; }

static int count_moe_layers(const mr_model *m)
{
    int n = 0;
    for (int l = 0; l < m->cfg.layers; l++) n += !m->lw[l].dense;
    return n;
}

/* ---------- reading experts from the weights file ---------- */

int *mr_offload_open_files(const mr_model *m, char *err, size_t errlen)
{
    int *fds = malloc((size_t)(m->nfiles > 0 ? m->nfiles : 1) * sizeof *fds);
    if (!fds) { set_err(err, errlen, "out of memory"); return NULL; }
    for (int i = 0; i < m->nfiles; i++) {
        fds[i] = open(m->files[i].path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) {
            set_err(err, errlen, "%s: cannot open for expert reads: %s", m->files[i].path, strerror(errno));
            mr_offload_close_files(m, fds);   /* closes the ones opened; -1 entries are skipped */
            return NULL;
        }
    }
    return fds;
}

void mr_offload_close_files(const mr_model *m, int *fds)
{
    if (!fds) return;
    for (int i = 0; i < m->nfiles; i++) {
        if (fds[i] < 0) break;
        close(fds[i]);
    }
    free(fds);
}

/* The model tensor that starts at ptr (expert tensors are found by their mapped address). */
static const struct mr_tensor *tensor_at(const mr_model *m, const void *ptr)
{
    for (int i = 0; i < m->ntensors; i++) if (m->tensors[i].ptr == ptr) return &m->tensors[i];
    return NULL;
}

int mr_offload_read_expert(const mr_model *m, const int *fds, int layer, int x, float *dst, char *err, size_t errlen)
{
    const struct mr_layer_w *w = &m->lw[layer];
    const float *parts[3] = {w->eg[x], w->eu[x], w->ed[x]};
    size_t per = (size_t)m->cfg.hidden * (size_t)m->cfg.moe_inter;
    for (int p = 0; p < 3; p++) {
        const struct mr_tensor *t = tensor_at(m, parts[p]);
        if (!t || t->nbytes != per * sizeof(float)) {
            set_err(err, errlen, "expert %d of layer %d: tensor not found for offloading", x, layer);
            return -1;
        }
        char *buf = (char *)(dst + (size_t)p * per);
        size_t n = t->nbytes;
        uint64_t off = t->file_offset;
        while (n) {
            ssize_t r = pread(fds[t->file], buf, n, (off_t)off);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                set_err(err, errlen, "reading expert %d of layer %d from %s failed: %s", x, layer,
                        m->files[t->file].path, r < 0 ? strerror(errno) : "unexpected end of file");
                return -1;
            }
            buf += r; n -= (size_t)r; off += (uint64_t)r;
        }
    }
    return 0;
}

/* ---------- the policy core ---------- */

int mr_offload_plan(const mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes, uint64_t slot_bytes,
                    int *nslots_out, char *err, size_t errlen)
{
    const struct mr_config *c = &m->cfg;
    int n_moe = count_moe_layers(m);
    if (n_moe == 0 || c->experts <= 0) {
        set_err(err, errlen, "--offload: the model has no routed experts to offload");
        return -1;
    }
    uint64_t nslots = budget_bytes / slot_bytes, all = (uint64_t)n_moe * (uint64_t)c->experts;
    if (nslots > all) nslots = all;   /* more slots than experts would stay empty */
    uint64_t need = policy == MR_OFFLOAD_SWAPMOE ? (uint64_t)c->top_k * (uint64_t)n_moe : (uint64_t)c->top_k;
    if (nslots < need) {
        if (policy == MR_OFFLOAD_SWAPMOE)
            set_err(err, errlen, "--expert-budget %llu bytes holds %llu experts of %llu bytes; swapmoe keeps "
                    "top-k = %d resident experts in each of the %d MoE layers: at least %llu bytes",
                    (unsigned long long)budget_bytes, (unsigned long long)nslots, (unsigned long long)slot_bytes,
                    c->top_k, n_moe, (unsigned long long)(need * slot_bytes));
        else
            set_err(err, errlen, "--expert-budget %llu bytes holds %llu experts of %llu bytes; one MoE layer's "
                    "top-k = %d experts must be resident together: at least %llu bytes",
                    (unsigned long long)budget_bytes, (unsigned long long)nslots, (unsigned long long)slot_bytes,
                    c->top_k, (unsigned long long)(need * slot_bytes));
        return -1;
    }
    *nslots_out = (int)nslots;
    return 0;
}

/* Brings expert key into slot s through the loader and books it. */
static int load_into(struct mr_offload *o, int s, int key, char *err, size_t errlen)
{
    if (o->ld.load(o->ld.ctx, s, key / o->E, key % o->E, err, errlen)) return -1;
    if (o->slot_key[s] >= 0) o->where[o->slot_key[s]] = -1;
    else o->st.resident_experts++;
    o->slot_key[s] = key;
    o->where[key] = s;
    o->loaded_now[key] = 1;
    o->st.loaded_experts++;
    o->st.loaded_bytes += o->slot_bytes;
    return 0;
}

static void *swap_worker(void *arg);

struct mr_offload *mr_offload_new_with(const mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes,
                                       uint64_t slot_bytes, const struct mr_offload_loader *ld, char *err,
                                       size_t errlen, int *usage_error)
{
    const struct mr_config *c = &m->cfg;
    *usage_error = 0;
    int nslots;
    struct mr_offload *o = NULL;
    if (mr_offload_plan(m, policy, budget_bytes, slot_bytes, &nslots, err, errlen)) {
        *usage_error = 1;
        goto fail;
    }
    o = calloc(1, sizeof *o);
    if (!o) { set_err(err, errlen, "out of memory"); goto fail; }
    o->m = m; o->policy = policy; o->ld = *ld; o->budget = budget_bytes; o->slot_bytes = slot_bytes;
    o->nslots = nslots; o->E = c->experts; o->L = c->layers; o->K = c->top_k;
    size_t LE = (size_t)c->layers * (size_t)c->experts;
    o->slot_key = malloc((size_t)nslots * sizeof *o->slot_key);
    o->slot_tick = calloc((size_t)nslots, sizeof *o->slot_tick);
    o->where = malloc(LE * sizeof *o->where);
    o->loaded_now = calloc(LE, 1);
    o->moe_ord = malloc((size_t)c->layers * sizeof *o->moe_ord);
    o->imp = calloc(LE, sizeof *o->imp);
    o->picks = calloc(LE, sizeof *o->picks);
    if (!o->slot_key || !o->slot_tick || !o->where || !o->loaded_now || !o->moe_ord || !o->imp || !o->picks) {
        set_err(err, errlen, "out of memory for %d expert slots", nslots);
        mr_offload_free(o);
        return NULL;
    }
    for (int i = 0; i < nslots; i++) o->slot_key[i] = -1;
    for (size_t i = 0; i < LE; i++) o->where[i] = -1;
    for (int l = 0, ord = 0; l < c->layers; l++) o->moe_ord[l] = m->lw[l].dense ? -1 : ord++;
    if (policy == MR_OFFLOAD_SWAPMOE) {
        o->per_layer = nslots / count_moe_layers(m);
        /* initial sets: experts 0..per_layer-1 (importance all zero, ties to the lower id),
         * loaded before the first step; not traffic of any step */
        for (int l = 0; l < c->layers; l++) {
            if (o->moe_ord[l] < 0) continue;
            for (int j = 0; j < o->per_layer; j++)
                if (load_into(o, o->moe_ord[l] * o->per_layer + j, key_of(o, l, j), err, errlen)) {
                    mr_offload_free(o);
                    return NULL;
                }
        }
        if (o->ld.sync && o->ld.sync(o->ld.ctx, err, errlen)) { mr_offload_free(o); return NULL; }
        pthread_mutex_init(&o->mu, NULL);
        pthread_cond_init(&o->cv, NULL);
        if (pthread_create(&o->worker, NULL, swap_worker, o) != 0) {
            set_err(err, errlen, "cannot start the swap thread");
            pthread_mutex_destroy(&o->mu);
            pthread_cond_destroy(&o->cv);
            mr_offload_free(o);
            return NULL;
        }
        o->have_worker = 1;
    }
    memset(o->loaded_now, 0, LE);
    o->st.loaded_experts = o->st.loaded_bytes = 0;
    return o;
fail:
    if (ld->release) ld->release(ld->ctx);
    return NULL;
}

void mr_offload_free(struct mr_offload *o)
{
    if (!o) return;
    if (o->have_worker) {
        pthread_mutex_lock(&o->mu);
        o->quit = 1;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->worker, NULL);
        pthread_mutex_destroy(&o->mu);
        pthread_cond_destroy(&o->cv);
    }
    if (o->ld.release) o->ld.release(o->ld.ctx);
    free(o->slot_key); free(o->slot_tick); free(o->where); free(o->loaded_now); free(o->moe_ord);
    free(o->imp); free(o->picks);
    free(o);
}

int mr_offload_step_begin(struct mr_offload *o, char *err, size_t errlen)
{
    if (o->have_worker) {
        pthread_mutex_lock(&o->mu);
        while (o->job || o->busy) pthread_cond_wait(&o->cv, &o->mu);
        int failed = o->io_failed;
        pthread_mutex_unlock(&o->mu);
        if (failed) { snprintf(err, errlen, "%s", o->io_err); return -1; }
    } else {
        memset(o->loaded_now, 0, (size_t)o->L * (size_t)o->E);
        o->st.loaded_experts = o->st.loaded_bytes = 0;
    }
    /* the swap (if any) filled loaded_now / loaded_* for this step's window */
    o->st.hits = o->st.misses = o->st.rerouted_pairs = o->st.rerouted_tokens = 0;
    return 0;
}

int mr_offload_slot(struct mr_offload *o, int layer, int x, char *err, size_t errlen)
{
    int key = key_of(o, layer, x);
    int s = o->where[key];
    if (s < 0) {
        if (o->policy != MR_OFFLOAD_ONDEMAND) {   /* swapmoe routes to residents only */
            snprintf(err, errlen, "expert %d of layer %d is not resident", x, layer);
            return -1;
        }
        /* LRU: an empty slot, else the least recently used */
        s = 0;
        for (int i = 0; i < o->nslots; i++) {
            if (o->slot_key[i] < 0) { s = i; break; }
            if (o->slot_tick[i] < o->slot_tick[s]) s = i;
        }
        if (load_into(o, s, key, err, errlen)) return -1;
        o->st.misses++;
    } else if (o->loaded_now[key]) {
        o->st.misses++;   /* swapped in since the previous step ended */
    } else {
        o->st.hits++;
    }
    o->slot_tick[s] = ++o->tick;
    return s;
}

void mr_offload_route(struct mr_offload *o, int layer, const float *logits, int T, int *sel, float *w)
{
    (void)w;   /* a rerouted slot keeps its routing weight */
    if (o->policy != MR_OFFLOAD_SWAPMOE) return;
    int E = o->E, K = o->K;
    for (int t = 0; t < T; t++) {
        int *ts = sel + (size_t)t * K;
        const float *lg = logits + (size_t)t * E;
        int moved = 0;
        for (int r = 0; r < K; r++) o->picks[key_of(o, layer, ts[r])]++;
        for (int r = 0; r < K; r++) {
            if (o->where[key_of(o, layer, ts[r])] >= 0) continue;
            /* the best-scored resident expert the token has not chosen (ties: lower id) */
            int best = -1;
            for (int x = 0; x < E; x++) {
                if (o->where[key_of(o, layer, x)] < 0) continue;
                int taken = 0;
                for (int q = 0; q < K; q++) taken |= ts[q] == x;
                if (taken) continue;
                if (best < 0 || lg[x] > lg[best]) best = x;
            }
            if (best < 0) continue;   /* cannot happen: per_layer >= K residents */
            ts[r] = best;
            o->st.rerouted_pairs++;
            moved = 1;
        }
        o->st.rerouted_tokens += (uint64_t)moved;
    }
}

/* swapmoe, between steps: fold the step's picks into the importance, then per MoE layer
 * make the per_layer most important experts (ties: lower id) resident, each newcomer
 * replacing the least important resident that is not wanted. */
static int swap_sets(struct mr_offload *o)
{
    int E = o->E;
    memset(o->loaded_now, 0, (size_t)o->L * (size_t)E);
    o->st.loaded_experts = o->st.loaded_bytes = 0;
    int *want = malloc((size_t)E * sizeof *want);
    if (!want) { snprintf(o->io_err, sizeof o->io_err, "out of memory in the swap thread"); return -1; }
    for (int l = 0; l < o->L; l++) {
        if (o->moe_ord[l] < 0) continue;
        uint64_t tot = 0;
        for (int x = 0; x < E; x++) tot += o->picks[key_of(o, l, x)];
        for (int x = 0; x < E; x++) {
            double share = tot ? (double)o->picks[key_of(o, l, x)] / (double)tot : 0;
            o->imp[key_of(o, l, x)] = SWAP_DECAY * o->imp[key_of(o, l, x)] + (1 - SWAP_DECAY) * share;
            o->picks[key_of(o, l, x)] = 0;
        }
        for (int x = 0; x < E; x++) want[x] = 0;
        for (int j = 0; j < o->per_layer; j++) {   /* the per_layer most important */
            int best = -1;
            for (int x = 0; x < E; x++)
                if (!want[x] && (best < 0 || o->imp[key_of(o, l, x)] > o->imp[key_of(o, l, best)])) best = x;
            want[best] = 1;
        }
        for (int x = 0; x < E; x++) {
            if (!want[x] || o->where[key_of(o, l, x)] >= 0) continue;
            int victim = -1;   /* least important unwanted resident (ties: higher id) */
            for (int y = 0; y < E; y++)
                if (!want[y] && o->where[key_of(o, l, y)] >= 0 &&
                    (victim < 0 || o->imp[key_of(o, l, y)] <= o->imp[key_of(o, l, victim)]))
                    victim = y;
            if (victim < 0) break;
            if (load_into(o, o->where[key_of(o, l, victim)], key_of(o, l, x), o->io_err, sizeof o->io_err)) {
                free(want);
                return -1;
            }
        }
    }
    free(want);
    return o->ld.sync ? o->ld.sync(o->ld.ctx, o->io_err, sizeof o->io_err) : 0;
}

static void *swap_worker(void *arg)
{
    struct mr_offload *o = arg;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->job && !o->quit) pthread_cond_wait(&o->cv, &o->mu);
        if (o->quit) break;
        o->job = 0;
        o->busy = 1;
        pthread_mutex_unlock(&o->mu);
        int rc = swap_sets(o);   /* the step thread waits in step_begin: no shared access */
        pthread_mutex_lock(&o->mu);
        if (rc) o->io_failed = 1;
        o->busy = 0;
        pthread_cond_broadcast(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

void mr_offload_step_end(struct mr_offload *o)
{
    uint64_t n = 0;
    for (int s = 0; s < o->nslots; s++) n += o->slot_key[s] >= 0;
    o->st.resident_experts = n;
    o->st.resident_bytes = n * o->slot_bytes;
}

void mr_offload_swap_start(struct mr_offload *o)
{
    if (!o->have_worker) return;
    pthread_mutex_lock(&o->mu);
    o->job = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

const struct mr_offload_step *mr_offload_stats(const struct mr_offload *o) { return &o->st; }

void mr_offload_gt_layer(const struct mr_offload *o, FILE *gt, int layer)
{
    fprintf(gt, ", \"loaded\": [");
    int first = 1;
    for (int x = 0; x < o->E; x++)
        if (o->loaded_now[key_of(o, layer, x)]) { fprintf(gt, "%s%d", first ? "" : ", ", x); first = 0; }
    fputc(']', gt);
}

void mr_offload_gt_step(const struct mr_offload *o, FILE *gt)
{
    const struct mr_offload_step *s = &o->st;
    fprintf(gt, ", \"offload\": {\"policy\": \"%s\", \"budget_bytes\": %llu, \"slot_bytes\": %llu, "
            "\"slots\": %d, \"hits\": %llu, \"misses\": %llu, \"loaded_experts\": %llu, "
            "\"loaded_bytes\": %llu, \"loaded_from\": \"%s\", \"resident_experts\": %llu, "
            "\"resident_bytes\": %llu, \"rerouted_pairs\": %llu, \"rerouted_tokens\": %llu}",
            o->policy == MR_OFFLOAD_SWAPMOE ? "swapmoe" : "ondemand", (unsigned long long)o->budget,
            (unsigned long long)o->slot_bytes, o->nslots, (unsigned long long)s->hits, (unsigned long long)s->misses,
            (unsigned long long)s->loaded_experts, (unsigned long long)s->loaded_bytes, o->ld.from,
            (unsigned long long)s->resident_experts, (unsigned long long)s->resident_bytes,
            (unsigned long long)s->rerouted_pairs, (unsigned long long)s->rerouted_tokens);
}

/* ---------- the CPU engine's loader ---------- */

struct host_slots {
    const mr_model *m;
    float *slots;                /* nslots x 3 x f x d */
    size_t expert_floats;        /* 3 x f x d */
    int *fds;
};

static int host_load(void *ctx, int slot, int layer, int expert, char *err, size_t errlen)
{
    struct host_slots *h = ctx;
    return mr_offload_read_expert(h->m, h->fds, layer, expert, h->slots + (size_t)slot * h->expert_floats, err, errlen);
}

static void host_release(void *ctx)
{
    struct host_slots *h = ctx;
    if (!h) return;
    mr_offload_close_files(h->m, h->fds);
    free(h->slots);
    free(h);
}

struct mr_offload *mr_offload_new(mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes,
                                  char *err, size_t errlen, int *usage_error)
{
    const struct mr_config *c = &m->cfg;
    *usage_error = 0;
    size_t expert_floats = 3 * (size_t)c->hidden * (size_t)c->moe_inter;
    uint64_t slot_bytes = expert_floats * sizeof(float);
    int nslots;
    if (mr_offload_plan(m, policy, budget_bytes, slot_bytes, &nslots, err, errlen)) { *usage_error = 1; return NULL; }
    struct host_slots *h = calloc(1, sizeof *h);
    if (!h) { set_err(err, errlen, "out of memory"); return NULL; }
    h->m = m;
    h->expert_floats = expert_floats;
    h->slots = aligned_alloc(64, ((size_t)nslots * slot_bytes + 63) / 64 * 64);
    h->fds = h->slots ? mr_offload_open_files(m, err, errlen) : NULL;
    if (!h->slots || !h->fds) {
        if (!h->slots) set_err(err, errlen, "out of memory for %d expert slots", nslots);
        host_release(h);
        return NULL;
    }
    /* fault the slots in now: their first use is not a step's page faults */
    memset(h->slots, 0, (size_t)nslots * slot_bytes);
    /* the mapping's copy of the routed experts is not used: give its pages back, so only the
     * slots hold expert bytes in this process */
    long page = sysconf(_SC_PAGESIZE);
    for (int l = 0; l < c->layers; l++) {
        if (m->lw[l].dense) continue;
        for (int x = 0; x < c->experts; x++) {
            const float *p3[3] = {m->lw[l].eg[x], m->lw[l].eu[x], m->lw[l].ed[x]};
            for (int p = 0; p < 3; p++) {
                const struct mr_tensor *t = tensor_at(m, p3[p]);
                if (!t) continue;
                uintptr_t b = ((uintptr_t)t->ptr + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
                uintptr_t e = ((uintptr_t)t->ptr + t->nbytes) & ~((uintptr_t)page - 1);
                if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
            }
        }
    }
    struct mr_offload_loader ld = {h, host_load, NULL, host_release, "file"};
    return mr_offload_new_with(m, policy, budget_bytes, slot_bytes, &ld, err, errlen, usage_error);
}

int mr_offload_expert(struct mr_offload *o, int layer, int x, const float **gate, const float **up,
                      const float **down, char *err, size_t errlen)
{
    int s = mr_offload_slot(o, layer, x, err, errlen);
    if (s < 0) return -1;
    const struct host_slots *h = o->ld.ctx;
    size_t per = h->expert_floats / 3;
    const float *base = h->slots + (size_t)s * h->expert_floats;
    *gate = base;
    *up = base + per;
    *down = base + 2 * per;
    return 0;
}

int mr_parse_offload(const char *prog, const char *budget_arg, const char *policy_arg,
                     enum mr_offload_policy *policy)
{
    *policy = MR_OFFLOAD_NONE;
    if (!budget_arg && !policy_arg) return 0;
    if (!budget_arg) {
        fprintf(stderr, "%s: --offload needs --expert-budget BYTES\n", prog);
        return -1;
    }
    if (!policy_arg || !strcmp(policy_arg, "ondemand")) *policy = MR_OFFLOAD_ONDEMAND;
    else if (!strcmp(policy_arg, "swapmoe")) *policy = MR_OFFLOAD_SWAPMOE;
    else {
        fprintf(stderr, "%s: --offload %s: expected ondemand or swapmoe\n", prog, policy_arg);
        return -1;
    }
    return 0;
}

int mr_budget_bytes(const char *prog, const mr_model *m, const char *budget_arg, int elt, uint64_t *bytes)
{
    const struct mr_config *c = &m->cfg;
    char *end;
    errno = 0;
    double v = strtod(budget_arg, &end);
    int pct = *end == '%' && end[1] == 0;
    if (errno || end == budget_arg || (*end && !pct) || !(v >= 0) || (!pct && v != (double)(uint64_t)v) ||
        v > 1e18) {
        fprintf(stderr, "%s: --expert-budget %s: expected a number of bytes or a percentage (e.g. 50%%)\n",
                prog, budget_arg);
        return -1;
    }
    if (pct) {
        uint64_t all = 0;
        for (int l = 0; l < c->layers; l++)
            if (!m->lw[l].dense) all += (uint64_t)c->experts * 3 * (uint64_t)c->hidden * (uint64_t)c->moe_inter * (uint64_t)elt;
        *bytes = (uint64_t)((double)all * v / 100.0);
    } else {
        *bytes = (uint64_t)v;
    }
    return 0;
}
