/* CPU BLAS interposition: Fortran (sgemm_, dgemm_, sgemv_, dgemv_, sbgemm_) and CBLAS
 * (cblas_sgemm, cblas_dgemm, cblas_sgemv, cblas_dgemv, cblas_sbgemm) entry points. Each
 * records one MC_REC_GEMM exactly as the caller expressed the call and calls the real
 * function with the very same arguments.
 *
 * Fortran callers pass hidden character-length arguments after the declared ones; the
 * wrappers declare and forward them (reading them when a C caller did not pass them only
 * reads the caller's stack slots, harmless, and BLAS implementations ignore them).
 * The real function is found once (mc_real, which also finds a BLAS loaded with
 * dlopen(RTLD_LOCAL)). */
#include "shim_internal.h"
#include "ring.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int blasint; /* LP64 BLAS (Debian's libblas.so.3 / libopenblas.so.0) */
typedef uint16_t mc_bf16;

/* CBLAS enums by value (no cblas.h: its prototypes would clash with ours). */
enum { CB_ROW = 101, CB_COL = 102, CB_N = 111, CB_T = 112, CB_C = 113, CB_CNR = 114 };

/* First call of a function whose BLAS was not in the global scope at start-up: find it
 * (also in a library dlopen'ed with RTLD_LOCAL) and record the new library's mappings.
 * Nothing to forward to means the program called a BLAS that does not exist: abort. */
__attribute__((noinline, cold)) static void *blas_resolve(struct mc_real *r)
{
    void *p = mc_real_find(r);
    if (!p) mc_real_missing(r->name);
    mc_maps_refresh(0);
    return p;
}

static inline __attribute__((always_inline)) void *blas_real(struct mc_real *r)
{
    void *p = atomic_load_explicit(&r->fn, memory_order_acquire);
    return __builtin_expect(p != NULL, 1) ? p : blas_resolve(r);
}

static uint8_t f77_trans(const char *t)
{
    char c = t ? *t : 'N';
    if (c == 'T' || c == 't') return MC_OP_T;
    if (c == 'C' || c == 'c') return MC_OP_C;
    return MC_OP_N;
}

static uint8_t cb_trans(int t)
{
    if (t == CB_T) return MC_OP_T;
    if (t == CB_C || t == CB_CNR) return MC_OP_C;
    return MC_OP_N;
}

/* Common part of every record: reserve, fill what all BLAS calls share. NULL = don't
 * record (capture off, re-entry from inside BLAS, ring full). CPU calls use the compact
 * record (the reader returns it as MC_REC_GEMM) stamped with fast ticks, which the
 * writer converts to CLOCK_MONOTONIC ns. The ring's fast path does not zero the record:
 * begin() and the macros below write every byte of it (pad included), the times last. */
_Static_assert(sizeof(struct mc_rec_gemm_cpu) == 112, "mc_rec_gemm_cpu: every field is written by the BLAS macros");
static inline __attribute__((always_inline)) struct mc_rec_gemm_cpu *begin(uint16_t api, uint8_t dt_ab, uint8_t dt_c)
{
    struct mc_rec_gemm_cpu *g = mc_ring_reserve_fixed(MC_REC_GEMM_CPU, sizeof *g);
    if (!g) return NULL;
    g->h.flags = mc_ticks_flag();
    g->api = api;
    g->dtype_a = g->dtype_b = dt_ab;
    g->dtype_c = dt_c;
    g->dtype_compute = dt_c;
    g->trans_b = MC_OP_N; /* GEMV has no B operand flag; the GEMM macros overwrite it */
    g->tid = mc_ring_tid();
    memset(g->pad, 0, sizeof g->pad);
    return g;
}

/* Run `real call` inside g's time window and commit g. The call site is captured first,
 * in the interposer's own frame (the return address is the BLAS caller's), so the unwind
 * is not timed. */
#define CALL_RECORDED(g, call)                                                              \
    do {                                                                                    \
        (g)->callsite = mc_callsite_capture_at_h(__builtin_return_address(0),              \
                                                 __builtin_frame_address(0));               \
        (g)->t_begin_ns = mc_ticks();                                                       \
        real call;                                                                          \
        (g)->t_end_ns = mc_ticks();                                                         \
        mc_ring_commit();                                                                   \
    } while (0)

/* ------------------------------------------------------------------ Fortran GEMM */

