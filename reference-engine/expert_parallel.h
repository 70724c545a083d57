/* Expert parallelism across processes for the CPU engine (moe-ref run --expert-parallel N,
 * the MoE-CAP PA class): N worker processes, forked at set-up, each own the experts
 * x with x % N == rank of every MoE layer. Per MoE layer the coordinator (the engine's
 * process) writes each routed (token, slot) pair's activation row, grouped by expert, into
 * shared memory, wakes the workers, and reads back each pair's expert output row; the
 * weighted sum stays in the coordinator in ascending expert order, so results equal the
 * single-process engine bit for bit. Internal to the engine. */
#ifndef MOE_REF_EXPERT_PARALLEL_H
#define MOE_REF_EXPERT_PARALLEL_H

#include <sys/types.h>

#include "internal.h"

struct mr_ep;

/* Forks n workers able to take steps of up to cap_tokens tokens. gemv: the engine's
 * single-row form (the workers must issue the same BLAS calls). NULL with a message. */
struct mr_ep *mr_ep_new(mr_model *m, int n, int cap_tokens, int gemv, char *err, size_t errlen);
/* Tells the workers to exit and reaps them. */
void mr_ep_free(struct mr_ep *p);

/* The experts of MoE layer `layer`: xn = T x d normalised inputs; cnt[E] pairs per expert,
 * eoff[E+1] their offsets, etok[pair] the token of each pair (grouped by expert, tokens
 * ascending). Returns the pairs' expert outputs (pair i's row at i x d), valid until the next
 * call, or NULL with a message (too many tokens, a worker died). */
const float *mr_ep_layer(struct mr_ep *p, int layer, const float *xn, const int *cnt, const int *eoff,
                         const int *etok, int T, char *err, size_t errlen);

int mr_ep_procs(const struct mr_ep *p);
pid_t mr_ep_pid(const struct mr_ep *p, int rank);
static inline int mr_ep_owner(int n, int expert) { return expert % n; }

#endif
