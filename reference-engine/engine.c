/* moe-ref forward pass on CPU: one step over any set of sequences (prefill, decode or
 * mixed), KV caches per sequence, top-k routing, and the step's ground truth.
 *
 * Every weight product is exactly one BLAS call (blas_product(): cblas_sgemm with the
 * mmap'ed weight as operand B, RowMajor NoTrans Trans, or cblas_sgemv for one row), so a
 * preloaded profiler sees one call per projection / router / activated expert / shared
 * expert / lm_head. Bytes and FLOPs of the ground truth are counted by the step's thread
 * (count_gemm(), and at the embedding gather, norms and attention loops), from what was
 * actually executed. Attention (scores, softmax, weighted values) is plain C so it never
 * appears as a GEMM.
 *
 * Threads (--threads T > 1): independent products run at once on a pool of T - 1 helper
 * threads plus the step's thread, each call single-threaded inside the BLAS library: a MoE
 * layer's routed experts (each expert's gate, up and down on one thread) and its shared
 * expert, and q/k/v from the second layer on. The step's first product (layer 0's q) and
 * everything that orders the step — o, router, lm_head — stay on the step's thread, so a
 * profiler that follows the step's thread sees the step open first and close last, with
 * the helpers' calls in between; a large one among them (lm_head) is one call with the BLAS
 * library's own T threads inside. A product has the same operands and one BLAS thread
 * whichever thread runs it, and expert outputs are summed afterwards in ascending expert
 * order; only the library's threading of lm_head can change the last bits of the logits
 * with T. */
#include "internal.h"
#include "offload.h"
#include "expert_parallel.h"
#include "pool.h"

#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

struct mr_seq {
    mr_engine *e;
    int len, max_len;
    float *k, *v;            /* [layers][max_len][kv_heads * head_dim] */
    uint64_t stamp;          /* last step that used it (duplicate detection) */
};

enum mr_wclass { W_DENSE, W_ROUTED, W_SHARED };

struct mr_acct {
    uint64_t bytes[3];       /* by enum mr_wclass */
    uint64_t kv_read, kv_written;
    uint64_t flops_gemm, flops_att;
    uint64_t calls;
};

struct mr_engine {
    mr_model *m;
    int threads;
    int gemv_single_row;     /* mr_engine_set_gemv */
    uint64_t par_min_work;   /* attention runs threaded above this many q.k products */
    char err[512];
    uint64_t steps, stamp;
    /* scratch, sized for cap_t tokens / cap_b sequences / cap_ctx keys */
    int cap_t, cap_b, cap_ctx;
    float *x, *xn, *q, *kk, *vv, *att, *tmp, *moe, *rl, *g, *u, *dn, *sgl, *scores;
    float *selw;
    int *sel, *cnt, *eoff, *etok;
    float *ew;
    int32_t *tok, *pos, *sidx;
    float *xl, *logits;
    int *layer_cnt;          /* [layers][experts] tokens per expert in the last step */
    float *pxe, *pg, *pu, *pdn;   /* per (token, expert) pair rows: gathered input, gate, up, down */
    int *order;              /* experts of the layer, largest first (parallel task order) */
    _Atomic uint32_t *halves;   /* per order[] slot: gate and up products done (0..2), ffn_task */
    double *rcos, *rsin;     /* RoPE angles of the token being rotated [head_dim / 2] */
    struct mr_pool *pool;    /* helper threads (NULL: one thread) */
    void (*set_blas_threads)(int);   /* openblas_set_num_threads, when the BLAS has it */
    struct mr_acct a;
    struct mr_offload *off;  /* expert offloading (NULL: every expert used in place) */
    struct mr_ep *ep;        /* expert-parallel workers (NULL: experts computed here) */
    struct ep_acct { uint64_t experts, bytes, flops, calls; } *ep_acct;   /* per worker, this step */
    uint64_t ep_comm;        /* activation bytes exchanged with the workers this step */
    struct mr_step_info last;
    int last_nseq;
};

/* ---------- engine and sequences ---------- */

mr_engine *mr_engine_create(mr_model *m, int threads, char *err, size_t errlen)
{
    mr_engine *e = calloc(1, sizeof *e);
    if (!e) { mr_set_err(err, errlen, "out of memory"); return NULL; }
    e->m = m;
    e->threads = threads > 0 ? threads : 1;
    e->layer_cnt = calloc((size_t)m->cfg.layers * (size_t)(m->cfg.experts > 0 ? m->cfg.experts : 1),
                          sizeof *e->layer_cnt);
    if (!e->layer_cnt) { free(e); mr_set_err(err, errlen, "out of memory"); return NULL; }
    e->gemv_single_row = 1;
    /* BLAS threads: one per call, except T for a large product the step's thread runs
     * alone (lm_head; mr_gemm). OpenBLAS offers the setter; other BLAS keep their own
     * setting. A helper that cannot be started leaves the engine on one thread, never wrong. */
    e->set_blas_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (e->set_blas_threads) e->set_blas_threads(1);
    if (e->threads > 1) e->pool = mr_pool_new(e->threads - 1);
    /* Threaded attention only pays off for long contexts; idle OpenMP threads spin and
     * would steal cores from the BLAS threads. Tests lower it (MOE_REF_PAR_MIN_WORK). */
    e->par_min_work = 1u << 20;
    const char *pm = getenv("MOE_REF_PAR_MIN_WORK");
    if (pm && *pm) e->par_min_work = strtoull(pm, NULL, 10);
    return e;
}

