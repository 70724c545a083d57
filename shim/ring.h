/* Per-thread record buffers of libmoecap.so's core (shim_core.c), exposed inside the
 * library so that the hottest interposer (CPU BLAS: millions of calls per second in small
 * models) can reserve and commit its fixed-size record inline: no call, no memset, no size
 * arithmetic. Everything unusual (first record of a thread, segment full, re-entry,
 * capture off) goes to the core's general mc_rec_reserve. Not for modules: they use
 * shim_core.h.
 *
 * A thread's buffer is a segment of the trace file itself, mapped shared (trace_file.c):
 * a record is written in place and committed by storing its size last, so it is in the
 * file the moment it is committed, and a process killed before the commit leaves a
 * header of size 0 there, which readers skip. */
#ifndef MOECAP_SHIM_RING_H
#define MOECAP_SHIM_RING_H

#include <stdatomic.h>
#include <stdint.h>
#include "shim_internal.h"

struct mc_tbuf {
    struct mc_tbuf *next;          /* lock-free push-only list */
    _Atomic int in_use;            /* owned by a live thread */
    int reserved;                  /* producer: a record is reserved (re-entrancy guard) */
    unsigned char *pos;            /* producer: next free byte of the current segment */
    unsigned char *end;            /* producer: end of the current segment (NULL: none) */
    unsigned char *res;            /* producer: the reserved record */
    uint32_t res_size;
};

struct mc_tls {
    struct mc_tbuf *buf;
    int32_t tid;
    int dead;                      /* thread is exiting: no new buffer */
};
/* initial-exec: one %fs-relative load, no __tls_get_addr (libmoecap.so is preloaded, so
 * its TLS is in the static block). */
extern __thread struct mc_tls mc_tls_cur __attribute__((tls_model("initial-exec"))) MC_HIDDEN;
extern _Atomic int mc_enabled_flag MC_HIDDEN;

/* Reserves `size` bytes (a multiple of 8, a compile-time constant in practice) in this
 * thread's segment with header type set and flags 0; the rest is NOT zeroed: the caller
 * writes every byte of the record except h.size. NULL = do not record (see
 * mc_rec_reserve). */
static inline __attribute__((always_inline)) void *mc_ring_reserve_fixed(uint16_t type, uint32_t size)
{
    struct mc_tbuf *b = mc_tls_cur.buf;
    if (__builtin_expect(b != NULL && !b->reserved &&
                         atomic_load_explicit(&mc_enabled_flag, memory_order_relaxed), 1)) {
        /* Claimed before pos is read (a signal handler recording in between finds the
         * buffer reserved instead of taking the same bytes). */
        b->reserved = 1;
        atomic_signal_fence(memory_order_seq_cst);
        unsigned char *p = b->pos;
        if (__builtin_expect((size_t)(b->end - p) >= size, 1)) {
            struct mc_rec_header *h = (struct mc_rec_header *)p;
            h->type = type;
            h->flags = 0;
            b->res = p;
            b->res_size = size;
            return h;
        }
        atomic_signal_fence(memory_order_seq_cst);
        b->reserved = 0;
    }
    return mc_rec_reserve_h(type, size);
}

/* Commits this thread's reserved record (mc_rec_commit is this, for a non-NULL record):
 * its size, stored after every other byte of it, makes it a record of the file. */
static inline __attribute__((always_inline)) void mc_ring_commit(void)
{
    struct mc_tbuf *b = mc_tls_cur.buf;
    if (!b || !b->reserved) return;
    struct mc_rec_header *h = (struct mc_rec_header *)b->res;
    atomic_store_explicit((_Atomic uint32_t *)&h->size, b->res_size, memory_order_release);
    b->pos = b->res + b->res_size;
    atomic_signal_fence(memory_order_seq_cst); /* published before the buffer is free again */
    b->reserved = 0;
}

/* This thread's tid (mc_tid), inline once known. */
static inline __attribute__((always_inline)) int32_t mc_ring_tid(void)
{
    int32_t t = mc_tls_cur.tid;
    return __builtin_expect(t != 0, 1) ? t : mc_tid_h();
}

#endif
