/* llama.cpp / ggml adapter: forward steps, routing and the weight products of an unmodified
 * program that runs llama.cpp (a C program linking libllama, or node-llama-cpp's addon).
 *
 *   llama_decode                          -> one MC_REC_LLAMA_BATCH per call (time, tokens,
 *                                            per-sequence tokens and positions, outputs); the
 *                                            call's thread carries its step id meanwhile
 *   ggml_backend_sched_set_eval_callback  -> our callback is installed in front of the
 *                                            program's own (chained: the program sees exactly
 *                                            the asks and answers it saw before). Asked for
 *                                            every node, it records each MUL_MAT / MUL_MAT_ID
 *                                            whose first operand is a model weight
 *                                            (MC_REC_GGML_MATMUL, from the node's shapes: no
 *                                            sync) and asks for the `ffn_moe_topk-<layer>`
 *                                            tensors only; their ids (a strided view: rows are
 *                                            nb[1] bytes apart) become MC_REC_GGML_ROUTE counts.
 *
 * llama.cpp calls the setter whenever it rebuilds a graph, from whatever thread runs that
 * llama_decode (node-llama-cpp uses libuv worker threads), so nothing here assumes one thread.
 * node loads libllama with RTLD_LOCAL: the real functions are found through the loaded
 * objects (mc_resolve_next). The node layout (struct ggml_tensor) is read directly, so the
 * adapter checks the library versions it was written for (ggml_version(), llama_version())
 * and the layout (ggml_get_name(t) must be t's name field) and otherwise switches itself off
 * with one stderr line: the interposed functions then only forward. MOECAP_GGML_ACCEPT
 * (comma-separated ggml versions) replaces the built-in list, for tests; MOECAP_GGML_ROUTING=0
 * records steps and products but asks for no routing tensor (to measure what the asks cost).
 *
 * Family hooks (shim_core.h): the adapter holds no lock (scheduler slots are claimed with a
 * compare-and-swap; the version check runs once under pthread_once, which glibc restarts in
 * a fork child if the parent forked in the middle of it) and keeps no records back (each is
 * committed at once), so init, flush, fork_prepare/parent and exit have nothing to do. A fork
 * child starts its own step numbering and is inside no llama_decode of the parent's. */
#include "shim_core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the parts of ggml/llama.cpp's public ABI we read (ggml 0.25.1, llama.cpp 0.5.0) ---- */
#define GG_MAX_DIMS 4
#define GG_MAX_SRC 10
#define GG_OP_MUL_MAT 29
#define GG_OP_MUL_MAT_ID 30
#define GG_TYPE_I32 26
struct gg_tensor {                        /* struct ggml_tensor */
    int type;
    void *buffer;
    int64_t ne[GG_MAX_DIMS];
    size_t nb[GG_MAX_DIMS];
    int op;
    int32_t op_params[16];
    int32_t flags;
    struct gg_tensor *src[GG_MAX_SRC];
    struct gg_tensor *view_src;
    size_t view_offs;
    void *data;
    char name[64];
    void *extra;
    char padding[8];
};
_Static_assert(sizeof(struct gg_tensor) == 336, "ggml_tensor layout of ggml 0.25.1");
struct gg_batch {                         /* struct llama_batch (passed by value) */
    int32_t n_tokens;
    int32_t *token;
    float *embd;
    int32_t *pos;
    int32_t *n_seq_id;
    int32_t **seq_id;
    int8_t *logits;
};
typedef bool (*gg_eval_cb)(struct gg_tensor *t, bool ask, void *ud);

static const char *const accepted_ggml[] = { "0.25.1" };
static const char accepted_llama_prefix[] = "0.5.";