static void free_scratch(mr_engine *e)
{
    float **fs[] = { &e->x, &e->xn, &e->q, &e->kk, &e->vv, &e->att, &e->tmp, &e->moe, &e->rl,
                     &e->g, &e->u, &e->dn, &e->sgl, &e->selw, &e->ew, &e->xl,
                     &e->logits, &e->scores, &e->pxe, &e->pg, &e->pu, &e->pdn };
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) { free(*fs[i]); *fs[i] = NULL; }
    free(e->sel); free(e->cnt); free(e->eoff); free(e->etok);
    free(e->tok); free(e->pos); free(e->sidx); free(e->order); free((void *)e->halves); free(e->rcos); free(e->rsin);
    e->order = NULL; e->halves = NULL; e->rcos = e->rsin = NULL;
    e->sel = e->cnt = e->eoff = e->etok = NULL;
    e->tok = e->pos = e->sidx = NULL;
    e->cap_t = e->cap_b = e->cap_ctx = 0;
}

void mr_engine_free(mr_engine *e)
{
    if (!e) return;
    mr_pool_free(e->pool);
    free_scratch(e);
    free(e->layer_cnt);
    mr_offload_free(e->off);
    mr_ep_free(e->ep);
    free(e->ep_acct);
    free(e);
}

int mr_engine_set_offload(mr_engine *e, enum mr_offload_policy policy, uint64_t budget_bytes,
                          char *err, size_t errlen)
{
    mr_offload_free(e->off);
    e->off = NULL;
    if (policy == MR_OFFLOAD_NONE) return 0;
    if (e->ep) { mr_set_err(err, errlen, "offloading together with expert parallelism is not supported"); return -2; }
    int usage = 0;
    e->off = mr_offload_new(e->m, policy, budget_bytes, err, errlen, &usage);
    return e->off ? 0 : usage ? -2 : -1;
}

int mr_engine_set_expert_parallel(mr_engine *e, int n, int cap_tokens, char *err, size_t errlen)
{
    if (e->ep || e->off) { mr_set_err(err, errlen, "expert parallelism: already set, or offloading is on"); return -1; }
    e->ep_acct = calloc((size_t)(n > 0 ? n : 1), sizeof *e->ep_acct);
    if (!e->ep_acct) { mr_set_err(err, errlen, "out of memory"); return -1; }
    e->ep = mr_ep_new(e->m, n, cap_tokens, e->gemv_single_row, err, errlen);
    return e->ep ? 0 : -1;
}

const char *mr_engine_error(const mr_engine *e) { return e->err; }
void mr_engine_set_gemv(mr_engine *e, int on) { e->gemv_single_row = on != 0; }
const float *mr_engine_logits(const mr_engine *e) { return e->logits; }
void mr_engine_last_step(const mr_engine *e, struct mr_step_info *out) { *out = e->last; }

mr_seq *mr_seq_create(mr_engine *e, int max_len)
{
    const struct mr_config *c = &e->m->cfg;
    if (max_len <= 0) max_len = c->max_position;
    mr_seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t n = (size_t)c->layers * (size_t)max_len * (size_t)c->kv_heads * (size_t)c->head_dim;
    s->k = calloc(n, sizeof(float));
    s->v = calloc(n, sizeof(float));
    if (!s->k || !s->v) { free(s->k); free(s->v); free(s); return NULL; }
    s->e = e;
    s->max_len = max_len;
    return s;
}

void mr_seq_free(mr_seq *s)
{
    if (!s) return;
    free(s->k);
    free(s->v);
    free(s);
}

int mr_seq_len(const mr_seq *s) { return s->len; }
int mr_seq_max_len(const mr_seq *s) { return s->max_len; }

/* Scratch contents need not survive growth; the memset faults the pages in here, outside
 * the timed step, so a step's wall time does not include first-touch page faults. */
static int grow(void **p, size_t n, size_t elt)
{
    void *np = realloc(*p, n * elt + 64);
    if (!np) return -1;
    memset(np, 0, n * elt + 64);
    *p = np;
    return 0;
}

