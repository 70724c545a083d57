/* Internal state of the attributor (attrib.h), shared by postproc/report/attrib*.c only:
 * naming tables, the weight cache, per-thread stream state, taps and queued steps, and the
 * functions one attrib_*.c file calls in another. Not an API: callers use attrib.h. */
#ifndef MOECAP_REPORT_ATTRIB_INTERNAL_H
#define MOECAP_REPORT_ATTRIB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "report/attrib.h"
#include "report/devmem.h"

/* ---------- address -> tensor name ---------- */

struct tensor_ent { char *base, *name; uint64_t fb, fe; int64_t shape0; int ndim; };
/* rule: how the address range got its file bytes (stats, docs §3b): host map, device file
 * map written by the shim (how = 3), a host->device copy joined with a host map here, or a
 * read/pread into host memory (valid from the read until a later read overwrites it:
 * expert slots of an offloading engine are refilled with other experts) */
enum { RULE_HOST = 0, RULE_DEVICE_MAP = 1, RULE_DEVICE_COPY = 2, RULE_HOST_READ = 3 };
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
    int n_procs, remote_procs;   /* processes that computed this step's routed experts */
    struct mc_step_proc procs[MC_STEP_MAX_PROCS];
    uint64_t comm_bytes;
    int32_t *cell_pid;      /* n_moe x E: process that computed the expert (valid where counts > 0) */
    int ctx_exact;
    struct stream *next;
};

struct mc_attrib {
    const struct mc_model *m;
    mc_step_cb cb;
    void *user;
    mc_gemm_observer obs;               /* optional, mc_attrib_observe_gemms */
    void *obs_user;
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
    struct { int32_t pid, ppid; } *procs; size_t n_procs;   /* process tree (first pass) */
};

/* hash of (address or correlation id, pid): weight cache and launch table */
static inline size_t hash_addr(uint64_t x, int32_t pid)
{
    x ^= (uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)x;
}

/* ---------- internal functions shared by the attrib_*.c files ---------- */

/* attrib_names.c: the tensor at addr of process pid at time t (device names hold only while
 * their memory does) */
const struct interval *attrib_find_interval(struct mc_attrib *a, int32_t pid, uint64_t addr, uint64_t t);
/* attrib_weights.c: resolve (or classify and cache) the weight at `addr` seen with shape
 * out x in and element type dt by a GEMM that began at t */
struct went *attrib_lookup_weight(struct mc_attrib *a, struct stream *s, uint64_t addr,
                                  int64_t out, int64_t in, int dt, uint64_t t, int on_device);
/* attrib_gemm.c: a stream's per-step state back to "no step open"; a stream's memory */
void attrib_reset_step(struct stream *s);
void attrib_stream_free(struct stream *s);
/* attrib_step.c: close the step at lm_head */
void attrib_finish_step(struct mc_attrib *a, struct stream *s, int64_t sequences);
/* attrib_route.c: counts of a tapped MoE layer into a step */
void attrib_apply_tap(const struct mc_model *m, const int64_t *tap, int64_t *counts, int32_t *touched,
                      int64_t *n_touched, int64_t *activated, uint64_t *b_routed, uint64_t *f_routed,
                      uint64_t *f_gemm, int64_t base, int elt);
/* attrib_taps.c */
int attrib_take_tap(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t, int64_t *out);
void attrib_compare_counts(struct mc_attrib *a, const int64_t *x, const int64_t *y, int router);
void attrib_retry_topk(struct mc_attrib *a, int32_t pid, int force);
/* attrib_pending.c */
void attrib_pend_apply(struct mc_attrib *a, struct pend *p, int i, const int64_t *cnt, uint8_t src);
void attrib_pend_free(struct pend *p);
void attrib_flush_pending(struct mc_attrib *a, int force);
void attrib_deliver(struct mc_attrib *a, struct stream *s, struct mc_step *st, int n_need, int open_end,
                    uint64_t lm_begin);
void attrib_close_open_end(struct mc_attrib *a, int32_t pid, int32_t tid);

#endif
