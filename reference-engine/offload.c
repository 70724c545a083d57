/* Expert offloading under a byte budget (see offload.h): slots, pread of an expert's exact
 * tensor ranges from the weights file, LRU eviction (ondemand), and SwapMoE-style resident
 * sets per layer with routing restricted to them and a background swap thread (swapmoe). */
#include "offload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* swapmoe importance: imp <- DECAY * imp + (1 - DECAY) * (share of the step's routing picks) */
#define SWAP_DECAY 0.9

struct src_range { int file; uint64_t off; size_t n; };   /* one tensor's bytes in its file */

struct mr_offload {
    mr_model *m;
    enum mr_offload_policy policy;
    uint64_t budget, slot_bytes;
    int nslots, E, L, K;
    size_t tensor_floats;        /* f x d: gate, up and down each */
    float *slots;                /* nslots x 3 x tensor_floats */
    int *slot_key;               /* layer * E + expert, -1 empty */
    uint64_t *slot_tick;         /* ondemand: last use (LRU) */
    int *where;                  /* [L x E] slot or -1 */
    struct src_range *src;       /* [L x E x 3] gate, up, down */
    int *fds;                    /* one read-only descriptor per weights file */
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

static int read_exact(int fd, void *buf, size_t n, uint64_t off)
{
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r; n -= (size_t)r; off += (uint64_t)r;
    }
    return 0;
}

/* Reads expert key's three tensors into slot s (callers account for it). */
static int load_into(struct mr_offload *o, int s, int key, char *err, size_t errlen)
{
    float *dst = o->slots + (size_t)s * 3 * o->tensor_floats;
    for (int p = 0; p < 3; p++) {
        const struct src_range *r = &o->src[(size_t)key * 3 + p];
        if (read_exact(o->fds[r->file], dst + (size_t)p * o->tensor_floats, r->n, r->off)) {
            snprintf(err, errlen, "reading expert %d of layer %d from %s failed: %s", key % o->E, key / o->E,
                     o->m->files[r->file].path, strerror(errno ? errno : EIO));
            return -1;
        }
    }
    if (o->slot_key[s] >= 0) o->where[o->slot_key[s]] = -1;
    else o->st.resident_experts++;
    o->slot_key[s] = key;
    o->where[key] = s;
    o->loaded_now[key] = 1;
    o->st.loaded_experts++;
    o->st.loaded_bytes += o->slot_bytes;
    return 0;
}

/* The model tensor that starts at ptr (expert tensors are found by their mapped address). */
static const struct mr_tensor *tensor_at(const mr_model *m, const void *ptr)
{
    for (int i = 0; i < m->ntensors; i++) if (m->tensors[i].ptr == ptr) return &m->tensors[i];
    return NULL;
}

static void *swap_worker(void *arg);

