/* What a timestamp costs on this machine: clock_gettime(CLOCK_MONOTONIC) (what the shim
 * stamps a call with when the kernel's clock source is not the TSC), rdtsc (what it uses when
 * it is, or with MOECAP_TSC=1) and rdtscp, ns per read over 5 M reads; then how far the TSC
 * of two CPUs disagree: two threads pinned to CPUs 0 and 1 take turns reading it, and every
 * read lower than the other CPU's previous one is counted (a TSC synchronised across CPUs
 * never goes backwards), with the largest step back. Each turn's read is fenced (lfence):
 * rdtsc alone may execute before the load that saw the turn arrive completes (a cache-line
 * transfer from the other CPU, ~100 ns), which reads as a TSC step back of that size on
 * CPUs whose TSCs agree (unfenced, this VM showed 4-29 of 400 000 reads back by up to 189
 * ticks; fenced, none).
 *
 *   cc -O2 -pthread bench/clock-cost.c -o /tmp/clock-cost && /tmp/clock-cost
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static _Atomic unsigned long last_tsc;
static _Atomic int turn;
static long backwards, max_back, rounds = 200000;

static void *pingpong(void *arg)
{
    int me = (int)(long)arg;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(me, &s);
    if (pthread_setaffinity_np(pthread_self(), sizeof s, &s)) return NULL;
    for (long i = 0; i < rounds; i++) {
        while (atomic_load(&turn) != me) {}
        _mm_lfence();   /* the read after the turn's load, not before it (see above) */
        unsigned long t = __rdtsc(), prev = atomic_load(&last_tsc);
        if (t < prev) { backwards++; if ((long)(prev - t) > max_back) max_back = (long)(prev - t); }
        atomic_store(&last_tsc, t);
        atomic_store(&turn, 1 - me);
    }
    return NULL;
}

int main(void)
{
    const long n = 5000000;
    struct timespec ts;
    unsigned aux;
    unsigned long sink = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) clock_gettime(CLOCK_MONOTONIC, &ts);
    double t1 = now();
    for (long i = 0; i < n; i++) sink += __rdtsc();
    double t2 = now();
    for (long i = 0; i < n; i++) sink += __rdtscp(&aux);
    double t3 = now();
    printf("ns per read: clock_gettime(CLOCK_MONOTONIC) %.1f, rdtsc %.1f, rdtscp %.1f (%lu)\n",
           (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, (t3 - t2) / n * 1e9, sink & 1);
    pthread_t th[2];
    for (long i = 0; i < 2; i++) pthread_create(&th[i], NULL, pingpong, (void *)i);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    printf("TSC between CPUs 0 and 1: %ld of %ld alternating reads went backwards, by at most %ld ticks\n",
           backwards, 2 * rounds, max_back);
    return 0;
}
