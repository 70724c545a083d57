/* Step segmentation and expert attribution (docs/attribution.md): GEMM records in, one
 * `struct mc_step` out per forward step, with activated experts, tokens per expert, and the
 * step's bytes and FLOPs split as in docs/ground-truth.md. Streaming: the state is per
 * thread of the profiled program plus one cache entry per distinct weight, so memory does
 * not grow with the trace. */
#ifndef MOECAP_REPORT_ATTRIB_H
#define MOECAP_REPORT_ATTRIB_H

#include <stdint.h>
#include "moecap/trace_format.h"
#include "report/model.h"

enum mc_role {
    MC_ROLE_UNKNOWN = 0, MC_ROLE_ATTN, MC_ROLE_ROUTER, MC_ROLE_EXPERT, MC_ROLE_SHARED,
    MC_ROLE_SHARED_GATE, MC_ROLE_DENSE_FFN, MC_ROLE_LM_HEAD, MC_ROLE_MAX
};
enum mc_proj { MC_PROJ_OTHER = 0, MC_PROJ_GATE, MC_PROJ_UP, MC_PROJ_DOWN, MC_PROJ_GATE_UP };

/* What a reconstructed forward step did (docs/attribution.md §5). Not the trace's step
 * marks (enum mc_step_mark_kind: begin/end of a step an adapter announced). */
enum mc_step_kind {
    MC_STEP_PREFILL = 0,   /* new sequences' prompts */
    MC_STEP_DECODE = 1,    /* one token per running sequence */
    MC_STEP_MIXED = 2,     /* continuous batching: running sequences decode, new ones prefill */
    MC_STEP_KINDS
};
/* "prefill", "decode", "mixed" (report.json's spelling); "?" otherwise. */
static inline const char *mc_step_kind_name(unsigned kind)
{
    static const char *const names[MC_STEP_KINDS] = {"prefill", "decode", "mixed"};
    return kind < MC_STEP_KINDS ? names[kind] : "?";
}
/* One process's share of a step's routed experts (expert parallelism: docs/attribution.md §9). */
#define MC_STEP_MAX_PROCS 64
struct mc_step_proc { int32_t pid; uint64_t experts, bytes, flops, calls; };

struct mc_step {
    uint64_t index;              /* 0-based over the run */
    int32_t pid, tid;
    enum mc_step_kind kind;
    int64_t tokens, sequences;
    uint64_t t_begin_ns, t_end_ns;
    uint64_t gemm_calls, unattributed_calls;
    uint64_t bytes_dense, bytes_routed, bytes_shared, kv_read, kv_written;
    uint64_t bytes_all_experts;  /* total with every routed expert of every MoE layer read */
    uint64_t flops_gemm, flops_attention, flops_unattributed;
    uint64_t flops_routed;       /* part of flops_gemm spent in routed experts */
    uint64_t flops_all_experts;  /* total if every token had gone through every expert */
    int64_t activated;           /* Σ over MoE layers of distinct activated experts */
    /* per MoE layer i (model layer moe_layers[i]): tokens per expert, counts[i*E + e] */
    int n_moe;
    const int *moe_layers;
    const int64_t *counts;
    int64_t n_experts;
    const int64_t *context;      /* per sequence, after the step; NULL when unknown */
    int64_t n_context;
    int context_exact;           /* 0: split of a prefill among sequences was assumed */
    int layers_seen;             /* MoE layers whose router was seen */
    int elt;                     /* bytes per weight element of this step's GEMMs (norms, embedding, KV) */
    /* processes whose GEMMs computed this step's routed experts (the step's own first when
     * it computed any); remote_procs > 0 when worker processes took part */
    int n_procs, remote_procs;
    struct mc_step_proc procs[MC_STEP_MAX_PROCS];
    uint64_t comm_bytes;         /* activation rows to and from remote experts: 2 x pairs x d x elt */
    const int32_t *cell_pid;     /* like counts: the process that computed each expert (NULL: the step's) */
};

struct mc_attrib;
typedef void (*mc_step_cb)(const struct mc_step *s, void *user);

struct mc_attrib *mc_attrib_new(const struct mc_model *m, mc_step_cb cb, void *user);
void mc_attrib_free(struct mc_attrib *a);