/* ---- state ---- */
static int (*real_decode)(void *ctx, struct gg_batch b);
static void (*real_set_cb)(void *sched, gg_eval_cb cb, void *ud);
static void (*tensor_get)(const struct gg_tensor *t, void *data, size_t off, size_t size);
static size_t (*type_size)(int type);
static int64_t (*blck_size)(int type);
static _Atomic int adapter_on;            /* 1 after a successful check */
static pthread_once_t check_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t next_step;
static __thread uint64_t cur_step;        /* the llama_decode running on this thread */
static __thread int want_ours, want_prog; /* answers to the last ask on this thread */
static __thread int layout_checked;
static int routing_off;                   /* MOECAP_GGML_ROUTING=0: no asks (overhead measurements) */

/* One entry per scheduler the program installed a callback on (its own callback, if any).
 * Slots are claimed with a compare-and-swap (no lock: nothing to hold across fork). */
#define MAX_SCHED 64
struct sched_ent { _Atomic(void *) sched; gg_eval_cb prog_cb; void *prog_ud; };
static struct sched_ent scheds[MAX_SCHED];

static void say(const char *line)
{
    ssize_t w = write(2, line, strlen(line));
    (void)w;
}

static int version_accepted(const char *v)
{
    const char *env = getenv("MOECAP_GGML_ACCEPT");
    if (env) {
        size_t n = strlen(v);
        for (const char *p = env; *p;) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == n && !strncmp(p, v, n)) return 1;
            p += l + (e != NULL);
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof accepted_ggml / sizeof *accepted_ggml; i++)
        if (!strcmp(v, accepted_ggml[i])) return 1;
    return 0;
}

static void check(void)
{
    if (!mc_capture_enabled()) return;
    const char *(*gv)(void) = (const char *(*)(void))mc_resolve_next("ggml_version");
    const char *(*lv)(void) = (const char *(*)(void))mc_resolve_next("llama_version");
    const char *(*op_name)(int) = (const char *(*)(int))mc_resolve_next("ggml_op_name");
    tensor_get = (void (*)(const struct gg_tensor *, void *, size_t, size_t))mc_resolve_next("ggml_backend_tensor_get");
    type_size = (size_t (*)(int))mc_resolve_next("ggml_type_size");
    blck_size = (int64_t (*)(int))mc_resolve_next("ggml_blck_size");
    const char *g = gv ? gv() : "unknown", *l = lv ? lv() : "unknown";
    int ok = gv && lv && op_name && tensor_get && type_size && blck_size && version_accepted(g) &&
             !strncmp(l, accepted_llama_prefix, sizeof accepted_llama_prefix - 1) &&
             !strcmp(op_name(GG_OP_MUL_MAT), "MUL_MAT") && !strcmp(op_name(GG_OP_MUL_MAT_ID), "MUL_MAT_ID");
    if (!ok) {
        char line[512];
        snprintf(line, sizeof line, "moecap: llama.cpp adapter off: ggml %s / llama.cpp %s is not a version it "
                 "was written for (ggml 0.25.1, llama.cpp 0.5.x); the program runs unaffected\n", g, l);
        say(line);
        return;
    }
    const char *ro = getenv("MOECAP_GGML_ROUTING");
    routing_off = ro && !strcmp(ro, "0");
    mc_log_debug("llama.cpp adapter on (ggml %s, llama.cpp %s)", g, l);
    atomic_store(&adapter_on, 1);
}

static int on(void)
{
    pthread_once(&check_once, check);
    return atomic_load_explicit(&adapter_on, memory_order_relaxed) && mc_capture_enabled();
}

/* ---- llama_decode ---- */