static int ensure_scratch(mr_engine *e, int T, int B, int ctx)
{
    const struct mr_config *c = &e->m->cfg;
    size_t d = (size_t)c->hidden, qd = (size_t)c->heads * c->head_dim;
    size_t kvd = (size_t)c->kv_heads * c->head_dim;
    size_t E = c->experts > 0 ? (size_t)c->experts : 1, K = c->top_k > 0 ? (size_t)c->top_k : 1;
    size_t fmax = (size_t)c->moe_inter;
    if ((size_t)c->dense_inter > fmax) fmax = (size_t)c->dense_inter;
    if ((size_t)c->shared_inter > fmax) fmax = (size_t)c->shared_inter;
    if (T > e->cap_t) {
        size_t t = (size_t)T;
        int bad = 0;
        bad |= grow((void **)&e->x, t * d, sizeof(float));
        bad |= grow((void **)&e->xn, t * d, sizeof(float));
        bad |= grow((void **)&e->q, t * qd, sizeof(float));
        bad |= grow((void **)&e->kk, t * kvd, sizeof(float));
        bad |= grow((void **)&e->vv, t * kvd, sizeof(float));
        bad |= grow((void **)&e->att, t * qd, sizeof(float));
        bad |= grow((void **)&e->tmp, t * d, sizeof(float));
        bad |= grow((void **)&e->moe, t * d, sizeof(float));
        bad |= grow((void **)&e->rl, t * E, sizeof(float));
        bad |= grow((void **)&e->g, t * fmax, sizeof(float));
        bad |= grow((void **)&e->u, t * fmax, sizeof(float));
        bad |= grow((void **)&e->dn, t * d, sizeof(float));
        bad |= grow((void **)&e->sgl, t, sizeof(float));
        bad |= grow((void **)&e->sel, t * K, sizeof(int));
        bad |= grow((void **)&e->selw, t * K, sizeof(float));
        bad |= grow((void **)&e->etok, t * K, sizeof(int));
        bad |= grow((void **)&e->ew, t * K, sizeof(float));
        bad |= grow((void **)&e->tok, t, sizeof(int32_t));
        bad |= grow((void **)&e->pos, t, sizeof(int32_t));
        bad |= grow((void **)&e->sidx, t, sizeof(int32_t));
        bad |= grow((void **)&e->cnt, E, sizeof(int));
        bad |= grow((void **)&e->eoff, E + 1, sizeof(int));
        bad |= grow((void **)&e->order, E, sizeof(int));
        bad |= grow((void **)&e->halves, E, sizeof(_Atomic uint32_t));
        bad |= grow((void **)&e->rcos, (size_t)c->head_dim / 2 + 1, sizeof(double));
        bad |= grow((void **)&e->rsin, (size_t)c->head_dim / 2 + 1, sizeof(double));
        size_t f = (size_t)c->moe_inter;
        bad |= grow((void **)&e->pxe, t * K * d, sizeof(float));
        bad |= grow((void **)&e->pg, t * K * f, sizeof(float));
        bad |= grow((void **)&e->pu, t * K * f, sizeof(float));
        bad |= grow((void **)&e->pdn, t * K * d, sizeof(float));
        if (bad) return -1;
        e->cap_t = T;
    }
    if (B > e->cap_b) {
        if (grow((void **)&e->xl, (size_t)B * d, sizeof(float)) ||
            grow((void **)&e->logits, (size_t)B * (size_t)c->vocab, sizeof(float)))
            return -1;
        e->cap_b = B;
    }
    int need_ctx = ctx * e->threads;
    if (need_ctx > e->cap_ctx) {
        if (grow((void **)&e->scores, (size_t)need_ctx, sizeof(float))) return -1;
        e->cap_ctx = need_ctx;
    }
    return 0;
}

/* ---------- kernels ---------- */

/* One weight product of m rows: its call, FLOPs and weight bytes in the step's account. */
static void count_gemm(mr_engine *e, int m, int out, int in, enum mr_wclass cls)
{
    e->a.calls++;
    e->a.flops_gemm += 2ull * (uint64_t)m * (uint64_t)out * (uint64_t)in;
    e->a.bytes[cls] += (uint64_t)out * (uint64_t)in * sizeof(float);
}

/* Y[m x out] = X[m x in] . W^T, W = the [out, in] weight as stored in the file: the one
 * BLAS call per weight product. Touches nothing of the engine, so any thread may run it. */
static void blas_product(const mr_engine *e, const float *X, int m, const float *W, int out,
                         int in, float *Y)
{
    if (m == 1 && e->gemv_single_row)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, W, in, X, 1, 0.0f, Y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, out, in, 1.0f, X, in, W, in,
                    0.0f, Y, out);
}

/* Weights of at least this many elements (16 MiB of f32: lm_head of a real vocabulary) run
 * with the BLAS library's own T threads when the step thread computes them alone. */
#define MR_BLAS_THREADED_MIN (4u << 20)

/* A product on the step's thread, counted in the step's account. */
static void mr_gemm(mr_engine *e, const float *X, int m, const float *W, int out, int in,
                    float *Y, enum mr_wclass cls)
{
    int big = e->pool && e->set_blas_threads && (uint64_t)out * (uint64_t)in >= MR_BLAS_THREADED_MIN;
    if (big) {   /* the library's threads need the cores the idle helpers spin on */
        mr_pool_park(e->pool);
        e->set_blas_threads(e->threads);
    }
    blas_product(e, X, m, W, out, in, Y);
    if (big) e->set_blas_threads(1);
    count_gemm(e, m, out, in, cls);
}

/* RMSNorm of n rows (rows given by index list, or 0..n-1 when idx is NULL). */
static void rmsnorm(mr_engine *e, float *out, const float *x, const int32_t *idx, int n,
                    const float *w)
{
    int d = e->m->cfg.hidden;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)(idx ? idx[r] : r) * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / d + (double)e->m->cfg.rms_eps));
        float *o = out + (size_t)r * d;
        for (int i = 0; i < d; i++) o[i] = (xr[i] * inv) * w[i];
    }
    e->a.bytes[W_DENSE] += (uint64_t)d * sizeof(float);
}

/* HF rotate_half RoPE: the angles of position p, cos and sin per pair i < hd/2 (double),
 * computed once per token and applied to every q and k head of it. */
static void rope_angles(double *cs, double *sn, int hd, int p, float theta)
{
    for (int i = 0; i < hd / 2; i++) {
        double inv = pow((double)theta, -2.0 * i / hd);
        double ang = p * inv;
        cs[i] = cos(ang);
        sn[i] = sin(ang);
    }
}

static void rope(float *v, int hd, const double *cs, const double *sn)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = (float)(a * cs[i] - b * sn[i]);
        v[i + half] = (float)(b * cs[i] + a * sn[i]);
    }
}

static inline float silu(float x) { return x / (1.0f + expf(-x)); }

/* Attention of token t (sequence s, position p) for all heads: scores over keys 0..p of
 * its cache, softmax, weighted values. */
