/* Expert offloading for the CPU engine (moe-ref --expert-budget BYTES --offload POLICY):
 * only a cache of routed experts is resident, in slots allocated under a byte budget; an
 * expert's gate/up/down tensors are pread from the weights file (their exact ranges) into a
 * slot. Two policies (docs/reference-engine.md, "Expert offloading"):
 *   ondemand — a routed expert that is not resident is read before use, evicting the least
 *              recently used slot; results equal full residency exactly;
 *   swapmoe  — each MoE layer keeps a fixed set of resident experts; routing is restricted
 *              to it (an absent choice goes to the best-scored resident expert) and a
 *              background thread swaps the set between steps by a decayed
 *              routing-frequency importance. Results change (measured, not hidden).
 * Internal to the engine (engine.c calls it from the forward pass). */
#ifndef MOE_REF_OFFLOAD_H
#define MOE_REF_OFFLOAD_H

#include "internal.h"

struct mr_offload;

/* What the cache did in one step (the ground truth's "offload" object). "Loaded" counts
 * reads since the previous step ended (ondemand: inside the step; swapmoe: the swap
 * between the steps); a computed expert is a miss when it was loaded in that window. */
struct mr_offload_step {
    uint64_t hits, misses;            /* computed experts already resident / loaded in the window */
    uint64_t loaded_experts, loaded_bytes;
    uint64_t rerouted_pairs, rerouted_tokens;   /* swapmoe: (token, slot) pairs moved, tokens with any */
    uint64_t resident_experts, resident_bytes;  /* at the end of the step */
};

/* NULL with a message in err when the budget cannot hold one layer's top-k experts (swapmoe:
 * in every MoE layer), or on I/O or memory failure; *usage_error is set to 1 for the
 * former (a bad argument: exit 2). */
struct mr_offload *mr_offload_new(mr_model *m, enum mr_offload_policy policy, uint64_t budget_bytes,
                                  char *err, size_t errlen, int *usage_error);
void mr_offload_free(struct mr_offload *o);

/* Step boundaries: begin waits for a running background swap and starts the step's
 * counters (-1 with a message when a swap failed to read); end takes the resident count;
 * swap_start (after the step's ground truth is written) hands swapmoe's importance update
 * and swap to the background thread, which the next step_begin waits for. */
int mr_offload_step_begin(struct mr_offload *o, char *err, size_t errlen);
void mr_offload_step_end(struct mr_offload *o);
void mr_offload_swap_start(struct mr_offload *o);

/* swapmoe: restricts T tokens' routing (sel/w, K per token, from their router logits) of
 * MoE layer `layer` to its resident experts and records the unrestricted choices for the
 * importance estimate. ondemand: nothing. */
void mr_offload_route(struct mr_offload *o, int layer, const float *logits, int T, int *sel, float *w);

/* Makes expert x of layer `layer` resident (ondemand: pread on a miss) and gives its
 * gate/up/down weights in its slot. -1 with a message on a read error. */
int mr_offload_expert(struct mr_offload *o, int layer, int x, const float **gate, const float **up,
                      const float **down, char *err, size_t errlen);

const struct mr_offload_step *mr_offload_stats(const struct mr_offload *o);
/* Was expert x of `layer` loaded in this step's window? */
int mr_offload_loaded(const struct mr_offload *o, int layer, int x);
const char *mr_offload_policy_name(const struct mr_offload *o);
uint64_t mr_offload_budget(const struct mr_offload *o);
uint64_t mr_offload_slot_bytes(const struct mr_offload *o);
int mr_offload_slots(const struct mr_offload *o);

/* Command-line helpers shared by `moe-ref run` and `serve` (prog names the command in
 * messages; both print and return -1 on a usage error). --expert-budget and --offload:
 * a budget without a policy means ondemand, a policy without a budget is an error. */
int mr_parse_offload(const char *prog, const char *budget_arg, const char *policy_arg,
                     enum mr_offload_policy *policy);
/* The budget in bytes: an integer, or P% of all routed expert bytes of the model. */
int mr_budget_bytes(const char *prog, const mr_model *m, const char *budget_arg, uint64_t *bytes);

#endif
