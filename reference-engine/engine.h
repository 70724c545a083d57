/* moe-ref public engine API: load a Hugging Face style MoE model (config.json +
 * *.safetensors, F32) by mmap, keep per-sequence KV caches, and run forward steps over an
 * arbitrary set of sequences with arbitrary new-token counts (prefill, decode or mixed —
 * the building block of both `moe-ref run` and `moe-ref serve`'s continuous batching).
 *
 * Every weight matrix product is one cblas_sgemm call on the mmap'ed weight (see
 * docs/reference-engine.md), and each step can append one ground-truth JSON line
 * (docs/ground-truth.md) to a FILE*.
 *
 * Thread safety: one mr_engine may be used by one thread at a time (mr_step is not
 * reentrant on the same engine); distinct engines are independent. Sequences belong to
 * the engine (model) they were created for and must not be stepped concurrently.
 */
#ifndef MOE_REF_ENGINE_H
#define MOE_REF_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mr_arch { MR_ARCH_MIXTRAL = 1, MR_ARCH_QWEN2_MOE = 2, MR_ARCH_DEEPSEEK_V2 = 3 };

/* The model geometry as read from config.json (plus derived values). */
struct mr_config {
    enum mr_arch arch;
    int hidden;            /* d */
    int layers;            /* L */
    int heads, kv_heads;   /* H, HK */
    int head_dim;          /* hd (config head_dim, else d / H) */
    int vocab;             /* V */
    int experts;           /* E routed experts per MoE layer */
    int top_k;             /* K */
    int moe_inter;         /* f: routed expert intermediate size */
    int dense_inter;       /* fd: dense FFN intermediate size (dense layers) */
    int shared_inter;      /* fs: total shared-expert intermediate (0 = no shared expert) */
    int shared_gate;       /* 1 = qwen2_moe sigmoid shared_expert_gate */
    int n_dense_layers;    /* number of dense (non-MoE) layers */
    int norm_topk_prob;    /* renormalise the top-k weights */
    float routed_scaling_factor; /* deepseek_v2 (applied when not renormalising), else 1 */
    int n_group, topk_group;     /* deepseek_v2 group_limited_greedy; 0 = greedy */
    float rms_eps;
    float rope_theta;
    int max_position;      /* max_position_embeddings */
    int eos_token_id;      /* -1 when absent */
    int bos_token_id;      /* -1 when absent */
};

typedef struct mr_model mr_model;   /* mmap'ed weights + config, read-only after load */
typedef struct mr_seq mr_seq;       /* one sequence: its KV cache and length */
typedef struct mr_engine mr_engine; /* scratch buffers, thread count, step counter */

/* Loads DIR/config.json and every DIR/NAME.safetensors. On failure returns NULL and writes a
 * one-line message naming the problem (missing field, tensor, wrong shape, truncated
 * file...) into err. */
mr_model *mr_model_load(const char *dir, char *err, size_t errlen);
void mr_model_free(mr_model *m);
const struct mr_config *mr_model_config(const mr_model *m);
/* Is layer l dense (no experts)? */
int mr_model_layer_is_dense(const mr_model *m, int layer);

/* threads (<= 0 means 1): with T > 1, T - 1 helper threads are started that run a layer's
 * routed experts (and shared expert) and its q/k/v side by side with the step's thread,
 * each product one BLAS call with one BLAS thread; lm_head-sized products the step thread
 * runs alone get the BLAS library's T threads (OpenBLAS's setter, when the library has it).
 * Also the OpenMP threads of attention over long contexts. */
mr_engine *mr_engine_create(mr_model *m, int threads, char *err, size_t errlen);
void mr_engine_free(mr_engine *e);

/* BLAS call form. Off: every weight product is one
 *   cblas_sgemm(RowMajor, NoTrans, Trans, m, out, in, 1, X, in, W, in, 0, Y, out)
 * with W the mmap'ed [out, in] weight as operand B. On (the default): products with a
 * single row (m == 1, e.g. decode at batch 1, lm_head of one sequence) call
 *   cblas_sgemv(RowMajor, NoTrans, out, in, 1, W, in, x, 1, 0, y, 1)
 * instead (W is then operand A), which OpenBLAS runs at memory bandwidth while its sgemm
 * with one row is compute-bound. Ground truth is the same in both forms. */
