/* Per-thread record rings of libmoecap.so's core (shim_core.c), exposed inside the library
 * so that the hottest interposer (CPU BLAS: millions of calls per second in small models)
 * can reserve and commit its fixed-size record inline: no call, no memset, no size
 * arithmetic. Everything unusual (first record of a thread, ring wrap, ring half full,
 * re-entry, capture off) goes to the core's general mc_rec_reserve. Not for modules:
 * they use shim_core.h. */
#ifndef MOECAP_SHIM_RING_H
#define MOECAP_SHIM_RING_H

#include <stdatomic.h>
#include <stdint.h>
#include "shim_internal.h"

struct mc_tbuf {
    struct mc_tbuf *next;          /* lock-free push-only list */
    _Atomic int in_use;            /* owned by a live thread */
    _Atomic int flushing;          /* consumer lock (try-lock) */
    _Atomic uint64_t head;         /* bytes committed (monotonic) */
    _Atomic uint64_t tail;         /* bytes written to the file */
    uint64_t res_end;              /* producer: head after the reserved record */
    int reserved;                  /* producer: a record is reserved (re-entrancy guard) */
    uint32_t size;                 /* ring bytes, power of two */
    unsigned char *data;
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
 * thread's ring with header type and size set and flags 0; the rest is NOT zeroed: the
 * caller writes every byte of the record. NULL = do not record (see mc_rec_reserve). */
static inline __attribute__((always_inline)) void *mc_ring_reserve_fixed(uint16_t type, uint32_t size)
{
    struct mc_tbuf *b = mc_tls_cur.buf;
    if (__builtin_expect(b != NULL && !b->reserved &&
                         atomic_load_explicit(&mc_enabled_flag, memory_order_relaxed), 1)) {
        /* Claimed before head is read (a signal handler recording in between finds the
         * ring reserved instead of taking the same bytes). */
        b->reserved = 1;
        atomic_signal_fence(memory_order_seq_cst);
        uint64_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
        uint64_t tail = atomic_load_explicit(&b->tail, memory_order_acquire);
        uint32_t pos = (uint32_t)head & (b->size - 1);
        /* Fits before the ring's end and leaves the ring below half full: nothing to pad,
         * nobody to wake. */
        if (__builtin_expect(pos + size <= b->size && head + size - tail < b->size / 2, 1)) {
            struct mc_rec_header *h = (struct mc_rec_header *)(b->data + pos);
            h->type = type;
            h->flags = 0;
            h->size = size;
            b->res_end = head + size;
            return h;
        }
        atomic_signal_fence(memory_order_seq_cst);
        b->reserved = 0;
    }
    return mc_rec_reserve_h(type, size);
}

/* Commits this thread's reserved record (mc_rec_commit is this, for a non-NULL record). */
static inline __attribute__((always_inline)) void mc_ring_commit(void)
{
    struct mc_tbuf *b = mc_tls_cur.buf;
    if (!b || !b->reserved) return;
    atomic_store_explicit(&b->head, b->res_end, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst); /* published before the ring is free again */
    b->reserved = 0;
}

/* This thread's tid (mc_tid), inline once known. */
static inline __attribute__((always_inline)) int32_t mc_ring_tid(void)
{
    int32_t t = mc_tls_cur.tid;
    return __builtin_expect(t != 0, 1) ? t : mc_tid_h();
}

#endif
