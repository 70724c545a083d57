/* cuBLAS and cuBLASLt GEMM interposers: one MC_REC_GEMM per successful call with the
 * call's shapes, dtypes, transposes, operand pointers, alpha/beta (host pointer mode
 * only) and the handle's stream. Real functions are resolved at run time (no link-time
 * dependency on libcublas); a call is recorded only at CUDA nesting depth 0, so a cuBLAS
 * routine that calls cublasLtMatmul internally is counted once. */
#include <cublas_api.h>
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <string.h>
#include "shim_core.h"
#include "mc_cuda.h"
#include "cublaslt_decode.h"

typedef cublasStatus_t (*get_stream_fn)(cublasHandle_t, cudaStream_t *);
typedef cublasStatus_t (*get_pmode_fn)(cublasHandle_t, cublasPointerMode_t *);

/* The stream a cuBLAS handle issues on (0 when unreadable). */
static uint64_t handle_stream(cublasHandle_t h)
{
    MC_REAL(get_stream_fn, get_stream, "cublasGetStream_v2");
    cudaStream_t s = NULL;
    if (get_stream && get_stream(h, &s) == CUBLAS_STATUS_SUCCESS) return (uint64_t)(uintptr_t)s;
    return 0;
}

/* Fill the fields every cuBLAS GEMM record shares. */
static void fill_common(struct mc_rec_gemm *r, uint16_t api, uint64_t t0, uint64_t t1,
                        cublasHandle_t h, uint64_t stream, const void *alpha, const void *beta,
                        int scalar_dt)
{
    MC_REAL(get_pmode_fn, get_pmode, "cublasGetPointerMode_v2");
    r->t_begin_ns = t0;
    r->t_end_ns = t1;
    r->api = api;
    r->tid = mc_tid();
    r->device = mc_cuda_current_device();
    r->callsite = mc_callsite_capture();
    r->layout = MC_LAYOUT_COL_MAJOR;
    r->stream = stream;
    cublasPointerMode_t pm = CUBLAS_POINTER_MODE_DEVICE;
    if (get_pmode && get_pmode(h, &pm) == CUBLAS_STATUS_SUCCESS && pm == CUBLAS_POINTER_MODE_HOST) {
        r->alpha = mc_read_host_scalar(alpha, scalar_dt);
        r->beta = mc_read_host_scalar(beta, scalar_dt);
    }
}

/* One recorded GEMM: everything the fixed-argument entry points pass. */
struct gemm_args {
    uint16_t api;
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc, batch, sa, sb, sc;
    const void *a, *b, *c, *alpha, *beta;
    int dta, dtb, dtc, dtcomp;
};

static void record_gemm(cublasHandle_t h, uint64_t t0, uint64_t t1, const struct gemm_args *g)
{
    uint64_t stream = handle_stream(h);
    if (g->batch == 1)
        mc_router_tap_after_gemm(g->m, g->n, g->k, g->ldc, g->c, g->dtc, stream, t0);
    struct mc_rec_gemm *r = mc_rec_reserve(MC_REC_GEMM, sizeof *r);
    if (!r) return;
    fill_common(r, g->api, t0, t1, h, stream, g->alpha, g->beta, g->dtcomp);
    r->m = g->m; r->n = g->n; r->k = g->k;
    r->lda = g->lda; r->ldb = g->ldb; r->ldc = g->ldc;
    r->batch = g->batch; r->stride_a = g->sa; r->stride_b = g->sb; r->stride_c = g->sc;
    r->a = (uint64_t)(uintptr_t)g->a;
    r->b = (uint64_t)(uintptr_t)g->b;
    r->c = (uint64_t)(uintptr_t)g->c;
    r->dtype_a = (uint8_t)g->dta; r->dtype_b = (uint8_t)g->dtb;
    r->dtype_c = (uint8_t)g->dtc; r->dtype_compute = (uint8_t)g->dtcomp;
    r->trans_a = (uint8_t)mc_cublas_op(g->ta);
    r->trans_b = (uint8_t)mc_cublas_op(g->tb);
    mc_rec_commit(r);
}

