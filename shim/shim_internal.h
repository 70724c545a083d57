/* Internals shared by the files of libmoecap.so's core (not for modules: they use
 * shim_core.h). */
#ifndef MOECAP_SHIM_INTERNAL_H
#define MOECAP_SHIM_INTERNAL_H

#include <signal.h>
#include <stdint.h>
#include "shim_core.h"

#define MC_HIDDEN __attribute__((visibility("hidden")))

/* Configuration, read once by the constructor. */
struct mc_config {
    int disabled;          /* MOECAP_DISABLE */
    int log_level;         /* 0 quiet, 1 info, 2 debug */
    int stack_depth;       /* MOECAP_STACK */
    int stack_exact;       /* MOECAP_STACK_EXACT: no (return address, frame) cache */
    uint32_t buf_bytes;    /* MOECAP_BUF_KB * 1024: ring bytes per thread, power of two */
    unsigned flush_ms;     /* MOECAP_FLUSH_MS, 0 = no writer thread */
    char out_dir[4096];
};
extern struct mc_config mc_cfg MC_HIDDEN;

/* Fast timestamps for the CPU hot path: raw TSC where the kernel itself keeps time with
 * an invariant TSC, else CLOCK_MONOTONIC ns. Records stamped with ticks carry
 * MC_RECF_TICKS in h.flags: the reader converts their times with the file's MC_REC_CLOCK
 * (only MC_REC_GEMM_CPU uses this). */
extern int mc_tsc_ok MC_HIDDEN;
#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t mc_ticks(void) { return mc_tsc_ok ? __rdtsc() : mc_now_ns(); }
#else
static inline uint64_t mc_ticks(void) { return mc_now_ns(); }
#endif
static inline uint16_t mc_ticks_flag(void) { return mc_tsc_ok ? MC_RECF_TICKS : 0; }

/* Direct-call (hidden) aliases of shim_core.h functions for this library's own hot paths. */
void *mc_rec_reserve_h(uint16_t type, uint32_t size) MC_HIDDEN;
int32_t mc_tid_h(void) MC_HIDDEN;
uint32_t mc_callsite_capture_at_h(const void *ret_addr, const void *frame) MC_HIDDEN;

/* Flush every thread buffer to the trace from a signal handler (async-signal-safe; gives
 * up rather than deadlock). */
void mc_core_flush_from_signal(void) MC_HIDDEN;
/* Flush before exec (a no-op in a vfork child, which shares the parent's memory). */
void mc_core_flush_before_exec(void) MC_HIDDEN;

/* trace_file.c: the trace file (a record stream appended with write, plus the threads'
 * record rings, kept in the file and mapped shared). */
int mc_core_trace_fd(void) MC_HIDDEN;   /* its descriptor (-1 = none): close() of it is ignored */
int mc_tf_is_open(void) MC_HIDDEN;
int mc_tf_lock(int from_signal) MC_HIDDEN;   /* 0 = held; -1 = this thread holds it / gave up */
void mc_tf_unlock(void) MC_HIDDEN;
void mc_tf_clock_init(void) MC_HIDDEN;   /* start-up: TSC usable? anchor pair */
/* The rest: caller holds the file lock. -1 / NULL: capture is off (one stderr line said why). */
int mc_tf_create(const char *out_dir, const char *host, const void *process, uint32_t process_bytes) MC_HIDDEN;
int mc_tf_append(const void *rec, uint32_t size) MC_HIDDEN;   /* a whole record (size set) */
struct mc_rec_ring *mc_tf_ring_new(uint32_t bytes) MC_HIDDEN;
int mc_tf_ring_copy(struct mc_rec_ring *r) MC_HIDDEN;
void mc_tf_ring_refault(struct mc_rec_ring *r) MC_HIDDEN;
void mc_tf_clock_update(void) MC_HIDDEN;
void mc_tf_forget_after_fork(void) MC_HIDDEN;

/* signals.c */
void mc_signals_install(void) MC_HIDDEN;
int mc_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old) MC_HIDDEN;

/* maps.c: append MC_REC_MAPPING definitions for executable mappings not yet recorded;
 * cheap when no library was loaded since the last call. force = rescan anyway. */
void mc_maps_refresh(int force) MC_HIDDEN;
void mc_maps_after_fork(void) MC_HIDDEN;   /* child: releases the fork lock */
void mc_maps_fork_lock(void) MC_HIDDEN;
void mc_maps_fork_unlock(void) MC_HIDDEN;

/* The signal table's lock, held across fork (prepare: lock; parent and child: unlock). */
void mc_signals_fork_lock(void) MC_HIDDEN;
void mc_signals_fork_unlock(void) MC_HIDDEN;
/* filemap.h: weight-file host ranges (the file family's leaf lock). */
#include "filemap.h"

/* mmap/munmap for the core's own memory: raw system calls, so the core never enters the
 * file family's mmap interposer (and its lock) while it holds a lock of its own. */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
static inline void *mc_sys_mmap(size_t len, int prot, int flags, int fd, off_t off)
{
    return (void *)syscall(SYS_mmap, NULL, len, prot, flags, fd, off);
}

/* callsite.c */
void mc_callsite_after_fork(void) MC_HIDDEN; /* child: releases the fork lock */
void mc_callsite_fork_lock(void) MC_HIDDEN;
void mc_callsite_fork_unlock(void) MC_HIDDEN;
void mc_callsite_thread_exit(void) MC_HIDDEN; /* frees this thread's call-site cache */
void mc_callsite_warm_up(void) MC_HIDDEN;     /* start-up: libunwind caches, off the hot path */

/* Address range of libmoecap.so itself (resolve.c). */
int mc_addr_is_ours(const void *p) MC_HIDDEN;

#endif
