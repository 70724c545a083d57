/* Call sites: the return-address chain above an interposed call, taken with libunwind
 * (MOECAP_STACK frames, 0 = off) and interned once per distinct chain as a
 * MC_REC_CALLSITE definition. A small per-thread cache (direct mapped) answers repeated
 * chains without any lock; misses take a global mutex.
 *
 * Fast path (mc_callsite_capture_at): a call from the same return address with the
 * interposer's frame at the same stack address is probably the same chain again; to make
 * "probably" sure, the first unwind also notes the stack slot holding each return address
 * of the chain (SP of frame k - 8 on x86-64), and a hit is accepted only if every one of
 * those slots still holds the same return address — which is the chain itself. A loop
 * issuing the same call thus costs a few loads instead of an unwind.
 * The set is chosen by (return address, frame) and the return address one frame further
 * up, read from the slot the first unwind found for that (return address, frame): a GEMM
 * helper called from many places has one (return address, frame) for all of them, and
 * without its callers in the set index more than FAST_WAYS of them evicted each other on
 * every call (moe-ref's mr_gemm, called from 15 places, paid an unwind of ~20 us on about
 * a third of its calls). */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "shim_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define CACHE_SLOTS 64

struct cs_entry { uint64_t hash; uint32_t id, depth; uintptr_t pcs[MAX_DEPTH]; };
/* Fast path: (return address into the caller, interposer frame address) -> id, with the
 * stack slots that held the chain's return addresses and their values. Set associative:
 * one helper (a `gemm()` wrapper) called from several places at the same depth gives
 * several chains with the same key, which must not evict each other on every call. */
#define FAST_DEPTH 16          /* deeper MOECAP_STACK: always unwind */
#define FAST_SETS 32
#define FAST_WAYS 8
#define UP_SLOTS 64            /* (return address, frame) -> the slot of the next return address */
struct cs_slot { uintptr_t slot, val; }; /* side by side: one verification touches 2-3 lines */
struct cs_fast { const void *ret, *frame; uint32_t id, n; struct cs_slot s[FAST_DEPTH]; };
/* Where the return address above (ret, frame) lives: the caller of the function holding
 * ret has its return slot at a fixed distance from frame (that function's frame size at
 * ret), so it is learned once from an unwind and read on every lookup. */
struct cs_up { const void *ret, *frame; uintptr_t slot; };
struct cs_cache {
    struct cs_entry e[CACHE_SLOTS];
    struct cs_fast f[FAST_SETS][FAST_WAYS];
    uint8_t next_way[FAST_SETS];
    struct cs_up up[UP_SLOTS];
};

/* libunwind takes internal locks while unwinding: a fork while another thread is inside
 * would leave them locked in the child forever. The fork prepare handler raises
 * g_fork_pending and waits until no thread is unwinding; a thread that finds a fork
 * pending skips its call site (0) instead of blocking. seq_cst on both sides: either the
 * unwinding thread sees the flag or the forking thread sees the count. */
static _Atomic int g_unw_active, g_fork_pending;

static int unw_enter(void)
{
    atomic_fetch_add(&g_unw_active, 1);
    if (atomic_load(&g_fork_pending)) { atomic_fetch_sub(&g_unw_active, 1); return 0; }
    return 1;
}
static void unw_leave(void) { atomic_fetch_sub(&g_unw_active, 1); }

static __thread struct cs_cache *t_cache __attribute__((tls_model("initial-exec")));
static pthread_mutex_t g_cs_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct cs_entry *g_cs;       /* open addressing, under g_cs_mutex */
static uint32_t g_cs_cap, g_cs_n, g_cs_next = 1;

static uint64_t hash_pcs(void *const *pcs, int n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) h = (h ^ (uint64_t)(uintptr_t)pcs[i]) * 1099511628211ull;
    return h | 1;
}