static void attend_token(const mr_engine *e, const mr_seq *s, int layer, const float *q,
                         int p, float *out, float *scores)
{
    const struct mr_config *c = &e->m->cfg;
    int hd = c->head_dim, kvd = c->kv_heads * hd, grp = c->heads / c->kv_heads;
    const float *K = s->k + (size_t)layer * s->max_len * kvd;
    const float *V = s->v + (size_t)layer * s->max_len * kvd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < c->heads; h++) {
        const float *qh = q + (size_t)h * hd;
        int kh = h / grp;
        float mx = -INFINITY;
        for (int j = 0; j <= p; j++) {
            const float *kj = K + (size_t)j * kvd + (size_t)kh * hd;
            float dot = 0;
            for (int i = 0; i < hd; i++) dot += qh[i] * kj[i];
            scores[j] = dot * scale;
            if (scores[j] > mx) mx = scores[j];
        }
        double sum = 0;
        for (int j = 0; j <= p; j++) { scores[j] = expf(scores[j] - mx); sum += scores[j]; }
        float inv = (float)(1.0 / sum);
        float *oh = out + (size_t)h * hd;
        for (int i = 0; i < hd; i++) oh[i] = 0;
        for (int j = 0; j <= p; j++) {
            const float *vj = V + (size_t)j * kvd + (size_t)kh * hd;
            float w = scores[j] * inv;
            for (int i = 0; i < hd; i++) oh[i] += w * vj[i];
        }
    }
}

/* ---------- one step ---------- */

/* q, k and v projections of one layer as three pool tasks. */
struct qkv_job {
    mr_engine *e;
    const struct mr_layer_w *w;
    int T;
};

static void qkv_task(void *ctx, int task, int worker)
{
    (void)worker;
    const struct qkv_job *j = ctx;
    const struct mr_config *c = &j->e->m->cfg;
    int d = c->hidden, qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
    if (task == 0) blas_product(j->e, j->e->xn, j->T, j->w->q, qd, d, j->e->q);
    else if (task == 1) blas_product(j->e, j->e->xn, j->T, j->w->k, kvd, d, j->e->kk);
    else blas_product(j->e, j->e->xn, j->T, j->w->v, kvd, d, j->e->vv);
}

static const char *step_kind(mr_seq *const seqs[], const int counts[], int nseq)
{
    int all_empty = 1, any_multi = 0, all_one = 1;
    for (int i = 0; i < nseq; i++) {
        if (seqs[i]->len != 0) all_empty = 0;
        if (counts[i] > 1) { any_multi = 1; all_one = 0; }
    }
    if (all_empty && any_multi) return "prefill";
    if (all_one) return "decode";
    return "mixed";
}

static void ffn_dense(mr_engine *e, const struct mr_layer_w *w, int T)
{
    const struct mr_config *c = &e->m->cfg;
    int d = c->hidden, f = c->dense_inter;
    mr_gemm(e, e->xn, T, w->gate, f, d, e->g, W_DENSE);
    mr_gemm(e, e->xn, T, w->up, f, d, e->u, W_DENSE);
    for (size_t i = 0; i < (size_t)T * f; i++) e->g[i] = silu(e->g[i]) * e->u[i];
    mr_gemm(e, e->g, T, w->down, d, f, e->moe, W_DENSE);
}

static void shared_rows(const mr_engine *e, const struct mr_layer_w *w, int T);
static void count_shared(mr_engine *e, const struct mr_layer_w *w, int T);
static void shared_add(mr_engine *e, const struct mr_layer_w *w, int T);

/* The routed experts of one MoE layer in the worker processes (expert_parallel.c): the
 * same GEMMs, counted here per worker; the weighted sum in ascending expert order as below. */
static int ffn_moe_parallel(mr_engine *e, int layer, int T)
{
    const struct mr_config *c = &e->m->cfg;
    int d = c->hidden, f = c->moe_inter, E = c->experts, n = mr_ep_procs(e->ep);
    const float *yo = mr_ep_layer(e->ep, layer, e->xn, e->cnt, e->eoff, e->etok, T, e->err, sizeof e->err);
    if (!yo) return -1;
    for (int x = 0; x < E; x++) {
        int mx = e->cnt[x];
        if (!mx) continue;
        struct ep_acct *pa = &e->ep_acct[mr_ep_owner(n, x)];
        uint64_t calls = e->a.calls, flops = e->a.flops_gemm, bytes = e->a.bytes[W_ROUTED];
        count_gemm(e, mx, f, d, W_ROUTED);
        count_gemm(e, mx, f, d, W_ROUTED);
        count_gemm(e, mx, d, f, W_ROUTED);
        pa->experts++;
        pa->calls += e->a.calls - calls;
        pa->flops += e->a.flops_gemm - flops;
        pa->bytes += e->a.bytes[W_ROUTED] - bytes;
        e->ep_comm += 2ull * (uint64_t)mx * (uint64_t)d * sizeof(float);   /* rows out and back */
        const int *tk = e->etok + e->eoff[x];
        const float *wk = e->ew + e->eoff[x];
        for (int r = 0; r < mx; r++) {
            float *o = e->moe + (size_t)tk[r] * d;
            const float *s = yo + (size_t)(e->eoff[x] + r) * d;
            for (int i = 0; i < d; i++) o[i] += wk[r] * s[i];
        }
    }
    if (e->m->cfg.shared_inter > 0) {
        count_shared(e, &e->m->lw[layer], T);
        shared_rows(e, &e->m->lw[layer], T);
        shared_add(e, &e->m->lw[layer], T);
    }
    return 0;
}

/* Gathers routed expert x's rows of xn into its rows of pxe (rows eoff[x].. of the
 * per-pair buffers). */
