/* PAPI event sets attached to the profiled process's threads (see cpuprof_papi.h).
 *
 * libpapi (and libpfm behind it) is not linked into libmoecap.so: loading them costs
 * ~3 ms in every process that inherits LD_PRELOAD, shells and `ls` included. It is
 * dlopen'ed only after the kernel has said that this process can count hardware events
 * (perf_event_open probe), and then called through the table P. <papi.h> is needed at
 * build time only, for the types, constants and (through __typeof__) the exact prototypes
 * of the functions in P. */
#include "cpuprof_papi.h"
#include <papi.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MC_PAPI_SONAME
#define MC_PAPI_SONAME "libpapi.so"
#endif

#define MC_PAPI_FUNCS(X)                                                                  \
    X(library_init) X(get_component_index) X(get_component_info) X(query_named_event)     \
    X(create_eventset) X(assign_eventset_component) X(attach) X(add_named_event) X(start) \
    X(stop) X(read) X(cleanup_eventset) X(destroy_eventset) X(strerror)
static struct {
#define MC_PAPI_FIELD(f) __typeof__(PAPI_##f) *f;
    MC_PAPI_FUNCS(MC_PAPI_FIELD)
#undef MC_PAPI_FIELD
} P;
static void *g_lib;                      /* dlopen handle; kept for the process's life */

static int g_ok;                         /* PAPI initialised and events usable */
static int g_cidx;                       /* perf_event component index */
static int g_nev;
static char g_ev[MC_PAPI_MAX_EVENTS][64];
static struct { int32_t tid; int es; } g_thr[MC_PAPI_MAX_THREADS];
static int g_nthr;

/* Loads libpapi and fills P (once). 0 ok, -1 with the reason in why. */
static int load_papi(char *why, size_t whylen)
{
    if (g_lib) return 0;
    const char *names[] = {MC_PAPI_SONAME, "libpapi.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, whylen, "cannot load %s (%s)", MC_PAPI_SONAME, e ? e : "?");
        return -1;
    }
    /* dlsym returns void *; ISO C has no conversion to a function pointer, POSIX does
     * (the object and function representations are the same): copy the bytes. */
#define MC_PAPI_SYM(f)                                                            \
    {                                                                             \
        void *a = dlsym(h, "PAPI_" #f);                                           \
        if (!a) {                                                                 \
            snprintf(why, whylen, "%s lacks PAPI_" #f, MC_PAPI_SONAME);           \
            dlclose(h);                                                           \
            memset(&P, 0, sizeof P);                                              \
            return -1;                                                            \
        }                                                                         \
        memcpy(&P.f, &a, sizeof P.f);                                             \
    }
    MC_PAPI_FUNCS(MC_PAPI_SYM)
#undef MC_PAPI_SYM
    g_lib = h;
    return 0;
}

int mc_papi_loaded(void) { return g_lib != NULL; }

int mc_papi_nevents(void) { return g_ok ? g_nev : 0; }
const char *mc_papi_event(int i) { return i >= 0 && i < g_nev ? g_ev[i] : ""; }

static void release(int es)
{
    long long v[MC_PAPI_MAX_EVENTS];
    P.stop(es, v);
    P.cleanup_eventset(es);
    P.destroy_eventset(&es);
}

/* Builds and starts an event set on tid with the names in g_ev; with probe != 0, keeps
 * only the names PAPI accepts (rewriting g_ev). Returns the event set or PAPI_NULL. */
static int make_set(int32_t tid, int probe, char *why, size_t whylen)
{
    int es = PAPI_NULL, rc;
    if ((rc = P.create_eventset(&es)) != PAPI_OK) {
        if (why) snprintf(why, whylen, "PAPI_create_eventset: %s", P.strerror(rc));
        return PAPI_NULL;
    }
    if ((rc = P.assign_eventset_component(es, g_cidx)) != PAPI_OK ||
        (rc = P.attach(es, (unsigned long)tid)) != PAPI_OK) {
        if (why) snprintf(why, whylen, "cannot attach an event set to a thread: %s", P.strerror(rc));
        P.destroy_eventset(&es);
        return PAPI_NULL;
    }
    int kept = 0, first_err = PAPI_OK;
    for (int i = 0; i < g_nev; i++) {
        rc = P.add_named_event(es, g_ev[i]);
        if (rc == PAPI_OK) {
            if (kept != i) memcpy(g_ev[kept], g_ev[i], sizeof g_ev[i]);
            kept++;
        } else if (!probe) {
            release(es);
            return PAPI_NULL;
        } else if (first_err == PAPI_OK) {
            first_err = rc;
        }
    }
    if (probe) g_nev = kept;
    if (!kept) {
        if (why) snprintf(why, whylen, "none of the requested events can be counted here (%s; no hardware counters, e.g. a VM)",
                          P.strerror(first_err));
        P.cleanup_eventset(es);
        P.destroy_eventset(&es);
        return PAPI_NULL;
    }
    if ((rc = P.start(es)) != PAPI_OK) {
        if (why) snprintf(why, whylen, "PAPI_start: %s (perf_event_paranoid too strict?)", P.strerror(rc));
        P.cleanup_eventset(es);
        P.destroy_eventset(&es);
        return PAPI_NULL;
    }
    return es;
}

/* Can this process count hardware events at all? Asked of the kernel directly, before
 * PAPI is touched: in VMs without a PMU PAPI still reports its presets as existing (they
 * fail only when attached or started), and the answer decides whether libpapi is loaded
 * at all. One failing syscall: a VM pays nothing else. */
static int hw_counters_usable(char *why, size_t whylen)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_HARDWARE;
    a.config = PERF_COUNT_HW_INSTRUCTIONS;
    a.disabled = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(why, whylen, "perf_event_open(instructions): %s%s", strerror(e),
                 e == ENOENT || e == EOPNOTSUPP || e == ENODEV ? ": no hardware counters, e.g. a VM"
                 : e == EACCES || e == EPERM ? ": not permitted (kernel.perf_event_paranoid)" : "");
        return 0;
    }
    close((int)fd);
    return 1;
}

