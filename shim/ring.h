/* Per-thread record rings of libmoecap.so's core (shim_core.c), exposed inside the library
 * so that the hottest interposer (CPU BLAS: millions of calls per second in small models)
 * can reserve and commit its fixed-size record inline: no call, no memset, no size
 * arithmetic. Everything unusual (first record of a thread, ring wrap, ring half full,
 * re-entry, capture off, a record too large for the ring) goes to the core's general
 * mc_rec_reserve. Not for modules: they use shim_core.h.
 *
 * A thread's ring is a MC_REC_RING record of the trace file, mapped shared with its pages
 * faulted in when it was made (trace_file.c): the hot path writes the record there and
 * commits it by storing the new head into the file's ring header, so a committed record
 * is in the file at once (a SIGKILL cannot take it) and the thread takes no page fault
 * and makes no system call. The writer thread copies committed records to the file's
 * stream and advances the tail. */
#ifndef MOECAP_SHIM_RING_H
#define MOECAP_SHIM_RING_H

#include <stdatomic.h>
#include <stdint.h>
#include "shim_internal.h"

struct mc_tbuf {
    struct mc_tbuf *next;          /* lock-free push-only list */
    _Atomic int in_use;            /* owned by a live thread */
    int reserved;                  /* producer: a record is reserved (re-entrancy guard) */
    int res_big;                   /* producer: the reserved record is in `big`, not the ring */
    uint32_t size;                 /* ring bytes, power of two (0: no ring yet) */
    unsigned char *data;           /* the ring's bytes (in the file mapping) */
    struct mc_rec_ring *ring;      /* the ring's header in the file: head, tail */
    uint64_t head;                 /* producer: bytes committed (= ring->head) */
    uint64_t res_end;              /* producer: head after the reserved record */
    unsigned char *big;            /* producer: a record too large for the ring, */
    size_t big_cap;                /* appended to the stream at commit */
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

void mc_rec_commit_big_h(struct mc_tbuf *b) MC_HIDDEN;

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
        uint64_t head = b->head;
        uint64_t tail = atomic_load_explicit((_Atomic uint64_t *)&b->ring->tail, memory_order_acquire);
        uint32_t pos = (uint32_t)head & (b->size - 1);
        /* Fits before the ring's end and leaves the ring at most half full: nothing to pad,
         * nobody to wake. */
        if (__builtin_expect(pos + size <= b->size && head + size - tail <= b->size / 2, 1)) {
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

/* Commits this thread's reserved record (mc_rec_commit is this, for a non-NULL record):
 * the ring's head, stored in the file after every byte of the record, makes it a record
 * of the file. */
static inline __attribute__((always_inline)) void mc_ring_commit(void)
{
    struct mc_tbuf *b = mc_tls_cur.buf;
    if (!b || !b->reserved) return;
    if (__builtin_expect(b->res_big, 0)) { mc_rec_commit_big_h(b); return; }
    b->head = b->res_end;
    atomic_store_explicit((_Atomic uint64_t *)&b->ring->head, b->res_end, memory_order_release);
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
