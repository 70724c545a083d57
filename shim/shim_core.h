/* Internal API of libmoecap.so's core, used by every interposer module (shim/interpose_*.c),
 * cupti/ and cpuprof/. The core owns configuration, per-thread buffers, string interning
 * and the trace writer; modules only reserve, fill and commit records.
 *
 * Hot-path rules: mc_rec_reserve/commit never allocate and never lock; they return NULL
 * when capture is off (MOECAP_DISABLE, an earlier failure, or re-entry from inside the
 * shim) and the caller then just calls the real function. */
#ifndef MOECAP_SHIM_CORE_H
#define MOECAP_SHIM_CORE_H

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

/* This thread's kernel thread id (cached; correct after fork). */
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

/* Turn capture off for the whole process, printing `why` once on stderr. */
void mc_disable(const char *why);

/* Logging to stderr per MOECAP_LOG (quiet / info / debug). */
void mc_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Record a note that ends up in the trace (and the report), e.g. "CUPTI: another
 * subscriber is active, kernel records disabled". */
void mc_note(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Modules register start/stop hooks run by the core's constructor / destructor /
 * fork handlers (e.g. cpuprof starts PAPI, cupti flushes activity buffers). */
struct mc_module {
    const char *name;
    void (*start)(void);       /* after the core is up */
    void (*flush)(void);       /* before the core flushes at exit and before fork (not from
                                  signal handlers: they need not be async-signal-safe) */
    void (*after_fork_child)(void);
};
void mc_register_module(const struct mc_module *m);
/* Hooks run in registration order; modules registered after the core is up get start()
 * called at once. `m` must stay valid for the life of the process (static). At most 16. */

#endif