/* T: the A and B elements; TS: alpha, beta and the C elements (they differ for sbgemm_). */
#define F77_GEMM(NAME, T, TS, API, DTAB, DTC)                                               \
    typedef void (*NAME##_fn)(const char *, const char *, const blasint *, const blasint *, \
                              const blasint *, const TS *, const T *, const blasint *,       \
                              const T *, const blasint *, const TS *, TS *, const blasint *, \
                              size_t, size_t);                                              \
    static struct mc_real real_##NAME = MC_REAL_INIT(#NAME);                                                     \
    void NAME(const char *ta, const char *tb, const blasint *m, const blasint *n,           \
              const blasint *k, const TS *alpha, const T *a, const blasint *lda,            \
              const T *b, const blasint *ldb, const TS *beta, TS *c, const blasint *ldc,    \
              size_t lta, size_t ltb)                                                       \
    {                                                                                       \
        NAME##_fn real = (NAME##_fn)blas_real(&real_##NAME);                       \
        struct mc_rec_gemm_cpu *g = begin(API, DTAB, DTC);                                  \
        if (!g) { real(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, lta, ltb); return; } \
        g->layout = MC_LAYOUT_COL_MAJOR;                                                    \
        g->trans_a = f77_trans(ta);                                                         \
        g->trans_b = f77_trans(tb);                                                         \
        g->m = *m; g->n = *n; g->k = *k;                                                    \
        g->lda = *lda; g->ldb = *ldb; g->ldc = *ldc;                                        \
        g->a = (uintptr_t)a; g->b = (uintptr_t)b; g->c = (uintptr_t)c;                      \
        g->alpha = (double)*alpha; g->beta = (double)*beta;                                 \
        CALL_RECORDED(g, (ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, lta, ltb)); \
    }

F77_GEMM(sgemm_, float, float, MC_API_SGEMM_F77, MC_DT_F32, MC_DT_F32)
F77_GEMM(dgemm_, double, double, MC_API_DGEMM_F77, MC_DT_F64, MC_DT_F64)
/* OpenBLAS bf16: A, B bf16, alpha/beta/C float. */
F77_GEMM(sbgemm_, mc_bf16, float, MC_API_SBGEMM_F77, MC_DT_BF16, MC_DT_F32)

/* ------------------------------------------------------------------ Fortran GEMV */

#define F77_GEMV(NAME, T, API, DT)                                                          \
    typedef void (*NAME##_fn)(const char *, const blasint *, const blasint *, const T *,    \
                              const T *, const blasint *, const T *, const blasint *,        \
                              const T *, T *, const blasint *, size_t);                     \
    static struct mc_real real_##NAME = MC_REAL_INIT(#NAME);                                                     \
    void NAME(const char *tr, const blasint *m, const blasint *n, const T *alpha,           \
              const T *a, const blasint *lda, const T *x, const blasint *incx,              \
              const T *beta, T *y, const blasint *incy, size_t ltr)                         \
    {                                                                                       \
        NAME##_fn real = (NAME##_fn)blas_real(&real_##NAME);                       \
        struct mc_rec_gemm_cpu *g = begin(API, DT, DT);                                         \
        if (!g) { real(tr, m, n, alpha, a, lda, x, incx, beta, y, incy, ltr); return; }     \
        g->layout = MC_LAYOUT_COL_MAJOR;                                                    \
        g->trans_a = f77_trans(tr);                                                         \
        g->m = *m; g->n = 1; g->k = *n;                                                     \
        g->lda = *lda; g->ldb = *incx; g->ldc = *incy;                                      \
        g->a = (uintptr_t)a; g->b = (uintptr_t)x; g->c = (uintptr_t)y;                      \
        g->alpha = (double)*alpha; g->beta = (double)*beta;                                 \
        CALL_RECORDED(g, (tr, m, n, alpha, a, lda, x, incx, beta, y, incy, ltr));           \
    }

F77_GEMV(sgemv_, float, MC_API_SGEMV_F77, MC_DT_F32)
F77_GEMV(dgemv_, double, MC_API_DGEMV_F77, MC_DT_F64)

/* ------------------------------------------------------------------ CBLAS GEMM */