static void expert_gather(const mr_engine *e, int x)
{
    int d = e->m->cfg.hidden, mx = e->cnt[x];
    size_t r0 = (size_t)e->eoff[x];
    const int *tk = e->etok + r0;
    float *xe = e->pxe + r0 * d;
    for (int r = 0; r < mx; r++)
        memcpy(xe + (size_t)r * d, e->xn + (size_t)tk[r] * d, (size_t)d * sizeof(float));
}

/* Expert x's gathered rows (pxe) times W, its gate or its up weight, into its rows of out
 * (pg or pu). */
static void expert_in_product(const mr_engine *e, int x, const float *W, float *out)
{
    int d = e->m->cfg.hidden, f = e->m->cfg.moe_inter;
    size_t r0 = (size_t)e->eoff[x];
    blas_product(e, e->pxe + r0 * d, e->cnt[x], W, f, d, out + r0 * f);
}

/* SiLU(gate) * up of expert x's rows, then its down product into its rows of pdn. */
static void expert_down(const mr_engine *e, int x, const float *wd)
{
    int d = e->m->cfg.hidden, f = e->m->cfg.moe_inter, mx = e->cnt[x];
    size_t r0 = (size_t)e->eoff[x];
    float *g = e->pg + r0 * f, *u = e->pu + r0 * f;
    for (size_t i = 0; i < (size_t)mx * f; i++) g[i] = silu(g[i]) * u[i];
    blas_product(e, g, mx, wd, d, f, e->pdn + r0 * d);
}

/* One routed expert x of a MoE layer on one thread: gather, gate, up, down. */
static void expert_rows(const mr_engine *e, int x, const float *wg, const float *wu, const float *wd)
{
    expert_gather(e, x);
    expert_in_product(e, x, wg, e->pg);
    expert_in_product(e, x, wu, e->pu);
    expert_down(e, x, wd);
}

/* Shared expert(s) of a MoE layer over all T tokens, into dn (and the qwen2_moe gate logit
 * into sgl), on any thread. */
static void shared_rows(const mr_engine *e, const struct mr_layer_w *w, int T)
{
    int d = e->m->cfg.hidden, fs = e->m->cfg.shared_inter;
    blas_product(e, e->xn, T, w->sg, fs, d, e->g);
    blas_product(e, e->xn, T, w->su, fs, d, e->u);
    for (size_t i = 0; i < (size_t)T * fs; i++) e->g[i] = silu(e->g[i]) * e->u[i];
    blas_product(e, e->g, T, w->sd, d, fs, e->dn);
    if (w->sgate) blas_product(e, e->xn, T, w->sgate, 1, d, e->sgl);
}

static void count_shared(mr_engine *e, const struct mr_layer_w *w, int T)
{
    int d = e->m->cfg.hidden, fs = e->m->cfg.shared_inter;
    count_gemm(e, T, fs, d, W_SHARED);
    count_gemm(e, T, fs, d, W_SHARED);
    count_gemm(e, T, d, fs, W_SHARED);
    if (w->sgate) count_gemm(e, T, 1, d, W_DENSE);
}

/* The layer's expert work as pool tasks, finer than one task per expert so that a thread on
 * a slower core (a busy neighbour, a shared memory channel) simply takes fewer of them:
 *   tasks 0 .. 2n-1   the gate and the up product of expert order[i / 2] (even: gate),
 *   tasks 2n .. 3n-1  SiLU(gate) * up and the down product of expert order[i - 2n], which
 *                     first waits until that expert's gate and up are done (both were
 *                     claimed earlier in the list, so a thread is running them or has),
 *   task 3n           the shared expert(s), when the model has them, which first waits
 *                     until the first expert's gate or up is done.
 * A routed expert's gate (or up) thus always ends before the shared gate begins, as on one
 * thread (a profiler without tensor names tells a [2f, d] shared gate from a fused routed
 * gate_up by that order). Coming last in the list is not enough for that: with more threads
 * than tasks before it, or a thread that loses its CPU between claiming a routed product and
 * starting it, the shared task starts first. The shared task is still last although it is
 * the largest, so that it rarely waits. The step thread gathers every expert's rows before
 * the list. */
struct ffn_job {
    mr_engine *e;
    const struct mr_layer_w *w;
    int T, shared, nexp;
};

static void ffn_task(void *ctx, int task, int worker)
{
    (void)worker;
    const struct ffn_job *j = ctx;
    mr_engine *e = j->e;
    int n = j->nexp;
    if (task == 3 * n) {
        if (n > 0) mr_pool_wait_count(&e->halves[0], 1);   /* tasks 0 and 1 raise it */
        shared_rows(e, j->w, j->T);
        return;
    }
    int i = task < 2 * n ? task / 2 : task - 2 * n, x = e->order[i];
    if (task < 2 * n) {
        if (task % 2 == 0) expert_in_product(e, x, j->w->eg[x], e->pg);
        else expert_in_product(e, x, j->w->eu[x], e->pu);
        mr_pool_count_up(&e->halves[i]);
        return;
    }
    mr_pool_wait_count(&e->halves[i], 2);
    expert_down(e, x, j->w->ed[x]);
}