int llama_decode(void *ctx, struct gg_batch b)
{
    if (!real_decode) {
        void *p = mc_resolve_next("llama_decode");
        if (!p) { say("moecap: cannot find the real llama_decode; aborting\n"); abort(); }
        real_decode = (int (*)(void *, struct gg_batch))p;
    }
    if (!on()) return real_decode(ctx, b);
    uint64_t id = atomic_fetch_add(&next_step, 1) + 1, prev = cur_step;
    uint64_t t0 = mc_now_ns();
    cur_step = id;
    int rc = real_decode(ctx, b);
    cur_step = prev;
    uint64_t t1 = mc_now_ns();
    /* per-sequence summary (bounded: at most 256 sequences listed) */
    struct mc_llama_seq seqs[256];
    uint32_t n_seq = 0, outputs = 0;
    for (int32_t i = 0; i < b.n_tokens; i++) {
        if (b.logits ? b.logits[i] != 0 : i == b.n_tokens - 1) outputs++;
        int ns = b.seq_id && b.n_seq_id ? b.n_seq_id[i] : 1;
        for (int j = 0; j < ns; j++) {
            int32_t s = b.seq_id && b.n_seq_id ? b.seq_id[i][j] : 0, pos = b.pos ? b.pos[i] : -1;
            uint32_t q = 0;
            while (q < n_seq && seqs[q].seq_id != s) q++;
            if (q == n_seq) {
                if (n_seq == 256) continue;
                seqs[n_seq++] = (struct mc_llama_seq){ .seq_id = s, .tokens = 0, .pos_first = pos, .pos_last = pos };
            }
            seqs[q].tokens++;
            if (pos >= 0 && pos < seqs[q].pos_first) seqs[q].pos_first = pos;
            if (pos > seqs[q].pos_last) seqs[q].pos_last = pos;
        }
    }
    struct mc_rec_llama_batch *r = mc_rec_reserve(MC_REC_LLAMA_BATCH, (uint32_t)(sizeof *r + n_seq * sizeof *seqs));
    if (r) {
        r->t_begin_ns = t0; r->t_end_ns = t1; r->step_id = id;
        r->tokens = b.n_tokens; r->tid = mc_tid(); r->result = rc;
        r->n_seq = n_seq; r->outputs = outputs;
        memcpy(r + 1, seqs, n_seq * sizeof *seqs);
        mc_rec_commit(r);
    }
    return rc;
}

/* ---- the scheduler's eval callback ---- */

static int is_weight(const struct gg_tensor *w)
{
    size_t n = strnlen(w->name, sizeof w->name);
    return n > 7 && !memcmp(w->name + n - 7, ".weight", 7);
}

static void record_matmul(const struct gg_tensor *t)
{
    const struct gg_tensor *w = t->src[0], *x = t->src[1], *ids = t->op == GG_OP_MUL_MAT_ID ? t->src[2] : NULL;
    if (!w || !x || !is_weight(w)) return;
    struct mc_rec_ggml_matmul *r = mc_rec_reserve(MC_REC_GGML_MATMUL, sizeof *r);
    if (!r) return;
    r->t_ns = mc_now_ns();
    r->step_id = cur_step;
    for (int i = 0; i < 4; i++) { r->w_ne[i] = w->ne[i]; r->w_nb[i] = w->nb[i]; r->x_ne[i] = x->ne[i]; }
    if (ids) { r->ids_k = ids->ne[0]; r->ids_rows = ids->ne[1]; }
    r->w_addr = (uint64_t)(uintptr_t)w->data;
    r->tid = mc_tid();
    r->op = t->op == GG_OP_MUL_MAT_ID ? MC_GGML_MUL_MAT_ID : MC_GGML_MUL_MAT;
    r->w_type = (uint16_t)w->type;
    r->w_type_size = (uint32_t)type_size(w->type);
    r->w_blck_size = (uint32_t)blck_size(w->type);
    memcpy(r->w_name, w->name, sizeof r->w_name);
    r->w_name[sizeof r->w_name - 1] = 0;
    mc_rec_commit(r);
}

static int is_topk(const struct gg_tensor *t)
{
    return t->name[0] == 'f' && !strncmp(t->name, "ffn_moe_topk-", 13) && t->type == GG_TYPE_I32;
}