/* Common body: resolve, call, record on success at depth 0. */
#define GEMM_BODY(fn_t, sym, call, ...) \
    MC_REAL(fn_t, real, sym); \
    if (!real) return CUBLAS_STATUS_NOT_INITIALIZED; \
    int depth_ = mc_cuda_enter(); \
    uint64_t t0_ = mc_now_ns(); \
    cublasStatus_t st_ = real call; \
    uint64_t t1_ = mc_now_ns(); \
    mc_cuda_leave(); \
    if (depth_ == 0 && st_ == CUBLAS_STATUS_SUCCESS) { \
        struct gemm_args g_ = { __VA_ARGS__ }; \
        record_gemm(handle, t0_, t1_, &g_); \
    } \
    return st_

/* cublasSgemm_v2 and cublasSgemm_v2_64 (wider integers): same arguments, same fields. */
#define SGEMM_BODY(fn_t, sym) \
    GEMM_BODY(fn_t, sym, \
        (handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc), \
        .api = MC_API_CUBLAS_SGEMM, .ta = transa, .tb = transb, .m = m, .n = n, .k = k, \
        .lda = lda, .ldb = ldb, .ldc = ldc, .batch = 1, .a = A, .b = B, .c = C, \
        .alpha = alpha, .beta = beta, .dta = MC_DT_F32, .dtb = MC_DT_F32, \
        .dtc = MC_DT_F32, .dtcomp = MC_DT_F32)

typedef cublasStatus_t (*sgemm_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
    int, int, const float *, const float *, int, const float *, int, const float *, float *, int);

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int m, int n, int k, const float *alpha, const float *A, int lda,
    const float *B, int ldb, const float *beta, float *C, int ldc)
{
    SGEMM_BODY(sgemm_fn, "cublasSgemm_v2");
}

typedef cublasStatus_t (*sgemm64_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
    int64_t, int64_t, int64_t, const float *, const float *, int64_t, const float *, int64_t,
    const float *, float *, int64_t);

cublasStatus_t cublasSgemm_v2_64(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int64_t m, int64_t n, int64_t k, const float *alpha,
    const float *A, int64_t lda, const float *B, int64_t ldb, const float *beta, float *C,
    int64_t ldc)
{
    SGEMM_BODY(sgemm64_fn, "cublasSgemm_v2_64");
}

/* cublasGemmEx and cublasGemmEx_64 (wider integers): same arguments, same fields. */
#define GEMMEX_BODY(fn_t, sym) \
    GEMM_BODY(fn_t, sym, \
        (handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, \
         Ctype, ldc, computeType, algo), \
        .api = MC_API_CUBLAS_GEMM_EX, .ta = transa, .tb = transb, .m = m, .n = n, .k = k, \
        .lda = lda, .ldb = ldb, .ldc = ldc, .batch = 1, .a = A, .b = B, .c = C, \
        .alpha = alpha, .beta = beta, .dta = mc_cuda_dtype(Atype), \
        .dtb = mc_cuda_dtype(Btype), .dtc = mc_cuda_dtype(Ctype), \
        .dtcomp = mc_cublas_compute_dtype(computeType))

typedef cublasStatus_t (*gemmex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
    int, int, const void *, const void *, cudaDataType, int, const void *, cudaDataType, int,
    const void *, void *, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A,
    cudaDataType Atype, int lda, const void *B, cudaDataType Btype, int ldb, const void *beta,
    void *C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    GEMMEX_BODY(gemmex_fn, "cublasGemmEx");
}

typedef cublasStatus_t (*gemmex64_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
    int64_t, int64_t, int64_t, const void *, const void *, cudaDataType, int64_t, const void *,
    cudaDataType, int64_t, const void *, void *, cudaDataType, int64_t, cublasComputeType_t,
    cublasGemmAlgo_t);

cublasStatus_t cublasGemmEx_64(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int64_t m, int64_t n, int64_t k, const void *alpha,
    const void *A, cudaDataType Atype, int64_t lda, const void *B, cudaDataType Btype,
    int64_t ldb, const void *beta, void *C, cudaDataType Ctype, int64_t ldc,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    GEMMEX_BODY(gemmex64_fn, "cublasGemmEx_64");
}