void mr_engine_set_gemv(mr_engine *e, int on);

/* Expert offloading (docs/reference-engine.md, "Expert offloading"): routed experts live in
 * slots under a byte budget, read from the weights file with pread; MR_OFFLOAD_ONDEMAND
 * loads a missing expert before use (LRU eviction; results equal full residency),
 * MR_OFFLOAD_SWAPMOE restricts routing to per-layer resident sets that a background thread
 * swaps between steps by importance (results change). Call before the first step. Returns
 * 0; -2 when the budget cannot hold one MoE layer's top-k experts (swapmoe: in every MoE
 * layer) or the model has no experts (a usage error); -1 on I/O or memory failure. The
 * message is in err. The ground truth then carries per-step "offload" facts. */
enum mr_offload_policy { MR_OFFLOAD_NONE = 0, MR_OFFLOAD_ONDEMAND = 1, MR_OFFLOAD_SWAPMOE = 2 };
int mr_engine_set_offload(mr_engine *e, enum mr_offload_policy policy, uint64_t budget_bytes,
                          char *err, size_t errlen);

/* Expert parallelism (docs/reference-engine.md, "Expert parallelism"): forks n worker
 * processes that compute the routed experts x with x % n == rank, exchanging activation
 * rows through shared memory per MoE layer; results equal the single-process engine bit
 * for bit. Steps may then hold at most cap_tokens tokens. Call after mr_engine_set_gemv,
 * before the first step, and not together with offloading. 0, or -1 with a message. The
 * ground truth then carries an "expert_parallel" object per step. */
int mr_engine_set_expert_parallel(mr_engine *e, int n, int cap_tokens, char *err, size_t errlen);

/* A sequence with its own KV cache for up to max_len tokens (prompt + generated);
 * max_len <= 0 means the model's max_position. NULL on allocation failure. */
mr_seq *mr_seq_create(mr_engine *e, int max_len);
void mr_seq_free(mr_seq *s);
int mr_seq_len(const mr_seq *s);      /* tokens already in the KV cache */
int mr_seq_max_len(const mr_seq *s);

/* One forward step: appends counts[i] tokens new_tokens[i][0..counts[i]-1] to seqs[i]
 * (i < nseq; sequences distinct, counts[i] >= 1, token ids < vocab, and
 * mr_seq_len + counts[i] <= max_len), and writes each sequence's greedy next token
 * (argmax of its last token's logits, ties to the lower id) to out_next[i].
 * If ground_truth is not NULL, one JSON line describing the step is written (and
 * flushed) there. Returns 0, or -1 with a message in mr_engine_error() on bad arguments
 * (then no sequence was changed). */
int mr_step(mr_engine *e, mr_seq *const seqs[], const int32_t *const new_tokens[],
            const int counts[], int nseq, int32_t out_next[], FILE *ground_truth);

/* Logits of the last token of each sequence of the last successful mr_step:
 * nseq x vocab floats, row i for seqs[i]; valid until the next mr_step or free. */
const float *mr_engine_logits(const mr_engine *e);
const char *mr_engine_error(const mr_engine *e);

/* Summary of the last successful step (the same numbers as its ground-truth line). */
struct mr_step_info {
    uint64_t step;               /* 0-based index of this engine's steps */
    const char *kind;            /* "prefill", "decode", "mixed" */
    int sequences, tokens;
    uint64_t t_begin_ns, t_end_ns; /* CLOCK_MONOTONIC */
    double bytes_total, flops_total;
    uint64_t gemm_calls;
};
void mr_engine_last_step(const mr_engine *e, struct mr_step_info *out);

/* Byte-level tokenizer (trivial, deterministic; docs/reference-engine.md):
 * encode: byte b -> token id b % vocab (so vocab >= 256 round-trips any text);
 * decode: printable ASCII ids (32..126) and '\n', '\t' -> that byte, every other id -> one
 * printable ASCII character (' ' + id % 95), so decoded text is always valid UTF-8. */
int mr_tok_encode(const char *text, size_t len, int vocab, int32_t *out, int max_out);
/* Writes the decoding of ids[0..n-1] (n bytes) plus a NUL into out (cap >= n + 1);
 * returns the number of bytes written, excluding the NUL, or -1 if cap is too small. */
int mr_tok_decode(const int32_t *ids, int n, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* MOE_REF_ENGINE_H */
