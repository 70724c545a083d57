/* PAPI hardware counters per thread of the profiled process. One event set per thread,
 * attached to the thread by tid (PAPI_attach, perf_event component), so a single sampler
 * thread can start and read them all without running code on the program's threads.
 * All functions must be called under the caller's lock (PAPI is used from one thread at
 * a time). */
#ifndef MOECAP_CPUPROF_PAPI_H
#define MOECAP_CPUPROF_PAPI_H
#include <stddef.h>
#include <stdint.h>

#define MC_PAPI_MAX_EVENTS 8
#define MC_PAPI_MAX_THREADS 128

/* Asks the kernel whether hardware events can be counted (perf_event_open); only then
 * loads libpapi (dlopen), initialises it and probes `events` (comma-separated PAPI preset
 * or native names) on thread `probe_tid`. Returns the number of usable events (> 0, that
 * thread then counts), or 0 with a reason in `why`. Call it while no other thread can be
 * loading libraries or allocating (cpuprof calls it from the shim's constructor). */
int mc_papi_init(const char *events, int32_t probe_tid, char *why, size_t whylen);
/* 1 when libpapi has been loaded into the process. */
int mc_papi_loaded(void);
int mc_papi_nevents(void);
const char *mc_papi_event(int i);

/* Starts counting on `tid` (no-op when tracked). 0 ok, -1 (table full or PAPI refused). */
int mc_papi_track(int32_t tid);
int mc_papi_tracked(int32_t tid);
/* Reads every tracked thread: calls emit(tid, values) for each readable one. Threads
 * whose event set cannot be read any more (thread exited) are released. */
void mc_papi_read_all(void (*emit)(int32_t tid, const long long *values, int n));
/* Marks every tracked thread that is not in `alive` (n tids) as gone: read once more,
 * then released. */
void mc_papi_retire_missing(const int32_t *alive, int n, void (*emit)(int32_t, const long long *, int));
/* Forget all state without calling PAPI (fork child: the event sets belong to the parent). */
void mc_papi_forget(void);

#endif