struct mr_offload *mr_offload_new(mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes,
                                  char *err, size_t errlen, int *usage_error)
{
    const struct mr_config *c = &m->cfg;
    *usage_error = 0;
    int n_moe = 0;
    for (int l = 0; l < c->layers; l++) n_moe += !m->lw[l].dense;
    if (n_moe == 0 || c->experts <= 0) {
        mr_set_err(err, errlen, "--offload: the model has no routed experts to offload");
        *usage_error = 1;
        return NULL;
    }
    uint64_t tensor_bytes = (uint64_t)c->hidden * (uint64_t)c->moe_inter * sizeof(float);
    uint64_t slot_bytes = 3 * tensor_bytes;
    uint64_t nslots = budget_bytes / slot_bytes, all = (uint64_t)n_moe * (uint64_t)c->experts;
    if (nslots > all) nslots = all;   /* more slots than experts would stay empty */
    uint64_t need = policy == MR_OFFLOAD_SWAPMOE ? (uint64_t)c->top_k * (uint64_t)n_moe : (uint64_t)c->top_k;
    if (nslots < need) {
        if (policy == MR_OFFLOAD_SWAPMOE)
            mr_set_err(err, errlen, "--expert-budget %llu bytes holds %llu experts of %llu bytes; swapmoe keeps "
                       "top-k = %d resident experts in each of the %d MoE layers: at least %llu bytes",
                       (unsigned long long)budget_bytes, (unsigned long long)nslots, (unsigned long long)slot_bytes,
                       c->top_k, n_moe, (unsigned long long)(need * slot_bytes));
        else
            mr_set_err(err, errlen, "--expert-budget %llu bytes holds %llu experts of %llu bytes; one MoE layer's "
                       "top-k = %d experts must be resident together: at least %llu bytes",
                       (unsigned long long)budget_bytes, (unsigned long long)nslots, (unsigned long long)slot_bytes,
                       c->top_k, (unsigned long long)(need * slot_bytes));
        *usage_error = 1;
        return NULL;
    }
    struct mr_offload *o = calloc(1, sizeof *o);
    if (!o) { mr_set_err(err, errlen, "out of memory"); return NULL; }
    o->m = m; o->policy = policy; o->budget = budget_bytes; o->slot_bytes = slot_bytes;
    o->nslots = (int)nslots; o->E = c->experts; o->L = c->layers; o->K = c->top_k;
    o->tensor_floats = (size_t)c->hidden * (size_t)c->moe_inter;
    size_t LE = (size_t)c->layers * (size_t)c->experts;
    o->slots = aligned_alloc(64, ((size_t)nslots * slot_bytes + 63) / 64 * 64);
    o->slot_key = malloc((size_t)nslots * sizeof *o->slot_key);
    o->slot_tick = calloc((size_t)nslots, sizeof *o->slot_tick);
    o->where = malloc(LE * sizeof *o->where);
    o->src = calloc(LE * 3, sizeof *o->src);
    o->fds = malloc((size_t)m->nfiles * sizeof *o->fds);
    o->loaded_now = calloc(LE, 1);
    o->moe_ord = malloc((size_t)c->layers * sizeof *o->moe_ord);
    o->imp = calloc(LE, sizeof *o->imp);
    o->picks = calloc(LE, sizeof *o->picks);
    if (!o->slots || !o->slot_key || !o->slot_tick || !o->where || !o->src || !o->fds || !o->loaded_now ||
        !o->moe_ord || !o->imp || !o->picks) {
        mr_set_err(err, errlen, "out of memory for %llu expert slots", (unsigned long long)nslots);
        mr_offload_free(o);
        return NULL;
    }
    /* fault the slots in now: their first use is not a step's page faults */
    memset(o->slots, 0, (size_t)nslots * slot_bytes);
    for (int i = 0; i < o->nslots; i++) o->slot_key[i] = -1;
    for (size_t i = 0; i < LE; i++) o->where[i] = -1;
    for (int i = 0; i < m->nfiles; i++) o->fds[i] = -1;
    for (int i = 0; i < m->nfiles; i++) {
        o->fds[i] = open(m->files[i].path, O_RDONLY | O_CLOEXEC);
        if (o->fds[i] < 0) {
            mr_set_err(err, errlen, "%s: cannot open for expert reads: %s", m->files[i].path, strerror(errno));
            mr_offload_free(o);
            return NULL;
        }
    }
    long page = sysconf(_SC_PAGESIZE);
    int ord = 0;
    for (int l = 0; l < c->layers; l++) {
        const struct mr_layer_w *w = &m->lw[l];
        o->moe_ord[l] = w->dense ? -1 : ord++;
        if (w->dense) continue;
        for (int x = 0; x < c->experts; x++) {
            const float *p3[3] = {w->eg[x], w->eu[x], w->ed[x]};
            for (int p = 0; p < 3; p++) {
                const struct mr_tensor *t = tensor_at(m, p3[p]);
                if (!t || t->nbytes != tensor_bytes) {
                    mr_set_err(err, errlen, "expert %d of layer %d: tensor not found for offloading", x, l);
                    mr_offload_free(o);
                    return NULL;
                }
                o->src[(size_t)key_of(o, l, x) * 3 + p] = (struct src_range){t->file, t->file_offset, t->nbytes};
                /* the mapping's copy of offloaded tensors is not used: give its pages back,
                 * so only the slots hold expert bytes in this process */
                uintptr_t b = ((uintptr_t)t->ptr + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
                uintptr_t e = ((uintptr_t)t->ptr + t->nbytes) & ~((uintptr_t)page - 1);
                if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
            }
        }
    }
    if (policy == MR_OFFLOAD_SWAPMOE) {
        o->per_layer = o->nslots / n_moe;
        /* initial sets: experts 0..per_layer-1 (importance all zero, ties to the lower id),
         * read before the first step; not traffic of any step */
        for (int l = 0; l < c->layers; l++) {
            if (o->moe_ord[l] < 0) continue;
            for (int j = 0; j < o->per_layer; j++)
                if (load_into(o, o->moe_ord[l] * o->per_layer + j, key_of(o, l, j), err, errlen)) {
                    mr_offload_free(o);
                    return NULL;
                }
        }
        pthread_mutex_init(&o->mu, NULL);
        pthread_cond_init(&o->cv, NULL);
        if (pthread_create(&o->worker, NULL, swap_worker, o) != 0) {
            mr_set_err(err, errlen, "cannot start the swap thread");
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
    for (int i = 0; o->fds && i < o->m->nfiles; i++) if (o->fds[i] >= 0) close(o->fds[i]);
    free(o->slots); free(o->slot_key); free(o->slot_tick); free(o->where); free(o->src); free(o->fds);
    free(o->loaded_now); free(o->moe_ord); free(o->imp); free(o->picks);
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

int mr_offload_expert(struct mr_offload *o, int layer, int x, const float **gate, const float **up,
                      const float **down, char *err, size_t errlen)
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
    const float *base = o->slots + (size_t)s * 3 * o->tensor_floats;
    *gate = base;
    *up = base + o->tensor_floats;
    *down = base + 2 * o->tensor_floats;
    return 0;
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
    const struct mr_config *c = &o->m->cfg;
    int E = o->E;
    memset(o->loaded_now, 0, (size_t)o->L * (size_t)E);
    o->st.loaded_experts = o->st.loaded_bytes = 0;
    int *want = malloc((size_t)E * sizeof *want);
    if (!want) { snprintf(o->io_err, sizeof o->io_err, "out of memory in the swap thread"); return -1; }
    for (int l = 0; l < c->layers; l++) {
        if (o->moe_ord[l] < 0) continue;
        uint64_t tot = 0;
        for (int x = 0; x < E; x++) tot += o->picks[key_of(o, l, x)];
        for (int x = 0; x < E; x++) {
            double share = tot ? (double)o->picks[key_of(o, l, x)] / (double)tot : 0;
            o->imp[key_of(o, l, x)] = SWAP_DECAY * o->imp[key_of(o, l, x)] + (1 - SWAP_DECAY) * share;
            o->picks[key_of(o, l, x)] = 0;
        }
        /* rank: want[x] = 1 for the per_layer most important */
        for (int x = 0; x < E; x++) want[x] = 0;
        for (int j = 0; j < o->per_layer; j++) {
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
    return 0;
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
int mr_offload_loaded(const struct mr_offload *o, int layer, int x) { return o->loaded_now[key_of(o, layer, x)]; }
const char *mr_offload_policy_name(const struct mr_offload *o)
{
    return o->policy == MR_OFFLOAD_SWAPMOE ? "swapmoe" : "ondemand";
}
uint64_t mr_offload_budget(const struct mr_offload *o) { return o->budget; }
uint64_t mr_offload_slot_bytes(const struct mr_offload *o) { return o->slot_bytes; }
int mr_offload_slots(const struct mr_offload *o) { return o->nslots; }

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

int mr_budget_bytes(const char *prog, const mr_model *m, const char *budget_arg, uint64_t *bytes)
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
            if (!m->lw[l].dense) all += (uint64_t)c->experts * 3 * (uint64_t)c->hidden * (uint64_t)c->moe_inter * sizeof(float);
        *bytes = (uint64_t)((double)all * v / 100.0);
    } else {
        *bytes = (uint64_t)v;
    }
    return 0;
}