static int ffn_moe(mr_engine *e, const struct mr_layer_w *w, int layer, int T)
{
    const struct mr_config *c = &e->m->cfg;
    int d = c->hidden, f = c->moe_inter, E = c->experts, K = c->top_k;
    mr_gemm(e, e->xn, T, w->router, E, d, e->rl, W_DENSE);
    for (int t = 0; t < T; t++)
        mr_route_token(c, e->rl + (size_t)t * E, e->sel + (size_t)t * K, e->selw + (size_t)t * K);
    if (e->off) mr_offload_route(e->off, layer, e->rl, T, e->sel, e->selw);
    /* bucket (token, weight) pairs by expert, tokens ascending within an expert */
    memset(e->cnt, 0, (size_t)E * sizeof *e->cnt);
    for (int i = 0; i < T * K; i++) e->cnt[e->sel[i]]++;
    e->eoff[0] = 0;
    for (int x = 0; x < E; x++) e->eoff[x + 1] = e->eoff[x] + e->cnt[x];
    int *fill = e->layer_cnt + (size_t)layer * E;   /* reused as a cursor, then restored */
    memset(fill, 0, (size_t)E * sizeof *fill);
    for (int t = 0; t < T; t++)
        for (int r = 0; r < K; r++) {
            int x = e->sel[(size_t)t * K + r];
            int at = e->eoff[x] + fill[x]++;
            e->etok[at] = t;
            e->ew[at] = e->selw[(size_t)t * K + r];
        }
    memset(e->moe, 0, (size_t)T * d * sizeof(float));
    if (e->ep) return ffn_moe_parallel(e, layer, T);
    int nexp = 0;
    for (int x = 0; x < E; x++) {
        if (!e->cnt[x]) continue;
        e->order[nexp++] = x;
        count_gemm(e, e->cnt[x], f, d, W_ROUTED);
        count_gemm(e, e->cnt[x], f, d, W_ROUTED);
        count_gemm(e, e->cnt[x], d, f, W_ROUTED);
    }
    int shared = c->shared_inter > 0;
    if (shared) count_shared(e, w, T);
    if (e->pool && !e->off) {
        /* most tokens first (stable: ties keep ascending ids), so the longest tasks start first */
        for (int i = 1; i < nexp; i++)
            for (int j = i; j > 0 && e->cnt[e->order[j]] > e->cnt[e->order[j - 1]]; j--) {
                int t = e->order[j]; e->order[j] = e->order[j - 1]; e->order[j - 1] = t;
            }
        for (int i = 0; i < nexp; i++) {
            expert_gather(e, e->order[i]);
            atomic_store_explicit(&e->halves[i], 0, memory_order_relaxed);
        }
        struct ffn_job job = { e, w, T, shared, nexp };
        mr_pool_run(e->pool, 3 * nexp + shared, ffn_task, &job);
    } else {
        /* one thread (offloading: experts are brought in one at a time, in ascending order) */
        for (int i = 0; i < nexp; i++) {
            int x = e->order[i];
            const float *wg = w->eg[x], *wu = w->eu[x], *wd = w->ed[x];
            if (e->off && mr_offload_expert(e->off, layer, x, &wg, &wu, &wd, e->err, sizeof e->err)) return -1;
            expert_rows(e, x, wg, wu, wd);
        }
        if (shared) shared_rows(e, w, T);
    }
    /* weighted sum in ascending expert order, then the shared expert(s) */
    for (int x = 0; x < E; x++) {
        const int *tk = e->etok + e->eoff[x];
        const float *wk = e->ew + e->eoff[x];
        for (int r = 0; r < e->cnt[x]; r++) {
            float *o = e->moe + (size_t)tk[r] * d;
            const float *s = e->pdn + (size_t)(e->eoff[x] + r) * d;
            for (int i = 0; i < d; i++) o[i] += wk[r] * s[i];
        }
    }
    if (shared) shared_add(e, w, T);
    return 0;
}

/* Adds the shared expert(s)' output (shared_rows) to e->moe (qwen2_moe: gated per token). */
static void shared_add(mr_engine *e, const struct mr_layer_w *w, int T)
{
    int d = e->m->cfg.hidden;
    for (int t = 0; t < T; t++) {
        float gt = w->sgate ? 1.0f / (1.0f + expf(-e->sgl[t])) : 1.0f;
        float *o = e->moe + (size_t)t * d;
        const float *s = e->dn + (size_t)t * d;
        for (int i = 0; i < d; i++) o[i] += gt * s[i];
    }
}

