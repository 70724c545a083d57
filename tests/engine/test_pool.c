/* Tests of moe-ref's helper-thread pool (reference-engine/pool.h): every task of every list
 * runs exactly once (counted per task, thousands of short lists back to back, so helpers that
 * wake late meet newer lists), lists longer than one published word holds (65535 tasks),
 * helpers really take tasks, parking does not lose the next list, and worker numbers stay in
 * range. Checked against the task lists themselves. */
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

static void test_one_helper(void) { run_lists(1); }
static void test_three_helpers(void) { run_lists(3); }
static void test_no_helpers(void) { MC_CHECK(mr_pool_new(0) == NULL, "a pool needs a helper"); }

int main(void)
{
    MC_RUN(test_one_helper);
    MC_RUN(test_three_helpers);
    MC_RUN(test_no_helpers);
    return MC_TEST_EXIT();
}
