/* Helper-thread team for moe-ref's parallel weight products (pool.h).
 *
 * One 64-bit word publishes a task list: list number (32 bits) | task count (16) | next
 * unclaimed task (16). A thread claims a task with a compare-and-swap on the whole word, so a
 * helper that wakes late can never take a task of a newer list with the count of an older
 * one; fn and ctx are written before the word is published (release) and read after a
 * successful claim (acquire). Waiting is a short spin, then a futex sleep; the wakers make
 * the futex system call only when someone sleeps. */
#include "pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long an idle thread spins before it sleeps: longer than the serial work between two
 * lists of a decode step (attention, o projection, router: ~0.1-0.5 ms on a 1-2 GB model),
 * short enough that a pool left idle between steps gives its CPU back at once. */
#define SPIN_NS 300000ull

struct helper {
    struct mr_pool *p;
    int worker;
    pthread_t th;
};

struct mr_pool {
    _Atomic uint64_t word;        /* list | count << 16 | next (see above) */
    _Atomic uint32_t list;        /* futex: bumped when a list is published or at quit */
    _Atomic int sleepers;         /* helpers asleep (or about to be) on `list` */
    _Atomic uint32_t done;        /* futex: tasks finished in the current list */
    _Atomic int caller_sleeps;
    _Atomic int quit;
    _Atomic int park;             /* mr_pool_park: idle helpers sleep at once */
    mr_pool_task fn;
    void *ctx;
    int base;                     /* task number of the list's first task (lists of 65535) */
    int helpers;
    struct helper *h;
};

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Spins until *w != val, SPIN_NS pass or *stop is set; returns the last value read. */
static uint32_t spin_while(_Atomic uint32_t *w, uint32_t val, _Atomic int *stop)
{
    uint64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        uint32_t v = atomic_load_explicit(w, memory_order_acquire);
        if (v != val || (stop && atomic_load_explicit(stop, memory_order_relaxed))) return v;
        cpu_relax();
        if ((i & 255) == 0) {
            uint64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return v;
        }
    }
}

/* Claims and runs tasks of the current list until none is left. */
static void work(struct mr_pool *p, int worker)
{
    uint64_t cur = atomic_load_explicit(&p->word, memory_order_acquire);
    for (;;) {
        uint32_t count = (uint32_t)(cur >> 16) & 0xffff, next = (uint32_t)cur & 0xffff;
        if (next >= count) return;
        if (!atomic_compare_exchange_weak_explicit(&p->word, &cur, cur + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;   /* cur reloaded: another thread claimed, or a new list came */
        p->fn(p->ctx, p->base + (int)next, worker);
        uint32_t d = atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1;
        if (d == count && atomic_load(&p->caller_sleeps)) futex_wake(&p->done);
        cur = atomic_load_explicit(&p->word, memory_order_acquire);
    }
}

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    struct mr_pool *p = h->p;
    uint32_t seen = 0;
    for (;;) {
        uint32_t v = spin_while(&p->list, seen, &p->park);
        while (v == seen) {
            atomic_fetch_add(&p->sleepers, 1);
            if (atomic_load(&p->list) == seen) futex_wait(&p->list, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            v = atomic_load_explicit(&p->list, memory_order_acquire);
        }
        seen = v;
        if (atomic_load(&p->quit)) return NULL;
        work(p, h->worker);
    }
}

struct mr_pool *mr_pool_new(int helpers)
{
    if (helpers < 1) return NULL;
    struct mr_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->h = calloc((size_t)helpers, sizeof *p->h);
    if (!p->h) { free(p); return NULL; }
    for (int i = 0; i < helpers; i++) {
        p->h[i].p = p;
        p->h[i].worker = i + 1;
        if (pthread_create(&p->h[i].th, NULL, helper_main, &p->h[i])) {
            p->helpers = i;
            mr_pool_free(p);
            return NULL;
        }
        p->helpers = i + 1;
    }
    return p;
}

void mr_pool_free(struct mr_pool *p)
{
    if (!p) return;
    atomic_store(&p->quit, 1);
    atomic_fetch_add(&p->list, 1);
    futex_wake(&p->list);
    for (int i = 0; i < p->helpers; i++) pthread_join(p->h[i].th, NULL);
    free(p->h);
    free(p);
}

/* One list of at most 65535 tasks (the count's 16 bits in the published word). */
static void run_list(struct mr_pool *p, int base, int n, mr_pool_task fn, void *ctx)
{
    p->fn = fn;
    p->ctx = ctx;
    p->base = base;
    atomic_store_explicit(&p->park, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint32_t list = atomic_load_explicit(&p->list, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->word, ((uint64_t)list << 32) | ((uint64_t)n << 16), memory_order_release);
    atomic_store(&p->list, list);   /* seq_cst: pairs with the helpers' sleepers / recheck */
    if (atomic_load(&p->sleepers)) futex_wake(&p->list);
    work(p, 0);
    for (;;) {   /* the helpers' last tasks: spin, then sleep until the last one wakes us */
        uint32_t d = atomic_load_explicit(&p->done, memory_order_acquire);
        if (d >= (uint32_t)n) break;
        if (spin_while(&p->done, d, NULL) != d) continue;
        atomic_store(&p->caller_sleeps, 1);
        if (atomic_load(&p->done) == d) futex_wait(&p->done, d);
        atomic_store(&p->caller_sleeps, 0);
    }
}

void mr_pool_park(struct mr_pool *p)
{
    atomic_store_explicit(&p->park, 1, memory_order_relaxed);
}

void mr_pool_run(struct mr_pool *p, int n, mr_pool_task fn, void *ctx)
{
    for (int base = 0; base < n; base += 0xffff)
        run_list(p, base, n - base < 0xffff ? n - base : 0xffff, fn, ctx);
}

/* The count's top bit says a waiter sleeps (or is about to) on it; the count is below it. */
#define COUNT_SLEEPER 0x80000000u

void mr_pool_count_up(_Atomic uint32_t *count)
{
    uint32_t old = atomic_fetch_add_explicit(count, 1, memory_order_release);
    if (old & COUNT_SLEEPER) futex_wake(count);
}

void mr_pool_wait_count(_Atomic uint32_t *count, uint32_t target)
{
    uint32_t v = atomic_load_explicit(count, memory_order_acquire);
    while ((v & ~COUNT_SLEEPER) < target) {
        uint32_t seen = v;
        if ((v = spin_while(count, seen, NULL)) != seen) continue;   /* raised meanwhile */
        /* mark the sleeper in the same word: a raise after the mark sees it and wakes us; a
         * raise before it makes the mark fail (the word changed), and we look again */
        if (!(v & COUNT_SLEEPER) &&
            !atomic_compare_exchange_weak_explicit(count, &v, v | COUNT_SLEEPER, memory_order_acquire,
                                                   memory_order_acquire))
            continue;
        futex_wait(count, v | COUNT_SLEEPER);
        v = atomic_load_explicit(count, memory_order_acquire);
    }
}
