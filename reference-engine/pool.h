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

#include <stdatomic.h>
#include <stdint.h>

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

/* A count that tasks of a list raise and another task of the same list waits on (moe-ref:
 * an expert's down product waits until its gate and up products are done). Start it at 0
 * before the list. The waiter spins as long as an idle helper does, then sleeps on a futex
 * until the count is reached: with more threads than free CPUs, the thread it waits for may
 * have lost its CPU, and a waiter that spun on would hold the one that thread needs. A waited
 * count must be raised by tasks earlier in the list (claimed first, so running or done). */
void mr_pool_count_up(_Atomic uint32_t *count);
void mr_pool_wait_count(_Atomic uint32_t *count, uint32_t target);

#endif