static void write_ground_truth(mr_engine *e, FILE *gt, mr_seq *const seqs[],
                               const int counts[], int nseq, const int32_t out_next[])
{
    const struct mr_config *c = &e->m->cfg;
    const struct mr_step_info *s = &e->last;
    fprintf(gt, "{\"step\": %llu, \"kind\": \"%s\", \"sequences\": %d, \"tokens\": %d, "
            "\"seq_tokens\": [", (unsigned long long)s->step, s->kind, nseq, s->tokens);
    for (int i = 0; i < nseq; i++) fprintf(gt, "%s%d", i ? ", " : "", counts[i]);
    fprintf(gt, "], \"context\": [");
    for (int i = 0; i < nseq; i++) fprintf(gt, "%s%d", i ? ", " : "", seqs[i]->len);
    fprintf(gt, "], \"t_begin_ns\": %llu, \"t_end_ns\": %llu, \"wall_ns\": %llu, \"layers\": [",
            (unsigned long long)s->t_begin_ns, (unsigned long long)s->t_end_ns,
            (unsigned long long)(s->t_end_ns - s->t_begin_ns));
    for (int l = 0; l < c->layers; l++) {
        if (e->m->lw[l].dense) {
            fprintf(gt, "%s{\"layer\": %d, \"dense\": true}", l ? ", " : "", l);
            continue;
        }
        const int *cnt = e->layer_cnt + (size_t)l * c->experts;
        fprintf(gt, "%s{\"layer\": %d, \"experts\": [", l ? ", " : "", l);
        int first = 1;
        for (int x = 0; x < c->experts; x++)
            if (cnt[x]) { fprintf(gt, "%s%d", first ? "" : ", ", x); first = 0; }
        fprintf(gt, "], \"tokens_per_expert\": [");
        first = 1;
        for (int x = 0; x < c->experts; x++)
            if (cnt[x]) { fprintf(gt, "%s%d", first ? "" : ", ", cnt[x]); first = 0; }
        fputc(']', gt);
        if (e->off) mr_offload_gt_layer(e->off, gt, l);   /* experts loaded since the previous step */
        fputc('}', gt);
    }
    const struct mr_acct *a = &e->a;
    uint64_t btot = a->bytes[W_DENSE] + a->bytes[W_ROUTED] + a->bytes[W_SHARED] +
                    a->kv_read + a->kv_written;
    fprintf(gt, "], \"bytes\": {\"dense_weights\": %llu, \"routed_expert_weights\": %llu, "
            "\"shared_expert_weights\": %llu, \"kv_read\": %llu, \"kv_written\": %llu, "
            "\"total\": %llu}, \"flops\": {\"gemm\": %llu, \"attention\": %llu, \"total\": %llu}, "
            "\"gemm_calls\": %llu, \"sampled\": [",
            (unsigned long long)a->bytes[W_DENSE], (unsigned long long)a->bytes[W_ROUTED],
            (unsigned long long)a->bytes[W_SHARED], (unsigned long long)a->kv_read,
            (unsigned long long)a->kv_written, (unsigned long long)btot,
            (unsigned long long)a->flops_gemm, (unsigned long long)a->flops_att,
            (unsigned long long)(a->flops_gemm + a->flops_att), (unsigned long long)a->calls);
    for (int i = 0; i < nseq; i++) fprintf(gt, "%s%d", i ? ", " : "", (int)out_next[i]);
    fprintf(gt, "]");
    if (e->off) mr_offload_gt_step(e->off, gt);
    if (e->ep) {
        int n = mr_ep_procs(e->ep);
        fprintf(gt, ", \"expert_parallel\": {\"processes\": %d, \"comm_bytes\": %llu, \"per_process\": [", n,
                (unsigned long long)e->ep_comm);
        for (int r = 0; r < n; r++)
            fprintf(gt, "%s{\"rank\": %d, \"pid\": %d, \"activated_experts\": %llu, \"routed_expert_weights\": %llu, "
                    "\"flops\": %llu, \"gemm_calls\": %llu}", r ? ", " : "", r, (int)mr_ep_pid(e->ep, r),
                    (unsigned long long)e->ep_acct[r].experts, (unsigned long long)e->ep_acct[r].bytes,
                    (unsigned long long)e->ep_acct[r].flops, (unsigned long long)e->ep_acct[r].calls);
        fprintf(gt, "]}");
    }
    fprintf(gt, "}\n");
    fflush(gt);
}

int mr_step(mr_engine *e, mr_seq *const seqs[], const int32_t *const new_tokens[],
            const int counts[], int nseq, int32_t out_next[], FILE *ground_truth)
{
    mr_model *m = e->m;
    const struct mr_config *c = &m->cfg;
    e->err[0] = 0;
    if (nseq <= 0 || !seqs || !new_tokens || !counts || !out_next) {
        snprintf(e->err, sizeof e->err, "mr_step: need at least one sequence");
        return -1;
    }
    e->stamp++;
    int T = 0, maxctx = 0;
    for (int i = 0; i < nseq; i++) {
        mr_seq *s = seqs[i];
        if (!s || s->e != e) {
            snprintf(e->err, sizeof e->err, "mr_step: sequence %d does not belong to this engine", i);
            return -1;
        }
        if (s->stamp == e->stamp) {
            snprintf(e->err, sizeof e->err, "mr_step: sequence %d given twice", i);
            return -1;
        }
        s->stamp = e->stamp;
        if (counts[i] < 1 || !new_tokens[i]) {
            snprintf(e->err, sizeof e->err, "mr_step: sequence %d brings no tokens", i);
            return -1;
        }
        if (counts[i] > s->max_len - s->len) {
            snprintf(e->err, sizeof e->err, "mr_step: sequence %d would exceed its max length %d",
                     i, s->max_len);
            return -1;
        }
        for (int j = 0; j < counts[i]; j++)
            if (new_tokens[i][j] < 0 || new_tokens[i][j] >= c->vocab) {
                snprintf(e->err, sizeof e->err, "mr_step: token id %d out of range [0, %d)",
                         (int)new_tokens[i][j], c->vocab);
                return -1;
            }
        if (T > (1 << 28) - counts[i]) {
            snprintf(e->err, sizeof e->err, "mr_step: too many tokens in one step");
            return -1;
        }
        T += counts[i];
        if (s->len + counts[i] > maxctx) maxctx = s->len + counts[i];
    }
    if (ensure_scratch(e, T, nseq, maxctx)) {
        snprintf(e->err, sizeof e->err, "mr_step: out of memory for %d tokens", T);
        return -1;
    }
    const char *kind = step_kind(seqs, counts, nseq);
    if (e->off && mr_offload_step_begin(e->off, e->err, sizeof e->err)) return -1;
    memset(&e->a, 0, sizeof e->a);
    if (e->ep) { memset(e->ep_acct, 0, (size_t)mr_ep_procs(e->ep) * sizeof *e->ep_acct); e->ep_comm = 0; }
    uint64_t t0 = mr_now_ns();

    int d = c->hidden, hd = c->head_dim, qd = c->heads * hd, kvd = c->kv_heads * hd;
    /* flatten the step's tokens: token t belongs to sequence sidx[t] at position pos[t] */
    for (int i = 0, t = 0; i < nseq; i++)
        for (int j = 0; j < counts[i]; j++, t++) {
            e->tok[t] = new_tokens[i][j];
            e->pos[t] = seqs[i]->len + j;
            e->sidx[t] = i;
        }
    for (int t = 0; t < T; t++)
        memcpy(e->x + (size_t)t * d, m->embed + (size_t)e->tok[t] * d, (size_t)d * sizeof(float));
    e->a.bytes[W_DENSE] += (uint64_t)T * d * sizeof(float);

    for (int l = 0; l < c->layers; l++) {
        const struct mr_layer_w *w = &m->lw[l];
        rmsnorm(e, e->xn, e->x, NULL, T, w->attn_norm);
        if (e->pool && l > 0) {   /* layer 0's q is the step's first product: step's thread */
            struct qkv_job job = { e, w, T };
            mr_pool_run(e->pool, 3, qkv_task, &job);
            count_gemm(e, T, qd, d, W_DENSE);
            count_gemm(e, T, kvd, d, W_DENSE);
            count_gemm(e, T, kvd, d, W_DENSE);
        } else {
            mr_gemm(e, e->xn, T, w->q, qd, d, e->q, W_DENSE);
            mr_gemm(e, e->xn, T, w->k, kvd, d, e->kk, W_DENSE);
            mr_gemm(e, e->xn, T, w->v, kvd, d, e->vv, W_DENSE);
        }
        for (int t = 0; t < T; t++) {
            mr_seq *s = seqs[e->sidx[t]];
            rope_angles(e->rcos, e->rsin, hd, e->pos[t], c->rope_theta);
            for (int h = 0; h < c->heads; h++) rope(e->q + (size_t)t * qd + (size_t)h * hd, hd, e->rcos, e->rsin);
            for (int h = 0; h < c->kv_heads; h++) rope(e->kk + (size_t)t * kvd + (size_t)h * hd, hd, e->rcos, e->rsin);
            size_t at = ((size_t)l * s->max_len + (size_t)e->pos[t]) * kvd;
            memcpy(s->k + at, e->kk + (size_t)t * kvd, (size_t)kvd * sizeof(float));
            memcpy(s->v + at, e->vv + (size_t)t * kvd, (size_t)kvd * sizeof(float));
            e->a.kv_written += 2ull * kvd * sizeof(float);
            e->a.flops_att += 4ull * c->heads * hd * (uint64_t)(e->pos[t] + 1);
        }
        for (int i = 0; i < nseq; i++)   /* each sequence's cache is read once, whole context */
            e->a.kv_read += 2ull * (uint64_t)(seqs[i]->len + counts[i]) * kvd * sizeof(float);
        uint64_t work = 0;
        for (int t = 0; t < T; t++) work += (uint64_t)(e->pos[t] + 1);
        work *= (uint64_t)qd;
        int nth = e->threads;
        (void)nth;
#pragma omp parallel for num_threads(nth) schedule(dynamic, 1) if (nth > 1 && work > e->par_min_work)
        for (int t = 0; t < T; t++) {
            int me = 0;
#ifdef _OPENMP
            me = omp_get_thread_num();
#endif
            attend_token(e, seqs[e->sidx[t]], l, e->q + (size_t)t * qd, e->pos[t],
                         e->att + (size_t)t * qd, e->scores + (size_t)me * maxctx);
        }
        mr_gemm(e, e->att, T, w->o, d, qd, e->tmp, W_DENSE);
        for (size_t i = 0; i < (size_t)T * d; i++) e->x[i] += e->tmp[i];
        rmsnorm(e, e->xn, e->x, NULL, T, w->ffn_norm);
        if (w->dense) ffn_dense(e, w, T);
        else if (ffn_moe(e, w, l, T)) return -1;   /* an expert could not be read */
        for (size_t i = 0; i < (size_t)T * d; i++) e->x[i] += e->moe[i];
    }
    /* final norm and lm_head on the last token of each sequence only */
    for (int i = 0, t = 0; i < nseq; i++) {
        t += counts[i];
        e->tok[i] = t - 1;          /* tok[] is free now: reuse as the last-token index */
    }
    rmsnorm(e, e->xn, e->x, e->tok, nseq, m->final_norm);
    mr_gemm(e, e->xn, nseq, m->lm_head, c->vocab, d, e->logits, W_DENSE);
    for (int i = 0; i < nseq; i++) {
        const float *lg = e->logits + (size_t)i * c->vocab;
        int best = 0;
        for (int v = 1; v < c->vocab; v++) if (lg[v] > lg[best]) best = v;
        out_next[i] = best;
        seqs[i]->len += counts[i];
    }
    uint64_t t1 = mr_now_ns();

    e->last.step = e->steps++;
    e->last.kind = kind;
    e->last.sequences = nseq;
    e->last.tokens = T;
    e->last.t_begin_ns = t0;
    e->last.t_end_ns = t1;
    e->last.bytes_total = (double)(e->a.bytes[W_DENSE] + e->a.bytes[W_ROUTED] +
                                   e->a.bytes[W_SHARED] + e->a.kv_read + e->a.kv_written);
    e->last.flops_total = (double)(e->a.flops_gemm + e->a.flops_att);
    e->last.gemm_calls = e->a.calls;
    e->last_nseq = nseq;
    if (e->off) mr_offload_step_end(e->off);
    if (ground_truth) write_ground_truth(e, ground_truth, seqs, counts, nseq, out_next);
    if (e->off) mr_offload_swap_start(e->off);
    return 0;
}