/* Naming facts (strings resolved by the caller). */
void mc_attrib_tensor(struct mc_attrib *a, const char *path, const char *name,
                      uint64_t file_begin, uint64_t file_end, const int64_t *shape, int ndim,
                      int dtype);
void mc_attrib_file_map(struct mc_attrib *a, int32_t pid, const char *path, uint64_t addr,
                        uint64_t file_offset, uint64_t length, int32_t device);

/* Device naming facts (first pass, docs/attribution.md §3b), all with their record time:
 * a weight-file map with device >= 0 (how = 3) is valid from t until its memory is freed or
 * overwritten; host->device copies (source 1) whose source lies in a host file map name their
 * destination the same way; allocations / frees / large copies give the device ranges that
 * end names (address reuse) and name experts by offset when no tensor name exists. */
void mc_attrib_file_map_t(struct mc_attrib *a, int32_t pid, const char *path, uint64_t addr,
                          uint64_t file_offset, uint64_t length, int32_t device, uint64_t t);
/* A read/pread of weight-file bytes into host memory (FILE_MAP how 1, 2) at time t: its
 * names hold from t until a later read into overlapping memory brings other bytes. */
void mc_attrib_file_read_t(struct mc_attrib *a, int32_t pid, const char *path, uint64_t addr,
                           uint64_t file_offset, uint64_t length, uint64_t t);
void mc_attrib_alloc(struct mc_attrib *a, int32_t pid, int32_t device, uint64_t ptr, uint64_t bytes,
                     int is_free, uint64_t t);
void mc_attrib_h2d(struct mc_attrib *a, int32_t pid, int32_t device, uint64_t src, uint64_t dst,
                   uint64_t bytes, uint64_t t);
/* Ends the first pass: joins copies with host file maps, computes when device names end. */
void mc_attrib_names_done(struct mc_attrib *a);

/* Routed-expert tensors brought into memory (offloading engines): read into host memory
 * (device -1) or copied to a device from weight-file bytes (device >= 0), one per tensor
 * per read or copy, valid in [t_from, t_until); after mc_attrib_names_done. Returns a
 * malloc'ed array sorted by (pid, t_from) and its length in *n (NULL, 0 when none). */
struct mc_expert_load { int32_t pid, device; int layer, expert, proj; uint64_t t_from, t_until, bytes; };
struct mc_expert_load *mc_attrib_expert_loads(const struct mc_attrib *a, size_t *n);

/* Kernel-parameter taps (MC_REC_TOPK_TAP, docs/attribution.md §4c). First pass: every tap's
 * (pid, correlation id); mc_attrib_topk_expected() says whether a scan for their launches is
 * worth it, and mc_attrib_launch() gives a CUPTI API record's thread and host time for a
 * correlation id. Main pass: mc_attrib_topk_tap() with the counts per local expert. */
void mc_attrib_topk_expect(struct mc_attrib *a, int32_t pid, uint64_t correlation);
uint64_t mc_attrib_topk_expected(const struct mc_attrib *a);
void mc_attrib_launch(struct mc_attrib *a, int32_t pid, uint64_t correlation, int32_t tid, uint64_t t);
void mc_attrib_topk_tap(struct mc_attrib *a, int32_t pid, uint64_t correlation, uint64_t t_ns, int64_t rows,
                        int64_t k, int64_t invalid, const uint32_t *counts, int64_t n_counts);

/* A process record (first pass): expert GEMMs of a fork child that runs no steps of its
 * own are merged into its parent's open step (expert parallelism, docs/attribution.md §9). */
void mc_attrib_process(struct mc_attrib *a, int32_t pid, int32_t ppid);

/* One GEMM/GEMV record of process `pid`. */
void mc_attrib_gemm(struct mc_attrib *a, int32_t pid, const struct mc_rec_gemm *g);
/* Optional observer of every GEMM as classified (a timeline export draws layers from it):
 * its role (MC_ROLE_UNKNOWN when it matched no weight), model layer and expert (-1 when
 * unknown). Called from mc_attrib_gemm before the GEMM can close its step. */
typedef void (*mc_gemm_observer)(void *user, int32_t pid, const struct mc_rec_gemm *g, enum mc_role role,
                                 int layer, int expert);
void mc_attrib_observe_gemms(struct mc_attrib *a, mc_gemm_observer fn, void *user);