static void record_route(const struct gg_tensor *t)
{
    int64_t k = t->ne[0], rows = t->ne[1];
    int64_t experts = (int64_t)(t->nb[1] / sizeof(int32_t));   /* the argsort row: one slot per expert */
    if (k <= 0 || k > 256 || rows <= 0 || t->ne[2] != 1 || t->ne[3] != 1 || experts < k || experts > 65536) return;
    struct mc_rec_ggml_route *r = mc_rec_reserve(MC_REC_GGML_ROUTE, (uint32_t)(sizeof *r + (size_t)experts * 4));
    if (!r) return;
    uint32_t *counts = (uint32_t *)(r + 1);   /* zeroed by the reservation */
    int32_t row[256];
    int32_t invalid = 0;
    for (int64_t i = 0; i < rows; i++) {
        tensor_get(t, row, (size_t)i * t->nb[1], (size_t)k * sizeof *row);
        for (int64_t j = 0; j < k; j++) {
            if (row[j] >= 0 && row[j] < experts) counts[row[j]]++;
            else invalid++;
        }
    }
    r->t_ns = mc_now_ns();
    r->step_id = cur_step;
    r->layer = atoi(t->name + 13);
    r->tid = mc_tid();
    r->rows = (int32_t)rows; r->k = (int32_t)k;
    r->experts = (int32_t)experts; r->invalid = invalid;
    mc_rec_commit(r);
}

static bool eval_cb(struct gg_tensor *t, bool ask, void *ud)
{
    const struct sched_ent *e = ud;
    if (ask) {
        want_prog = e->prog_cb ? e->prog_cb(t, true, e->prog_ud) : 0;
        want_ours = 0;
        if (on()) {
            if (!layout_checked) {
                /* the field we take for the name must be where ggml keeps it */
                static const char *(*get_name)(const struct gg_tensor *);
                if (!get_name) get_name = (const char *(*)(const struct gg_tensor *))mc_resolve_next("ggml_get_name");
                if (!get_name || get_name(t) != t->name) {
                    say("moecap: llama.cpp adapter off: ggml's tensor layout is not the one it was written for; the program runs unaffected\n");
                    atomic_store(&adapter_on, 0);
                    return want_prog;
                }
                layout_checked = 1;
            }
            if (t->op == GG_OP_MUL_MAT || t->op == GG_OP_MUL_MAT_ID) record_matmul(t);
            else if (!routing_off && is_topk(t)) want_ours = 1;
        }
        return want_prog || want_ours;
    }
    if (want_ours) record_route(t);
    return want_prog ? e->prog_cb(t, false, e->prog_ud) : true;
}

void ggml_backend_sched_set_eval_callback(void *sched, gg_eval_cb cb, void *ud)
{
    if (!real_set_cb) {
        void *p = mc_resolve_next("ggml_backend_sched_set_eval_callback");
        if (!p) { say("moecap: cannot find the real ggml_backend_sched_set_eval_callback; aborting\n"); abort(); }
        real_set_cb = (void (*)(void *, gg_eval_cb, void *))p;
    }
    if (!on()) { real_set_cb(sched, cb, ud); return; }
    struct sched_ent *e = NULL;
    for (int i = 0; i < MAX_SCHED && !e; i++)
        if (atomic_load(&scheds[i].sched) == sched) e = &scheds[i];
    for (int i = 0; i < MAX_SCHED && !e; i++) {
        void *empty = NULL;
        if (atomic_compare_exchange_strong(&scheds[i].sched, &empty, sched)) e = &scheds[i];
    }
    if (!e) { real_set_cb(sched, cb, ud); return; }   /* table full: that scheduler is not observed */
    /* a scheduler is set up and computed by one thread at a time: no other reader meanwhile */
    e->prog_cb = cb; e->prog_ud = ud;
    real_set_cb(sched, eval_cb, e);
}

/* ---- family descriptor ---- */

static void ggml_fork_child(void)
{
    atomic_store(&next_step, 0);
    cur_step = 0;   /* the forking thread's: a step of the parent is not the child's */
}

static const struct mc_family ggml_family = {
    .name = "ggml",
    .fork_child = ggml_fork_child,
};

__attribute__((constructor(200))) static void ggml_register(void)
{
    mc_family_register(&ggml_family);
}
