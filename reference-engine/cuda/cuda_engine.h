/* moe-ref CUDA engine (libmoeref-cuda.so, dlopen'ed by `moe-ref run --device cuda`): the
 * same model, the same forward pass and the same ground-truth lines as the CPU engine,
 * on one GPU, in two MoE execution styles:
 *   loop  - router GEMM, routing on the host, then one cuBLAS GEMM per activated expert
 *           and projection (gate, up, down), like Hugging Face's eager experts;
 *   fused - a router top-k kernel (mr_fused_topk) and two grouped expert kernels for all
 *           experts at once (no cuBLAS), like vLLM/SGLang fused MoE: invisible to cuBLAS
 *           interposition, visible to the kernel-parameter tap in data/taps/moe-ref.json.
 * Weights are uploaded with cudaMemcpy straight from the mmap'ed safetensors (f32) or
 * converted to bf16 first (--dtype bf16: weights and KV cache bf16, activations f32,
 * cublasGemmEx bf16 x bf16 -> f32 with f32 accumulation). With offload (loop style only),
 * the routed experts stay in pinned host memory (read there with pread from the weights
 * file) and only a budget of device slots holds experts, filled with cudaMemcpyAsync
 * (reference-engine/offload.h: ondemand LRU or swapmoe). */
#ifndef MOE_REF_CUDA_ENGINE_H
#define MOE_REF_CUDA_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mr_model;

struct mr_cuda_opts {
    int fused;      /* 0 = loop, 1 = fused */
    int bf16;       /* 0 = f32, 1 = bf16 */
    int offload;    /* enum mr_offload_policy: 0 = every expert on the device (loop only otherwise) */
    unsigned long long expert_budget;   /* device bytes of expert slots with offload */
};

/* Prefill all nseq prompts in one step, then `gen - 1` greedy decode steps (batch of all
 * sequences); out_ids[i][0..gen-1] receive the sampled tokens. Writes one ground-truth
 * line per step to gt and, when logits_out is set, one logits line per step (same format
 * as the CPU engine's --dump-logits). Returns 0, -2 when no usable CUDA device exists, or -1
 * on another failure, with a message in err. */
int mr_cuda_run(struct mr_model *m, int nseq, int32_t *const *prompts, const int *plen, int gen,
                const struct mr_cuda_opts *opts, FILE *gt, FILE *logits_out, int32_t **out_ids,
                char *err, size_t errlen);
/* Host routing of the loop style (the CPU engine's rule), for tests. */
struct mr_config;
void mr_cuda_route_token(const struct mr_config *c, const float *logit, int *sel, float *w);

typedef int (*mr_cuda_run_fn)(struct mr_model *, int, int32_t *const *, const int *, int,
                              const struct mr_cuda_opts *, FILE *, FILE *, int32_t **, char *, size_t);

#ifdef __cplusplus
}
#endif
#endif