#define CB_GEMM(NAME, T, TS, API, DTAB, DTC)                                               \
    typedef void (*NAME##_fn)(int, int, int, blasint, blasint, blasint, TS, const T *,     \
                              blasint, const T *, blasint, TS, TS *, blasint);             \
    static struct mc_real real_##NAME = MC_REAL_INIT(#NAME);                                                     \
    void NAME(int order, int ta, int tb, blasint m, blasint n, blasint k, TS alpha,         \
              const T *a, blasint lda, const T *b, blasint ldb, TS beta, TS *c, blasint ldc) \
    {                                                                                       \
        NAME##_fn real = (NAME##_fn)blas_real(&real_##NAME);                       \
        struct mc_rec_gemm_cpu *g = begin(API, DTAB, DTC);                                      \
        if (!g) { real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return; } \
        g->layout = order == CB_ROW ? MC_LAYOUT_ROW_MAJOR : MC_LAYOUT_COL_MAJOR;            \
        g->trans_a = cb_trans(ta);                                                          \
        g->trans_b = cb_trans(tb);                                                          \
        g->m = m; g->n = n; g->k = k;                                                       \
        g->lda = lda; g->ldb = ldb; g->ldc = ldc;                                           \
        g->a = (uintptr_t)a; g->b = (uintptr_t)b; g->c = (uintptr_t)c;                      \
        g->alpha = (double)alpha; g->beta = (double)beta;                                   \
        CALL_RECORDED(g, (order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));    \
    }

CB_GEMM(cblas_sgemm, float, float, MC_API_CBLAS_SGEMM, MC_DT_F32, MC_DT_F32)
CB_GEMM(cblas_dgemm, double, double, MC_API_CBLAS_DGEMM, MC_DT_F64, MC_DT_F64)
CB_GEMM(cblas_sbgemm, mc_bf16, float, MC_API_CBLAS_SBGEMM, MC_DT_BF16, MC_DT_F32)

/* ------------------------------------------------------------------ CBLAS GEMV */

#define CB_GEMV(NAME, T, API, DT)                                                           \
    typedef void (*NAME##_fn)(int, int, blasint, blasint, T, const T *, blasint,            \
                              const T *, blasint, T, T *, blasint);                         \
    static struct mc_real real_##NAME = MC_REAL_INIT(#NAME);                                                     \
    void NAME(int order, int tr, blasint m, blasint n, T alpha, const T *a, blasint lda,    \
              const T *x, blasint incx, T beta, T *y, blasint incy)                         \
    {                                                                                       \
        NAME##_fn real = (NAME##_fn)blas_real(&real_##NAME);                       \
        struct mc_rec_gemm_cpu *g = begin(API, DT, DT);                                         \
        if (!g) { real(order, tr, m, n, alpha, a, lda, x, incx, beta, y, incy); return; }   \
        g->layout = order == CB_ROW ? MC_LAYOUT_ROW_MAJOR : MC_LAYOUT_COL_MAJOR;            \
        g->trans_a = cb_trans(tr);                                                          \
        g->m = m; g->n = 1; g->k = n;                                                       \
        g->lda = lda; g->ldb = incx; g->ldc = incy;                                         \
        g->a = (uintptr_t)a; g->b = (uintptr_t)x; g->c = (uintptr_t)y;                      \
        g->alpha = (double)alpha; g->beta = (double)beta;                                   \
        CALL_RECORDED(g, (order, tr, m, n, alpha, a, lda, x, incx, beta, y, incy));         \
    }

CB_GEMV(cblas_sgemv, float, MC_API_CBLAS_SGEMV, MC_DT_F32)
CB_GEMV(cblas_dgemv, double, MC_API_CBLAS_DGEMV, MC_DT_F64)

/* Resolve, at start-up, the BLAS entry points a library already in the global scope
 * defines (the usual case: the program links libblas/libopenblas). Otherwise the program's
 * first BLAS call pays for the search and the maps refresh inside its own timing (0.4-1.8
 * ms measured on moe-ref's first step). Only the cheap RTLD_NEXT lookup here: a BLAS that
 * arrives later with dlopen(RTLD_LOCAL) is still found lazily by blas_resolve. */
__attribute__((constructor(103))) static void blas_resolve_early(void)
{
    struct mc_real *const table[] = {
        &real_sgemm_, &real_dgemm_, &real_sbgemm_, &real_sgemv_, &real_dgemv_,
        &real_cblas_sgemm, &real_cblas_dgemm, &real_cblas_sbgemm, &real_cblas_sgemv, &real_cblas_dgemv,
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        void *p = dlsym(RTLD_NEXT, table[i]->name);
        if (p && !mc_addr_is_ours(p)) atomic_store_explicit(&table[i]->fn, p, memory_order_release);
    }
}
