/* Internal API of libmoecap.so's core, used by every interposer module (shim/interpose_*.c),
 * cupti/ and cpuprof/. The core owns configuration, per-thread buffers, string interning
 * and the trace writer; modules only reserve, fill and commit records.
 *
 * Hot-path rules: mc_rec_reserve/commit never allocate and never lock; they return NULL
 * when capture is off (MOECAP_DISABLE, an earlier failure, or re-entry from inside the
 * shim) and the caller then just calls the real function. */
#ifndef MOECAP_SHIM_CORE_H
#define MOECAP_SHIM_CORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "moecap/trace_format.h"

/* Is capture on for this process right now? */
int mc_capture_enabled(void);

/* Monotonic clock in ns (CLOCK_MONOTONIC). */
uint64_t mc_now_ns(void);

/* Reserve `size` bytes (header included, rounded up to 8) of record `type` in this
 * thread's buffer; header filled in, payload zeroed. NULL = drop (counted by the core). */
void *mc_rec_reserve(uint16_t type, uint32_t size);
/* Publish a record obtained from mc_rec_reserve. */
void mc_rec_commit(void *rec);
/* Give back a reserved record without publishing it (e.g. the real call failed and the
 * module decided not to record it). */
void mc_rec_cancel(void *rec);
/* While a record is reserved and not yet committed, the thread counts as "inside the
 * shim": further mc_rec_reserve calls on that thread return NULL, which is the
 * re-entrancy guard for BLAS calling BLAS. Fill, call the real function, then commit. */

/* Append a definition record (header + payload, `size` bytes, padded here): it reaches the
 * trace before every record committed after this call returns, and it is written again at
 * the start of a fork child's trace. For facts that later records refer to (strings,
 * tensors, mappings, call sites, module info). Takes a lock: not for the hot path, not from
 * signal handlers. Returns 0 or -1 (capture off / too large, max 64 KiB). */
int mc_def_record(const void *rec, uint32_t size);

/* This thread's kernel thread id, cached per thread (the cache is reset in a fork child),
 * the one thread-id helper of the shim (inside libmoecap.so, ring.h inlines it). */
int32_t mc_tid(void);

/* Intern a string (once per distinct text); returns its id, 0 on failure. Takes a lock:
 * call outside the hot path or cache the id. */
uint32_t mc_intern(const char *text);

/* Capture the caller's return-address chain, starting at the return address into the code
 * that called the interposed function (call it directly from the interposer, which must be
 * a real, non-inlined function) (MOECAP_STACK frames, 0 = off) and return
 * its interned id (0 = none). */
uint32_t mc_callsite_capture(void);
/* Faster variant for interposers, called as
 *     mc_callsite_capture_at(__builtin_return_address(0), __builtin_frame_address(0))
 * from the interposer itself: a call from the same return address and stack position as
 * an earlier call on this thread reuses that call's id once every return address of the
 * cached chain is verified to be still in its stack slot (no unwind); same result as
 * mc_callsite_capture. MOECAP_STACK_EXACT=1 always unwinds. */
uint32_t mc_callsite_capture_at(const void *ret_addr, const void *frame);

/* The next definition of `symbol` after libmoecap.so, also when the defining library was
 * dlopen'ed later with RTLD_LOCAL. NULL when none is loaded yet. */
void *mc_resolve_next(const char *symbol);
/* The same, also skipping the object that holds `caller` (an interposer family built as
 * a library of its own defines the symbol as well). */
void *mc_resolve_next_except(const char *symbol, const void *caller);

/* Turn capture off for the whole process, printing `why` once on stderr. */
void mc_disable(const char *why);

/* Logging to stderr per MOECAP_LOG (quiet / info / debug). */
void mc_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Record a note that ends up in the trace (and the report), e.g. "CUPTI: another
 * subscriber is active, kernel records disabled". */
void mc_note(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Interposer families (BLAS, weight files, exec, CUDA, the cpuprof sampler, the CUPTI
 * collector, ...) join the core through one descriptor each; the core never names a
 * family. Copy shim/interpose_null.c to write a new one.
 *
 * Every hook may be NULL. Hooks run in registration order, except fork_parent and
 * fork_child, which run in reverse (locks are released in the reverse order of taking).
 *   init          once the core is up and capturing (at once for a family registered
 *                 later, e.g. one in a library loaded with dlopen)
 *   flush         at every flush point (exit, before fork, before exec): write what the
 *                 family holds (samples, activity buffers). Not from signal handlers.
 *   fork_prepare  take the family's own locks, so the child never inherits one held by a
 *                 thread that does not exist there
 *   fork_parent   release them in the parent
 *   fork_child    release or re-initialise them in the child (only the forking thread
 *                 exists there); restart the family's threads
 *   exit          process exit, after every family's flush and before the core's last
 *                 write: stop the family's threads
 *
 * Lock order, outer to inner (the one rule every lock of the shim follows):
 *   call-site unwinders -> /proc/self/maps -> signal table -> each family's locks, in
 *   registration order -> definitions -> trace file.
 * A family may call any core function while it holds its own locks; the core never calls a
 * family hook while holding one of its locks, and the core's own mmap/open calls under its
 * locks bypass the interposers (raw system calls). A family lock that interposed calls can
 * take from anywhere (e.g. the weight-file range table, taken by every mmap) is a leaf:
 * nothing else is locked under it, and the family takes it last in fork_prepare. */
struct mc_family {
    const char *name;
    void (*init)(void);
    void (*flush)(void);
    void (*fork_prepare)(void);
    void (*fork_parent)(void);
    void (*fork_child)(void);
    void (*exit)(void);
};
/* `f` must stay valid for the life of the process (static). At most 16 families; call it
 * from a constructor (any priority: registration before the core is up is fine). */
void mc_family_register(const struct mc_family *f);

/* Has this process recorded anything yet (a record in a thread buffer, or the trace file
 * exists)? Samplers use it to stay silent in processes that record nothing else, so
 * those leave no trace file. */
int mc_trace_started(void);

/* The real definition of an interposed function, resolved once. Every interposer keeps
 * one `static struct mc_real` per function (MC_REAL_INIT("name")) and calls mc_real()
 * on each call: one atomic load once resolved. Resolution is mc_resolve_next (also finds
 * definitions in libraries dlopen'ed with RTLD_LOCAL); while a symbol is not found, only
 * every 1024th call searches again (a function absent from this process costs nothing
 * per call); the object holding `r` is skipped. NULL when not found: the interposer then fails the call the way the
 * function documents (errno = ENOSYS, an error code) or, when it cannot, calls
 * mc_real_missing(). */
struct mc_real {
    _Atomic(void *) fn;
    atomic_uint misses;
    const char *name;
};
#define MC_REAL_INIT(symbol) { NULL, 0, symbol }
void *mc_real_find(struct mc_real *r);
static inline __attribute__((always_inline)) void *mc_real(struct mc_real *r)
{
    void *p = atomic_load_explicit(&r->fn, memory_order_acquire);
    return __builtin_expect(p != NULL, 1) ? p : mc_real_find(r);
}
/* No definition to forward to although the program called it: print why and abort
 * (continuing would crash anyway). */
__attribute__((noreturn, cold)) void mc_real_missing(const char *symbol);

#endif
