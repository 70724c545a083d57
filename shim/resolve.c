/* Finding the real definition of an interposed symbol.
 *
 * dlsym(RTLD_NEXT) only searches the global scope after libmoecap.so. A BLAS that came in
 * with dlopen(RTLD_LOCAL) (Python extension modules: numpy, torch) is not in that scope,
 * yet the program's calls still bind to our definition first (we are preloaded, global).
 * So when RTLD_NEXT finds nothing, walk every loaded object, get a handle for it without
 * loading anything (RTLD_NOLOAD) and ask it, skipping libmoecap.so itself. */
#include "shim_internal.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uintptr_t our_base;

int mc_addr_is_ours(const void *p)
{
    if (!our_base) {
        Dl_info di;
        if (dladdr((void *)&mc_addr_is_ours, &di) && di.dli_fbase) our_base = (uintptr_t)di.dli_fbase;
    }
    Dl_info di;
    if (!p || !dladdr(p, &di)) return 0;
    return (uintptr_t)di.dli_fbase == our_base;
}

struct names { char **v; int n, cap; uintptr_t skip_base; };

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct names *ns = arg;
    const char *name = info->dlpi_name;
    if (!name || !*name || strstr(name, "linux-vdso")) return 0;
    if (our_base && info->dlpi_addr == our_base) return 0;
    if (ns->skip_base && info->dlpi_addr == ns->skip_base) return 0;
    if (ns->n == ns->cap) {
        int cap = ns->cap ? ns->cap * 2 : 64;
        char **v = realloc(ns->v, (size_t)cap * sizeof *v);
        if (!v) return 1;
        ns->v = v;
        ns->cap = cap;
    }
    ns->v[ns->n] = strdup(name);
    if (ns->v[ns->n]) ns->n++;
    return 0;
}

/* Load base of the object holding `p` (0 = none or unknown). */
static uintptr_t object_base(const void *p)
{
    Dl_info di;
    return p && dladdr(p, &di) && di.dli_fbase ? (uintptr_t)di.dli_fbase : 0;
}

void *mc_resolve_next_except(const char *symbol, const void *caller)
{
    mc_addr_is_ours(NULL); /* sets our_base */
    /* An interposer outside libmoecap.so (a family built as its own library) defines the
     * symbol too: never resolve to it. */
    uintptr_t skip = object_base(caller);
    if (skip == our_base) skip = 0;
    void *p = dlsym(RTLD_NEXT, symbol);
    if (p && !mc_addr_is_ours(p) && (!skip || object_base(p) != skip)) return p;
    struct names ns = {0};
    ns.skip_base = skip;
    dl_iterate_phdr(collect, &ns);
    void *found = NULL;
    /* Prefer objects that look like a BLAS, then everything else. */
    for (int pass = 0; pass < 2 && !found; pass++) {
        for (int i = 0; i < ns.n && !found; i++) {
            int blasish = strstr(ns.v[i], "blas") != NULL;
            if (pass == 0 ? !blasish : blasish) continue;
            void *h = dlopen(ns.v[i], RTLD_NOLOAD | RTLD_LAZY);
            if (!h) continue;
            void *q = dlsym(h, symbol);
            if (q && !mc_addr_is_ours(q) && (!skip || object_base(q) != skip)) found = q;
            dlclose(h);
        }
    }
    for (int i = 0; i < ns.n; i++) free(ns.v[i]);
    free(ns.v);
    if (found) mc_log_debug("resolved %s in a locally loaded library", symbol);
    return found;
}

void *mc_resolve_next(const char *symbol) { return mc_resolve_next_except(symbol, NULL); }