static uint32_t intern_slow(uint64_t h, void *const *pcs, int n)
{
    pthread_mutex_lock(&g_cs_mutex);
    uint32_t id = 0;
    if (g_cs_n * 10 >= g_cs_cap * 7) {
        uint32_t ncap = g_cs_cap ? g_cs_cap * 2 : 256;
        struct cs_entry *ne = calloc(ncap, sizeof *ne);
        if (!ne) goto out;
        for (uint32_t i = 0; i < g_cs_cap; i++) {
            if (!g_cs[i].hash) continue;
            uint32_t j = (uint32_t)g_cs[i].hash & (ncap - 1);
            while (ne[j].hash) j = (j + 1) & (ncap - 1);
            ne[j] = g_cs[i];
        }
        free(g_cs);
        g_cs = ne;
        g_cs_cap = ncap;
    }
    uint32_t j = (uint32_t)h & (g_cs_cap - 1);
    while (g_cs[j].hash) {
        if (g_cs[j].hash == h && g_cs[j].depth == (uint32_t)n &&
            !memcmp(g_cs[j].pcs, pcs, (size_t)n * sizeof(void *))) { id = g_cs[j].id; goto out; }
        j = (j + 1) & (g_cs_cap - 1);
    }
    struct { struct mc_rec_callsite c; uint64_t pcs[MAX_DEPTH]; } rec;
    memset(&rec, 0, sizeof rec);
    rec.c.h.type = MC_REC_CALLSITE;
    rec.c.id = g_cs_next;
    rec.c.depth = (uint32_t)n;
    for (int i = 0; i < n; i++) rec.pcs[i] = (uint64_t)(uintptr_t)pcs[i];
    if (mc_def_record(&rec, (uint32_t)(sizeof rec.c + (size_t)n * 8)) < 0) goto out;
    id = g_cs_next++;
    g_cs[j].hash = h;
    g_cs[j].id = id;
    g_cs[j].depth = (uint32_t)n;
    memcpy(g_cs[j].pcs, pcs, (size_t)n * sizeof(void *));
    g_cs_n++;
out:
    pthread_mutex_unlock(&g_cs_mutex);
    return id;
}

__attribute__((noinline)) static uint32_t capture(int skip)
{
    int depth = mc_cfg.stack_depth;
    if (depth <= 0) return 0;
    if (depth > MAX_DEPTH) depth = MAX_DEPTH;
    void *raw[MAX_DEPTH + 3];
    /* Skip this helper's own frames and the interposer's; keep what called the interposer. */
    if (!unw_enter()) return 0;
    int n = unw_backtrace(raw, depth + skip);
    unw_leave();
    if (n <= skip) return 0;
    void **pcs = raw + skip;
    n -= skip;
    uint64_t h = hash_pcs(pcs, n);
    struct cs_cache *c = t_cache;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return intern_slow(h, pcs, n);
        t_cache = c;
    }
    struct cs_entry *e = &c->e[h % CACHE_SLOTS];
    if (e->hash == h && e->depth == (uint32_t)n && !memcmp(e->pcs, pcs, (size_t)n * sizeof(void *)))
        return e->id;
    uint32_t id = intern_slow(h, pcs, n);
    if (id) {
        e->hash = h;
        e->id = id;
        e->depth = (uint32_t)n;
        memcpy(e->pcs, pcs, (size_t)n * sizeof(void *));
    }
    return id;
}

/* Frame 0 is capture(), 1 this function, 2 the interposer. */
__attribute__((noinline)) uint32_t mc_callsite_capture(void)
{
    uint32_t id = capture(3);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return id;
}

#if defined(__x86_64__)
/* Walks the stack with a cursor (slower than unw_backtrace, only on a fast-path miss),
 * recording return addresses and the slots they were read from. Frames: 0 this function,
 * 1 capture_at_miss, 2 mc_callsite_capture_at, 3 the interposer, then the program's. */
__attribute__((noinline)) static int walk_slots(void **pcs, uintptr_t *slots, int depth)
{
    unw_context_t uc;
    unw_cursor_t cur;
    if (unw_getcontext(&uc) < 0 || unw_init_local(&cur, &uc) < 0) return 0;
    int frame = 0, n = 0;
    while (n < depth && unw_step(&cur) > 0) {
        frame++;
        if (frame < 4) continue;
        unw_word_t ip = 0, sp = 0;
        if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || unw_get_reg(&cur, UNW_REG_SP, &sp) < 0 || !ip) break;
        pcs[n] = (void *)ip;
        slots[n] = (uintptr_t)sp - 8; /* where the call pushed this return address */
        n++;
    }
    return n;
}

/* Reads return-address slots of live frames above us (never poisoned by ASan, but the
 * loads are not our variables: keep the instrumentation out). */
__attribute__((no_sanitize_address)) static inline int slots_match(const struct cs_fast *f)
{
    /* slot 0 is the interposer's own return slot: equal whenever ret and frame are */
    for (uint32_t i = 1; i < f->n; i++)
        if (*(volatile const uintptr_t *)f->s[i].slot != f->s[i].val) return 0;
    return 1;
}

static inline uintptr_t key_mix(const void *ret, const void *frame)
{
    return ((uintptr_t)ret * 0x9e3779b97f4a7c15ull) ^ ((uintptr_t)frame * 0xc2b2ae3d27d4eb4full);
}
static inline unsigned up_index(const void *ret, const void *frame)
{
    return (unsigned)(key_mix(ret, frame) >> 40) % UP_SLOTS;
}
/* The return address above (ret, frame) as the stack holds it now, 0 when not learned yet
 * (a live frame's slot, like those slots_match reads). */