/* A router-logit tap (MC_REC_ROUTER_TAP): the logits of the router GEMM that thread `tid`
 * of process `pid` began at t_ns. The model's top-k rule gives the layer's experts and
 * tokens per expert when its experts ran in a fused kernel (no expert GEMMs). Taps may come
 * before or after their GEMM; steps wait (in order, bounded) for missing taps. */
void mc_attrib_router_tap(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t_ns, int64_t tokens,
                          int64_t experts, int dtype, int layout, const void *data, size_t len);
/* GPU steps (GEMMs on a device are asynchronous launches): a synchronising host call
 * (cudaMemcpy device->host, stream/event/device sync) of thread `tid` (-1 = any thread of
 * the process: copies carry no thread) that begins after a step's lm_head launch ends that
 * step (returns 1 when it did); any other CUDA call between steps (uploads, launches) marks
 * where the next step's host work began. */
int mc_attrib_gpu_sync(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t_begin, uint64_t t_end);
void mc_attrib_gpu_activity(struct mc_attrib *a, int32_t pid, int32_t tid, uint64_t t);
/* The routing rule alone (for tests): adds (token, slot) pairs per expert to cnt[E]. */
int mc_route_counts(const struct mc_model *m, int64_t tokens, int64_t experts, int dtype, int layout,
                    const void *data, size_t len, int64_t *cnt);

/* Ends the run: steps still open (no lm_head yet) are dropped and counted. */
void mc_attrib_finish(struct mc_attrib *a);

/* Traces are untrusted: sizes beyond these are corrupt, not work to do. BLAS and cuBLAS take
 * m, n, k and batch as 32-bit ints; the per-sequence contexts of a step are kept for at most
 * MC_ATTRIB_MAX_SEQUENCES sequences (the same bound as the running state), so one record can
 * neither overflow a size computation nor make the report allocate or loop beyond this. */
#define MC_ATTRIB_MAX_DIM INT32_MAX
#define MC_ATTRIB_MAX_SEQUENCES (1 << 16)

struct mc_attrib_stats {
    uint64_t gemms, unattributed, steps, open_steps_dropped;
    uint64_t named_weights, shape_weights;   /* weights classified by tensor name / shape */
    int expert_ids_exact;                    /* 0 = some expert ids are first-seen order */
    uint64_t router_mismatch_steps;          /* steps whose router count != MoE layers */
    uint64_t taps, taps_unreadable, taps_unmatched, tap_missing_layers;
    uint64_t structure_mismatch_steps;       /* steps without the shared / dense FFN GEMMs the config predicts */
    uint64_t shape_mismatch;                 /* GEMMs on named weights of unexpected shape */
    uint64_t named_host, named_device_map, named_device_copy; /* named weights by how their address was named */
    uint64_t expert_range_weights, order_weights;   /* expert weights named by device range / first-seen order */
    uint64_t device_maps_derived;            /* device file maps joined from host->device copies */
    uint64_t topk_taps, topk_by_launch, topk_by_time, topk_unplaced, topk_used;
    uint64_t topk_router_agree, topk_router_disagree, topk_gemm_agree, topk_gemm_disagree;
    uint64_t topk_invalid_ids, topk_ids_beyond_model;
    uint64_t placements_dropped;             /* file maps not (wholly) placed: tensor placement bound reached */
    uint64_t helper_gemms;                   /* GEMMs of helper threads counted in another thread's step */
    uint64_t implausible;                    /* GEMMs and steps skipped for sizes no real run has
                                                (see MC_ATTRIB_MAX_DIM, MC_ATTRIB_MAX_SEQUENCES) */
    int weight_elt;                          /* bytes per weight element of the GEMMs (0 unknown, -1 mixed) */
    char mismatch_example[200];
    int64_t unknown_shape_out[8], unknown_shape_in[8];
    uint64_t unknown_shape_count[8];         /* most frequent unattributed shapes */
    int n_unknown_shapes;
};
void mc_attrib_stats(const struct mc_attrib *a, struct mc_attrib_stats *st);

/* Classification of a tensor name (exposed for tests): returns the role and fills layer,
 * expert (-1 when none) and projection. */
enum mc_role mc_role_from_name(const char *name, int *layer, int *expert, enum mc_proj *proj);
const char *mc_role_name(enum mc_role r);

#endif