/* cublasGemmStridedBatchedEx and cublasGemmStridedBatchedEx_64 (wider integers): same arguments, same fields. */
#define GEMMSBEX_BODY(fn_t, sym) \
    GEMM_BODY(fn_t, sym, \
        (handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, \
         strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo), \
        .api = MC_API_CUBLAS_GEMM_STRIDED_BATCHED_EX, .ta = transa, .tb = transb, \
        .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = batchCount, \
        .sa = strideA, .sb = strideB, .sc = strideC, .a = A, .b = B, .c = C, \
        .alpha = alpha, .beta = beta, .dta = mc_cuda_dtype(Atype), \
        .dtb = mc_cuda_dtype(Btype), .dtc = mc_cuda_dtype(Ctype), \
        .dtcomp = mc_cublas_compute_dtype(computeType))

typedef cublasStatus_t (*gemmsbex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
    int, int, int, const void *, const void *, cudaDataType, int, long long, const void *,
    cudaDataType, int, long long, const void *, void *, cudaDataType, int, long long, int,
    cublasComputeType_t, cublasGemmAlgo_t);

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A,
    cudaDataType Atype, int lda, long long int strideA, const void *B, cudaDataType Btype,
    int ldb, long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
    long long int strideC, int batchCount, cublasComputeType_t computeType,
    cublasGemmAlgo_t algo)
{
    GEMMSBEX_BODY(gemmsbex_fn, "cublasGemmStridedBatchedEx");
}

typedef cublasStatus_t (*gemmsbex64_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
    int64_t, int64_t, int64_t, const void *, const void *, cudaDataType, int64_t, long long,
    const void *, cudaDataType, int64_t, long long, const void *, void *, cudaDataType, int64_t,
    long long, int64_t, cublasComputeType_t, cublasGemmAlgo_t);

cublasStatus_t cublasGemmStridedBatchedEx_64(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int64_t m, int64_t n, int64_t k, const void *alpha,
    const void *A, cudaDataType Atype, int64_t lda, long long int strideA, const void *B,
    cudaDataType Btype, int64_t ldb, long long int strideB, const void *beta, void *C,
    cudaDataType Ctype, int64_t ldc, long long int strideC, int64_t batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    GEMMSBEX_BODY(gemmsbex64_fn, "cublasGemmStridedBatchedEx_64");
}

/* Batched (pointer-array) GEMM: the arrays live in device memory, so a/b/c record the
 * addresses of the pointer arrays, not of the matrices. */
typedef cublasStatus_t (*gemmbex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
    int, int, const void *, const void *const[], cudaDataType, int, const void *const[],
    cudaDataType, int, const void *, void *const[], cudaDataType, int, int,
    cublasComputeType_t, cublasGemmAlgo_t);

cublasStatus_t cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *const Aarray[],
    cudaDataType Atype, int lda, const void *const Barray[], cudaDataType Btype, int ldb,
    const void *beta, void *const Carray[], cudaDataType Ctype, int ldc, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    GEMM_BODY(gemmbex_fn, "cublasGemmBatchedEx",
              (handle, transa, transb, m, n, k, alpha, Aarray, Atype, lda, Barray, Btype, ldb,
               beta, Carray, Ctype, ldc, batchCount, computeType, algo),
              .api = MC_API_CUBLAS_GEMM_BATCHED_EX, .ta = transa, .tb = transb,
              .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = batchCount,
              .a = (const void *)Aarray, .b = (const void *)Barray, .c = (const void *)Carray,
              .alpha = alpha, .beta = beta, .dta = mc_cuda_dtype(Atype),
              .dtb = mc_cuda_dtype(Btype), .dtc = mc_cuda_dtype(Ctype),
              .dtcomp = mc_cublas_compute_dtype(computeType));
}