__attribute__((no_sanitize_address)) static inline uintptr_t up_value(const struct cs_cache *c, const void *ret,
                                                                      const void *frame)
{
    const struct cs_up *u = &c->up[up_index(ret, frame)];
    if (u->ret != ret || u->frame != frame || !u->slot) return 0;
    return *(volatile const uintptr_t *)u->slot;
}
static inline unsigned fast_set(const void *ret, const void *frame, uintptr_t up)
{
    uintptr_t k = key_mix(ret, frame) ^ (up * 0xff51afd7ed558ccdull);
    return (unsigned)(k >> 40) % FAST_SETS;
}

/* Fast-path miss: unwind with slot addresses, intern, remember in the set. Kept out of
 * mc_callsite_capture_at so that the hit path is a small leaf function (no big frame, no
 * saved registers). */
__attribute__((noinline)) static uint32_t capture_at_miss(const void *ret, const void *frame)
{
    void *pcs[FAST_DEPTH];
    uintptr_t slots[FAST_DEPTH];
    if (!unw_enter()) return 0;
    int n = walk_slots(pcs, slots, mc_cfg.stack_depth);
    unw_leave();
    __asm__ volatile("" ::: "memory");
    if (n <= 0 || pcs[0] != ret) return capture(4); /* unexpected frame layout: plain path */
    uint64_t h = hash_pcs(pcs, n);
    uint32_t id = intern_slow(h, pcs, n);
    struct cs_cache *c = t_cache;
    if (!c) c = t_cache = calloc(1, sizeof *c);
    if (c && id) {
        struct cs_up *u = &c->up[up_index(ret, frame)];
        u->ret = ret;
        u->frame = frame;
        u->slot = n > 1 ? slots[1] : 0;
        unsigned set = fast_set(ret, frame, n > 1 ? (uintptr_t)pcs[1] : 0);
        struct cs_fast *f = &c->f[set][c->next_way[set]];
        c->next_way[set] = (uint8_t)((c->next_way[set] + 1) % FAST_WAYS);
        f->id = 0;
        f->ret = ret;
        f->frame = frame;
        f->n = (uint32_t)n;
        for (int i = 0; i < n; i++) { f->s[i].slot = slots[i]; f->s[i].val = (uintptr_t)pcs[i]; }
        f->id = id;
    }
    return id;
}
#endif

__attribute__((noinline)) uint32_t mc_callsite_capture_at(const void *ret, const void *frame)
{
    if (mc_cfg.stack_depth <= 0) return 0;
    uint32_t id;
#if defined(__x86_64__)
    if (__builtin_expect(!mc_cfg.stack_exact && mc_cfg.stack_depth <= FAST_DEPTH, 1)) {
        const struct cs_cache *c = t_cache;
        if (__builtin_expect(c != NULL, 1)) {
            const struct cs_fast *f = c->f[fast_set(ret, frame, up_value(c, ret, frame))];
            for (int w = 0; w < FAST_WAYS; w++, f++)
                if (f->ret == ret && f->frame == frame && f->id && slots_match(f)) return f->id;
        }
        id = capture_at_miss(ret, frame);
        __asm__ volatile("" ::: "memory"); /* no tail call: frame counts above rely on it */
        return id;
    }
#else
    (void)ret; (void)frame;
#endif
    id = capture(3);
    __asm__ volatile("" ::: "memory");
    return id;
}

extern __typeof(mc_callsite_capture_at) mc_callsite_capture_at_h
    __attribute__((alias("mc_callsite_capture_at"), visibility("hidden")));

void mc_callsite_thread_exit(void)
{
    free(t_cache);
    t_cache = NULL;
}

/* Held across fork (taken in the prepare handler) so the child never sees the table half
 * updated by another thread. */
void mc_callsite_fork_lock(void)
{
    atomic_store(&g_fork_pending, 1);
    while (atomic_load(&g_unw_active)) sched_yield();
    pthread_mutex_lock(&g_cs_mutex);
}
void mc_callsite_fork_unlock(void)
{
    pthread_mutex_unlock(&g_cs_mutex);
    atomic_store(&g_fork_pending, 0);
}

void mc_callsite_after_fork(void)
{
    atomic_store(&g_unw_active, 0); /* only this thread exists in the child */
    mc_callsite_fork_unlock();
}

/* libunwind sets up its caches (it walks every loaded object's unwind tables) on its
 * first backtrace: ~0.25 ms measured. Done ahead of time (by the writer thread as it
 * starts), it stays out of the program's first intercepted call, where it showed up as
 * time before the first GEMM of moe-ref's first step that no trace record covers. */
void mc_callsite_warm_up(void)
{
    if (mc_cfg.stack_depth <= 0) return;
    void *pcs[4];
    if (!unw_enter()) return;
    (void)unw_backtrace(pcs, 4);
    unw_context_t uc; /* the cursor walk of a fast-path miss has caches of its own */
    unw_cursor_t cur;
    if (unw_getcontext(&uc) == 0 && unw_init_local(&cur, &uc) == 0)
        for (int i = 0; i < 64 && unw_step(&cur) > 0; i++) {}
    unw_leave();
}
