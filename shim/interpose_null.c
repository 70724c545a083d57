/* The null interposer family: a template to copy, not part of libmoecap.so (shim/module.mk
 * leaves it out; tests/shim/test_null_family.py builds it into a throwaway interposer of a
 * dummy library and reads its records back with `moecap dump`).
 *
 * It interposes one function, `int moecap_null_example(int value)`, and shows the four
 * things every family does: find the real function, record each call, keep its own state
 * right across fork, and write what it holds at each flush point.
 *
 * To add a family (e.g. for library "foo"):
 *   1. Copy this file to shim/interpose_foo.c (shim/module.mk compiles every C file of shim/ into
 *      libmoecap.so) and rename null/NULL to foo/FOO.
 *   2. One wrapper per function, with the exact prototype of the real one; one
 *      `static struct mc_real` per function (mc_real finds the next definition, also in a
 *      library dlopen'ed with RTLD_LOCAL, and costs one atomic load once found).
 *   3. Record with mc_rec_reserve / fill / call the real function / mc_rec_commit. The
 *      reserve returns NULL when capture is off, on re-entry (the real function calling
 *      another interposed one) or when the buffer is full: then just call the real
 *      function. Never allocate or lock on this path. A record type of the family's own
 *      goes in include/moecap/trace_format.h; MC_REC_API with a name (used here) needs none.
 *   4. Family state that other threads change (tables, caches) gets a lock of its own,
 *      taken in fork_prepare and released in fork_parent/fork_child (see the lock order in
 *      shim/shim_core.h); per-process state is reset in fork_child.
 *   5. Register the descriptor from a constructor; every hook is optional.
 * Nothing in the core changes. */
#include "shim_core.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ the interposed API */

typedef int (*null_example_fn)(int value);
static struct mc_real real_null_example = MC_REAL_INIT("moecap_null_example");

/* ------------------------------------------------------------------ family state */

/* Calls seen by this process, written as a counter at every flush point. Under its lock
 * only to show fork handling: a plain atomic would do for a counter. */
static pthread_mutex_t g_null_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_null_calls;
static uint32_t g_null_name_str, g_null_counter_str, g_null_unit_str;

/* ------------------------------------------------------------------ the wrapper */

int moecap_null_example(int value)
{
    null_example_fn real = (null_example_fn)mc_real(&real_null_example);
    if (!real) mc_real_missing("moecap_null_example");
    struct mc_rec_api *r = mc_rec_reserve(MC_REC_API, sizeof *r);
    if (!r) return real(value);          /* capture off, re-entry or buffer full */
    r->api = MC_API_UNKNOWN;              /* no API number of its own: the name says it */
    r->name_str = g_null_name_str;        /* interned once in init, not per call */
    r->tid = mc_tid();
    r->device = -1;
    r->arg0 = (uint64_t)(int64_t)value;
    r->t_begin_ns = mc_now_ns();
    int result = real(value);
    r->t_end_ns = mc_now_ns();
    r->result = (uint16_t)result;
    mc_rec_commit(r);
    pthread_mutex_lock(&g_null_lock);
    g_null_calls++;
    pthread_mutex_unlock(&g_null_lock);
    return result;
}

/* ------------------------------------------------------------------ hooks */

static void null_init(void)
{
    g_null_name_str = mc_intern("moecap_null_example");
    g_null_counter_str = mc_intern("null.calls");
    g_null_unit_str = mc_intern("count");
}

/* Flush point (exit, fork, exec): the running total, as a counter record. A process that
 * never called the function writes nothing, so it still leaves no trace file. */
static void null_flush(void)
{
    pthread_mutex_lock(&g_null_lock);
    uint64_t calls = g_null_calls;
    pthread_mutex_unlock(&g_null_lock);
    if (!calls) return;
    struct mc_rec_counter *c = mc_rec_reserve(MC_REC_COUNTER, sizeof *c);
    if (!c) return;
    c->t_ns = mc_now_ns();
    c->value = (double)calls;
    c->name_str = g_null_counter_str;
    c->unit_str = g_null_unit_str;
    c->tid = -1;
    c->device = -1;
    c->cumulative = 1;
    mc_rec_commit(c);
}

static void null_fork_prepare(void) { pthread_mutex_lock(&g_null_lock); }
static void null_fork_parent(void) { pthread_mutex_unlock(&g_null_lock); }
static void null_fork_child(void)
{
    g_null_calls = 0;                     /* the child counts its own calls */
    pthread_mutex_unlock(&g_null_lock);
}

static const struct mc_family null_family = {
    .name = "null",
    .init = null_init,
    .flush = null_flush,
    .fork_prepare = null_fork_prepare,
    .fork_parent = null_fork_parent,
    .fork_child = null_fork_child,
};

__attribute__((constructor(200))) static void null_register(void)
{
    mc_family_register(&null_family);
}
