/* mc_real: the one way an interposer finds the real definition of the function it
 * wraps (shim_core.h). Only needs mc_resolve_next_except, so unit tests link it with a
 * stand-in core. */
#include "shim_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *mc_real_find(struct mc_real *r)
{
    void *p = atomic_load_explicit(&r->fn, memory_order_acquire);
    if (p) return p;
    /* The first call searches; after a miss only every 1024th call does. */
    if (atomic_fetch_add_explicit(&r->misses, 1, memory_order_relaxed) & 1023u) return NULL;
    p = mc_resolve_next_except(r->name, r);
    if (!p) return NULL;
    atomic_store_explicit(&r->fn, p, memory_order_release);
    return p;
}

void mc_real_missing(const char *symbol)
{
    char line[300];
    snprintf(line, sizeof line, "moecap: cannot find the real %s in any loaded library; aborting "
             "(run without LD_PRELOAD=libmoecap.so, and please report this)\n", symbol);
    ssize_t w = write(2, line, strlen(line));
    (void)w;
    abort();
}