int mc_papi_init(const char *events, int32_t probe_tid, char *why, size_t whylen)
{
    g_ok = 0;
    g_nev = 0;
    g_nthr = 0;
    if (!hw_counters_usable(why, whylen)) return 0;
    if (load_papi(why, whylen) < 0) return 0;
    int rc = P.library_init(PAPI_VER_CURRENT);
    if (rc != PAPI_VER_CURRENT) {
        snprintf(why, whylen, "PAPI_library_init failed (%s)", rc > 0 ? "version mismatch" : P.strerror(rc));
        return 0;
    }
    g_cidx = P.get_component_index("perf_event");
    if (g_cidx < 0) { snprintf(why, whylen, "PAPI has no perf_event component"); return 0; }
    const PAPI_component_info_t *ci = P.get_component_info(g_cidx);
    if (ci && ci->disabled) {
        snprintf(why, whylen, "PAPI perf_event component disabled: %s", ci->disabled_reason);
        return 0;
    }
    /* Split the comma-separated list. */
    const char *p = events;
    while (*p && g_nev < MC_PAPI_MAX_EVENTS) {
        size_t l = strcspn(p, ",");
        if (l && l < sizeof g_ev[0]) {
            memcpy(g_ev[g_nev], p, l);
            g_ev[g_nev][l] = 0;
            g_nev++;
        }
        p += l + (p[l] == ',');
    }
    if (!g_nev) { snprintf(why, whylen, "no PAPI events requested"); return 0; }
    /* Keep the events that exist on this machine; none at all is the usual VM case. */
    int exist = 0;
    for (int i = 0; i < g_nev; i++)
        if (P.query_named_event(g_ev[i]) == PAPI_OK) {
            if (exist != i) memcpy(g_ev[exist], g_ev[i], sizeof g_ev[i]);
            exist++;
        }
    if (!exist) {
        snprintf(why, whylen, "none of the requested events exists here: no hardware counters, e.g. a VM");
        g_nev = 0;
        return 0;
    }
    g_nev = exist;
    int es = make_set(probe_tid, 1, why, whylen);
    if (es == PAPI_NULL) { g_nev = 0; return 0; }
    g_thr[0].tid = probe_tid;
    g_thr[0].es = es;
    g_nthr = 1;
    g_ok = 1;
    return g_nev;
}

int mc_papi_tracked(int32_t tid)
{
    for (int i = 0; i < g_nthr; i++)
        if (g_thr[i].tid == tid) return 1;
    return 0;
}

int mc_papi_track(int32_t tid)
{
    if (!g_ok) return -1;
    if (mc_papi_tracked(tid)) return 0;
    if (g_nthr >= MC_PAPI_MAX_THREADS) return -1;
    int es = make_set(tid, 0, NULL, 0);
    if (es == PAPI_NULL) return -1;
    g_thr[g_nthr].tid = tid;
    g_thr[g_nthr].es = es;
    g_nthr++;
    return 0;
}

static void drop(int i)
{
    release(g_thr[i].es);
    g_thr[i] = g_thr[--g_nthr];
}

void mc_papi_read_all(void (*emit)(int32_t, const long long *, int))
{
    if (!g_ok) return;
    for (int i = 0; i < g_nthr;) {
        long long v[MC_PAPI_MAX_EVENTS];
        if (P.read(g_thr[i].es, v) == PAPI_OK) {
            emit(g_thr[i].tid, v, g_nev);
            i++;
        } else {
            drop(i);
        }
    }
}

void mc_papi_retire_missing(const int32_t *alive, int n, void (*emit)(int32_t, const long long *, int))
{
    if (!g_ok) return;
    for (int i = 0; i < g_nthr;) {
        int found = 0;
        for (int j = 0; j < n && !found; j++) found = alive[j] == g_thr[i].tid;
        if (found) { i++; continue; }
        long long v[MC_PAPI_MAX_EVENTS];
        if (P.read(g_thr[i].es, v) == PAPI_OK) emit(g_thr[i].tid, v, g_nev);
        drop(i);
    }
}

void mc_papi_forget(void)
{
    g_ok = 0;
    g_nthr = 0;
}
