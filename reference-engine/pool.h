/* A fixed team of helper threads that runs a list of independent tasks together with the
 * calling thread (moe-ref's parallel weight products: a layer's experts, its q/k/v).
 *
 * Each task is claimed once, in list order, by whichever thread is free first; the caller
 * works too and returns when every task has finished. Idle helpers spin for a short while
 * (the next list usually follows within a few hundred microseconds) and then sleep on a
 * futex, so a pool costs no CPU between steps. Not reentrant: one list at a time, from one
 * calling thread. */
#ifndef MOE_REF_POOL_H
#define MOE_REF_POOL_H

struct mr_pool;

/* task = index in the list (0..n-1); worker = 0 for the caller, 1..helpers for helpers */
typedef void (*mr_pool_task)(void *ctx, int task, int worker);

/* A pool of `helpers` threads (>= 1). NULL when a thread cannot be started. */
struct mr_pool *mr_pool_new(int helpers);
void mr_pool_free(struct mr_pool *p);
/* Runs tasks 0..n-1 on the caller and the helpers; returns when all are done. */
void mr_pool_run(struct mr_pool *p, int n, mr_pool_task fn, void *ctx);
/* Idle helpers stop spinning and sleep now (until the next mr_pool_run): call before work
 * that brings threads of its own (a BLAS call with the library's threads), so spinning
 * helpers do not take their cores. */
void mr_pool_park(struct mr_pool *p);

/* The pause of a spin-wait loop (a task waiting for another one's result). */
static inline void mr_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif
