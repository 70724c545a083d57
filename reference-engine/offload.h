/* Expert offloading (moe-ref --expert-budget BYTES --offload POLICY): only a cache of routed
 * experts is resident, in slots allocated under a byte budget, one expert (gate, up, down)
 * per slot. Two policies (docs/reference-engine.md, "Expert offloading"):
 *   ondemand — a routed expert that is not resident is loaded before use, evicting the least
 *              recently used slot; results equal full residency exactly;
 *   swapmoe  — each MoE layer keeps a fixed set of resident experts; routing is restricted
 *              to it (an absent choice goes to the best-scored resident expert) and a
 *              background thread swaps the set between steps by a decayed
 *              routing-frequency importance. Results change (measured, not hidden).
 * The policy core is shared by the CPU engine (slots in host memory, experts pread from the
 * weights file: mr_offload_new / mr_offload_expert) and the CUDA engine (device slots filled
 * by cudaMemcpyAsync from pinned host memory: its own loader, mr_offload_new_with /
 * mr_offload_slot). Internal to the engines. */
#ifndef MOE_REF_OFFLOAD_H
#define MOE_REF_OFFLOAD_H

#include "internal.h"

struct mr_offload;

/* What the cache did in one step (the ground truth's "offload" object). "Loaded" counts
 * loads since the previous step ended (ondemand: inside the step; swapmoe: the swap
 * between the steps); a computed expert is a miss when it was loaded in that window. */
struct mr_offload_step {
    uint64_t hits, misses;            /* computed experts already resident / loaded in the window */
    uint64_t loaded_experts, loaded_bytes;
    uint64_t rerouted_pairs, rerouted_tokens;   /* swapmoe: (token, slot) pairs moved, tokens with any */
    uint64_t resident_experts, resident_bytes;  /* at the end of the step */
};

/* How an engine brings an expert into a slot. load may be asynchronous when sync waits for
 * what was issued; release frees ctx (the core owns it from mr_offload_new_with on). */
struct mr_offload_loader {
    void *ctx;
    int (*load)(void *ctx, int slot, int layer, int expert, char *err, size_t errlen);
    int (*sync)(void *ctx, char *err, size_t errlen);   /* NULL: loads are complete on return */
    void (*release)(void *ctx);                          /* NULL: nothing to free */
    const char *from;                                    /* ground truth "loaded_from" */
};

/* Slots a budget gives for experts of slot_bytes each: 0, or -1 with a message when it
 * cannot hold one layer's top-k experts (swapmoe: in every MoE layer) or the model has no
 * routed experts (usage errors). */
int mr_offload_plan(const mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes, uint64_t slot_bytes,
                    int *nslots, char *err, size_t errlen);
/* The policy core over an engine's loader (owned from here on, released on failure too).
 * NULL with a message; *usage_error = 1 for the plan's errors. */
struct mr_offload *mr_offload_new_with(const mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes,
                                       uint64_t slot_bytes, const struct mr_offload_loader *ld, char *err,
                                       size_t errlen, int *usage_error);
/* The CPU engine's offloading: host slots, pread from the weights file. */
struct mr_offload *mr_offload_new(mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes,
                                  char *err, size_t errlen, int *usage_error);
void mr_offload_free(struct mr_offload *o);

/* Step boundaries: begin waits for a running background swap and starts the step's
 * counters (-1 with a message when a swap failed to load); end takes the resident count;
 * swap_start (after the step's ground truth is written) hands swapmoe's importance update
 * and swap to the background thread, which the next step_begin waits for. */
int mr_offload_step_begin(struct mr_offload *o, char *err, size_t errlen);
void mr_offload_step_end(struct mr_offload *o);
void mr_offload_swap_start(struct mr_offload *o);

/* swapmoe: restricts T tokens' routing (sel/w, K per token, from their router logits) of
 * MoE layer `layer` to its resident experts and records the unrestricted choices for the
 * importance estimate. ondemand: nothing. */
void mr_offload_route(struct mr_offload *o, int layer, const float *logits, int T, int *sel, float *w);

/* Makes expert x of layer `layer` resident (ondemand: loads it on a miss) and returns its
 * slot, or -1 with a message on a load error. */
int mr_offload_slot(struct mr_offload *o, int layer, int x, char *err, size_t errlen);
/* CPU engine: the same, giving the gate/up/down weights in the host slot. */
int mr_offload_expert(struct mr_offload *o, int layer, int x, const float **gate, const float **up,
                      const float **down, char *err, size_t errlen);

/* Ground-truth members (docs/ground-truth.md): `, "loaded": [...]` inside MoE layer
 * `layer`'s object, and `, "offload": {...}` inside the step's. */
void mr_offload_gt_layer(const struct mr_offload *o, FILE *gt, int layer);
void mr_offload_gt_step(const struct mr_offload *o, FILE *gt);
const struct mr_offload_step *mr_offload_stats(const struct mr_offload *o);

/* Reads expert x of layer `layer` (gate, up, down: its tensors' exact file ranges) into
 * dst (3 x f x d floats) with pread on fds (one per model file, mr_offload_open_files). */
int mr_offload_read_expert(const mr_model *m, const int *fds, int layer, int x, float *dst, char *err, size_t errlen);
int *mr_offload_open_files(const mr_model *m, char *err, size_t errlen);
void mr_offload_close_files(const mr_model *m, int *fds);

/* Command-line helpers shared by `moe-ref run` and `serve` (prog names the command in
 * messages; both print and return -1 on a usage error). --expert-budget and --offload:
 * a budget without a policy means ondemand, a policy without a budget is an error. */
int mr_parse_offload(const char *prog, const char *budget_arg, const char *policy_arg,
                     enum mr_offload_policy *policy);
/* The budget in bytes: an integer, or P% of all routed expert bytes of the model at elt
 * bytes per weight element (4 for F32, 2 for the CUDA engine's bf16). */
int mr_budget_bytes(const char *prog, const mr_model *m, const char *budget_arg, int elt, uint64_t *bytes);

#endif
