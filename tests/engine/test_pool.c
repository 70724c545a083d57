/* Tests of moe-ref's helper-thread pool (reference-engine/pool.h): every task of every list
 * runs exactly once (counted per task, thousands of short lists back to back, so helpers that
 * wake late meet newer lists), lists longer than one published word holds (65535 tasks),
 * helpers really take tasks, parking does not lose the next list, and worker numbers stay in
 * range; a task waiting on a count (mr_pool_wait_count) sees what the tasks that raised it
 * wrote, whether it caught them spinning or had to sleep. Checked against the task lists
 * themselves. */
#include "pool.h"
#include "mc_test.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct job {
    _Atomic int *runs;          /* per task: times it ran */
    _Atomic int bad_worker;
    _Atomic int on_helper;      /* tasks run by helpers */
    int helpers;
    int wait_helper;            /* tasks wait (up to 5 s) until some task ran on a helper */
};

static void task(void *ctx, int t, int worker)
{
    struct job *j = ctx;
    atomic_fetch_add(&j->runs[t], 1);
    if (worker < 0 || worker > j->helpers) atomic_store(&j->bad_worker, 1);
    if (worker > 0) atomic_fetch_add(&j->on_helper, 1);
    for (int i = 0; j->wait_helper && i < 5000 && !atomic_load(&j->on_helper); i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
}

static int count_wrong(_Atomic int *runs, int n)
{
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += atomic_load(&runs[i]) != 1;
    return wrong;
}

static void run_lists(int helpers)
{
    struct mr_pool *p = mr_pool_new(helpers);
    MC_CHECK(p != NULL, "pool of %d helpers", helpers);
    if (!p) return;
    enum { MAXN = 70000 };
    struct job j = { .runs = calloc(MAXN, sizeof *j.runs), .helpers = helpers };
    unsigned seed = 12345;
    int wrong_lists = 0;
    for (int l = 0; l < 5000; l++) {   /* short lists back to back */
        seed = seed * 1103515245u + 12345u;
        int n = 1 + (int)((seed >> 16) % 12);
        for (int i = 0; i < n; i++) atomic_store(&j.runs[i], 0);
        mr_pool_run(p, n, task, &j);
        wrong_lists += count_wrong(j.runs, n) != 0;
        if (l % 97 == 0) mr_pool_park(p);   /* parked helpers must still take the next list */
    }
    MC_CHECK(wrong_lists == 0, "%d of 5000 lists had a task run other than once", wrong_lists);
    for (int i = 0; i < MAXN; i++) atomic_store(&j.runs[i], 0);
    mr_pool_run(p, MAXN, task, &j);   /* more tasks than one published list holds */
    MC_CHECK(count_wrong(j.runs, MAXN) == 0, "70000-task list: %d tasks ran other than once",
             count_wrong(j.runs, MAXN));
    /* tasks that wait for a helper: the caller alone cannot finish the list (unless no
     * helper takes a task within 5 s) */
    for (int i = 0; i < 8; i++) atomic_store(&j.runs[i], 0);
    atomic_store(&j.on_helper, 0);
    j.wait_helper = 1;
    mr_pool_park(p);
    mr_pool_run(p, 8, task, &j);
    MC_CHECK(count_wrong(j.runs, 8) == 0 && atomic_load(&j.on_helper) > 0,
             "list after parking: wrong %d, on helpers %d", count_wrong(j.runs, 8), atomic_load(&j.on_helper));
    MC_CHECK(!atomic_load(&j.bad_worker), "a worker number out of 0..%d", helpers);
    mr_pool_free(p);
    free(j.runs);
}

/* Lists of pairs: tasks 0..n-1 each write a value and raise the count of their pair, tasks
 * n..2n-1 wait for their pair's count of 2 (producers 2i and 2i+1, as moe-ref's expert gate
 * and up for a down product) and copy the sum. `nap_us` > 0 makes producers sleep first, so
 * waiters go past their spin and sleep on the futex. */
struct pairs {
    int n, nap_us;
    int *val, *sum;
    _Atomic uint32_t *count;
};

static void pair_task(void *ctx, int t, int worker)
{
    (void)worker;
    struct pairs *q = ctx;
    if (t < q->n) {
        if (q->nap_us) {
            struct timespec ts = { 0, (long)q->nap_us * 1000 };
            nanosleep(&ts, NULL);
        }
        q->val[t] = t * 7 + 1;   /* plain write, published by the raise */
        mr_pool_count_up(&q->count[t / 2]);
        return;
    }
    int i = t - q->n;
    mr_pool_wait_count(&q->count[i], 2);
    q->sum[i] = q->val[2 * i] + q->val[2 * i + 1];
}

/* `lists` lists of 1..32 pairs, or one list of `big` pairs when big > 0 (3 x big tasks:
 * more than one published list holds, so waiters and their producers may sit in different
 * lists of mr_pool_run's split) */
static void run_pairs(int helpers, int nap_us, int lists, int big)
{
    struct mr_pool *p = mr_pool_new(helpers);
    MC_CHECK(p != NULL, "pool of %d helpers", helpers);
    if (!p) return;
    int most = big > 32 ? big : 32;
    struct pairs q = { .nap_us = nap_us, .val = calloc(2 * (size_t)most, sizeof(int)),
                       .sum = calloc((size_t)most, sizeof(int)),
                       .count = calloc((size_t)most, sizeof(_Atomic uint32_t)) };
    int wrong = 0;
    for (int l = 0; l < lists && q.val && q.sum && q.count; l++) {
        int pairs = big > 0 ? big : 1 + l % 32;
        q.n = 2 * pairs;
        for (int i = 0; i < pairs; i++) { atomic_store(&q.count[i], 0); q.sum[i] = -1; }
        for (int i = 0; i < q.n; i++) q.val[i] = 0;
        mr_pool_run(p, q.n + pairs, pair_task, &q);
        for (int i = 0; i < pairs; i++) wrong += q.sum[i] != (2 * i * 7 + 1) + ((2 * i + 1) * 7 + 1);
    }
    MC_CHECK(wrong == 0, "%d helpers, producers napping %d us, big %d: %d waiting tasks saw a wrong sum",
             helpers, nap_us, big, wrong);
    free(q.val); free(q.sum); free((void *)q.count);
    mr_pool_free(p);
}

static void test_wait_count(void)
{
    run_pairs(1, 0, 3000, 0);
    run_pairs(3, 0, 3000, 0);
    run_pairs(5, 1000, 40, 0);   /* waiters sleep: producers take longer than the spin */
    run_pairs(3, 0, 2, 30000);   /* 90000 tasks, split into two lists */
}

static void test_one_helper(void) { run_lists(1); }
static void test_three_helpers(void) { run_lists(3); }
static void test_no_helpers(void) { MC_CHECK(mr_pool_new(0) == NULL, "a pool needs a helper"); }

int main(void)
{
    MC_RUN(test_one_helper);
    MC_RUN(test_three_helpers);
    MC_RUN(test_no_helpers);
    MC_RUN(test_wait_count);
    return MC_TEST_EXIT();
}