typedef cublasStatus_t (*sgemmsb_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
    int, int, const float *, const float *, int, long long, const float *, int, long long,
    const float *, float *, int, long long, int);

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int m, int n, int k, const float *alpha, const float *A, int lda,
    long long int strideA, const float *B, int ldb, long long int strideB, const float *beta,
    float *C, int ldc, long long int strideC, int batchCount)
{
    GEMM_BODY(sgemmsb_fn, "cublasSgemmStridedBatched",
              (handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta,
               C, ldc, strideC, batchCount),
              .api = MC_API_CUBLAS_SGEMM_STRIDED_BATCHED, .ta = transa, .tb = transb,
              .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = batchCount,
              .sa = strideA, .sb = strideB, .sc = strideC, .a = A, .b = B, .c = C,
              .alpha = alpha, .beta = beta, .dta = MC_DT_F32, .dtb = MC_DT_F32,
              .dtc = MC_DT_F32, .dtcomp = MC_DT_F32);
}

/* ---- cuBLASLt ---- */

typedef cublasStatus_t (*ltmatmul_fn)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *,
    const void *, cublasLtMatrixLayout_t, const void *, cublasLtMatrixLayout_t, const void *,
    const void *, cublasLtMatrixLayout_t, void *, cublasLtMatrixLayout_t,
    const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t);

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
    const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
    cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc,
    void *D, cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
    size_t workspaceSizeInBytes, cudaStream_t stream)
{
    MC_REAL(ltmatmul_fn, real, "cublasLtMatmul");
    MC_REAL(mc_lt_layout_get_fn, lget, "cublasLtMatrixLayoutGetAttribute");
    MC_REAL(mc_lt_desc_get_fn, dget, "cublasLtMatmulDescGetAttribute");
    if (!real) return CUBLAS_STATUS_NOT_INITIALIZED;
    int depth = mc_cuda_enter();
    uint64_t t0 = mc_now_ns();
    cublasStatus_t st = real(lightHandle, computeDesc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc,
                             D, Ddesc, algo, workspace, workspaceSizeInBytes, stream);
    uint64_t t1 = mc_now_ns();
    mc_cuda_leave();
    if (depth != 0 || st != CUBLAS_STATUS_SUCCESS || !lget || !dget) return st;
    struct mc_lt_desc dd;
    struct mc_lt_layout la, lb, lc, ld;
    mc_lt_read_desc(dget, computeDesc, &dd);
    mc_lt_read_layout(lget, Adesc, &la);
    mc_lt_read_layout(lget, Bdesc, &lb);
    mc_lt_read_layout(lget, Cdesc, &lc);
    mc_lt_read_layout(lget, Ddesc, &ld);
    struct mc_rec_gemm shape;
    memset(&shape, 0, sizeof shape);
    int dec = mc_lt_decode(&dd, &la, &lb, &lc, &ld, &shape);
    if (dec >= 0 && shape.batch == 1)
        mc_router_tap_after_gemm(shape.m, shape.n, shape.k, shape.ldc, D, shape.dtype_c,
                                 (uint64_t)(uintptr_t)stream, t0);
    struct mc_rec_gemm *r = mc_rec_reserve(MC_REC_GEMM, sizeof *r);
    if (!r) return st;
    mc_lt_decode(&dd, &la, &lb, &lc, &ld, r);
    if (dec < 0) r->m = r->n = r->k = -1;
    r->t_begin_ns = t0;
    r->t_end_ns = t1;
    r->api = MC_API_CUBLASLT_MATMUL;
    r->tid = mc_tid();
    r->device = mc_cuda_current_device();
    r->callsite = mc_callsite_capture();
    r->stream = (uint64_t)(uintptr_t)stream;
    r->a = (uint64_t)(uintptr_t)A;
    r->b = (uint64_t)(uintptr_t)B;
    r->c = (uint64_t)(uintptr_t)D;   /* the output; C is the addend (often == D) */
    if (dd.valid && dd.pointer_mode == 0) {
        int sdt = dd.scale_type >= 0 ? mc_cuda_dtype(dd.scale_type)
                                     : mc_cublas_compute_dtype(dd.compute_type);
        r->alpha = mc_read_host_scalar(alpha, sdt);
        r->beta = mc_read_host_scalar(beta, sdt);
    }
    mc_rec_commit(r);
    return st;
}
