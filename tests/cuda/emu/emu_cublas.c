/* Emulated cuBLAS (built as libcublas.so.13, the real soname): handles, stream and pointer
 * mode, cublasSgemm_v2 and cublasGemmEx (f32 / bf16 / f16 inputs, f32 / bf16 / f16 output,
 * f32 accumulation) with cuBLAS's exact column-major semantics (transposes, leading
 * dimensions, beta = 0 never reads C), every operand checked to lie inside one device
 * allocation of the emulated runtime. Plain loops on purpose: no CPU BLAS is called, so a
 * preloaded profiler records only the cuBLAS call, as on a GPU. */
#include <cublas_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "simt_emu_api.h"

#define EMU_API __attribute__((visibility("default")))
#define HANDLE_MAGIC 0x6375626cu

struct cublasContext {
    unsigned magic;
    cudaStream_t stream;
    cublasPointerMode_t pmode;
    cublasMath_t math;
};

static int bad_handle(cublasHandle_t h) { return !h || h->magic != HANDLE_MAGIC; }

EMU_API cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    struct cublasContext *c = calloc(1, sizeof *c);
    if (!c) return CUBLAS_STATUS_ALLOC_FAILED;
    c->magic = HANDLE_MAGIC;
    c->pmode = CUBLAS_POINTER_MODE_HOST;
    c->math = CUBLAS_DEFAULT_MATH;
    *handle = c;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->magic = 0;
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *s)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!s) return CUBLAS_STATUS_INVALID_VALUE;
    *s = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t h, cublasPointerMode_t m)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m != CUBLAS_POINTER_MODE_HOST && m != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
    h->pmode = m;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t h, cublasPointerMode_t *m)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!m) return CUBLAS_STATUS_INVALID_VALUE;
    *m = h->pmode;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!m) return CUBLAS_STATUS_INVALID_VALUE;
    *m = h->math;
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- element access ---- */

static float bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1);                                           /* nearest even */
    return (uint16_t)(u >> 16);
}

static float f16_to_f32(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = (float)m / 1024.0f / 16384.0f;
    else if (e == 31) v = m ? 0.0f / 0.0f : 1.0f / 0.0f;
    else v = (1.0f + (float)m / 1024.0f) * (e >= 15 ? (float)(1u << (e - 15)) : 1.0f / (float)(1u << (15 - e)));
    return s ? -v : v;
}

static uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000u);
    int e = (int)((u >> 23) & 255) - 127 + 15;
    uint32_t m = u & 0x7fffffu;
    if (((u >> 23) & 255) == 255) return s | 0x7c00u | (m ? 0x200u : 0);
    if (e >= 31) return s | 0x7c00u;
    if (e <= 0) {
        if (e < -10) return s;
        m |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e), half = 1u << (shift - 1);
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return s | (uint16_t)r;
    }
    uint32_t r = m >> 13, rem = m & 0x1fffu;
    uint16_t out = s | (uint16_t)(e << 10) | (uint16_t)r;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) out++;
    return out;
}

static int elt_size(cudaDataType t)
{
    switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16BF: case CUDA_R_16F: return 2;
    default: return 0;
    }
}

static float load(const void *p, size_t i, cudaDataType t)
{
    switch (t) {
    case CUDA_R_32F: return ((const float *)p)[i];
    case CUDA_R_16BF: return bf16_to_f32(((const uint16_t *)p)[i]);
    default: return f16_to_f32(((const uint16_t *)p)[i]);
    }
}

static void store(void *p, size_t i, cudaDataType t, float v)
{
    switch (t) {
    case CUDA_R_32F: ((float *)p)[i] = v; break;
    case CUDA_R_16BF: ((uint16_t *)p)[i] = f32_to_bf16(v); break;
    default: ((uint16_t *)p)[i] = f32_to_f16(v); break;
    }
}

/* Operand `name` of rows x cols (column-major, leading dimension ld) must be device memory. */
static int check_operand(const char *api, const char *name, const void *p, int rows, int cols, int ld, int elt)
{
    size_t bytes = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * (size_t)elt;
    if (simt_emu_is_device_range(p, bytes)) return 0;
    fprintf(stderr, "simt_emu: %s: %s (%p, %d x %d, ld %d: %zu bytes) is not inside one device allocation\n",
            api, name, p, rows, cols, ld, bytes);
    return -1;
}

/* C = alpha op(A) op(B) + beta C, f32 accumulation in ascending k. */
static cublasStatus_t gemm(const char *api, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                           cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc)
{
    if (bad_handle(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (simt_emu_sticky_error()) return CUBLAS_STATUS_EXECUTION_FAILED;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) {
        fprintf(stderr, "simt_emu: %s: only CUBLAS_OP_N / CUBLAS_OP_T are emulated\n", api);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "simt_emu: %s: invalid m %d n %d k %d lda %d ldb %d ldc %d\n", api, m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    int ea = elt_size(at), eb = elt_size(bt), ec = elt_size(ct);
    if (h->pmode == CUBLAS_POINTER_MODE_DEVICE &&
        (!simt_emu_is_device_range(alpha, 4) || !simt_emu_is_device_range(beta, 4))) {
        fprintf(stderr, "simt_emu: %s: pointer mode DEVICE but alpha/beta are not device memory\n", api);
        simt_emu_set_error(700);   /* cudaErrorIllegalAddress, as the faulting kernel would report */
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if ((k > 0 && (check_operand(api, "A", A, ar, ac, lda, ea) || check_operand(api, "B", B, br, bc, ldb, eb))) ||
        check_operand(api, "C", C, m, n, ldc, ec)) {
        simt_emu_set_error(700);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (simt_emu_inject_fault("cublas")) {
        fprintf(stderr, "simt_emu: %s: injected failure (SIMT_EMU_FAIL)\n", api);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    const void *ops[5] = { A, B, C, alpha, beta };
    int nops = h->pmode == CUBLAS_POINTER_MODE_DEVICE ? 5 : 3;
    simt_emu_device_access_ptrs(ops, nops, 1);
    float al = *(const float *)alpha, be = *(const float *)beta;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int p = 0; p < k; p++) {
                float a = ta == CUBLAS_OP_N ? load(A, (size_t)i + (size_t)p * lda, at)
                                            : load(A, (size_t)p + (size_t)i * lda, at);
                float b = tb == CUBLAS_OP_N ? load(B, (size_t)p + (size_t)j * ldb, bt)
                                            : load(B, (size_t)j + (size_t)p * ldb, bt);
                acc += a * b;
            }
            size_t ci = (size_t)i + (size_t)j * ldc;
            /* beta == 0: C is write-only (it may hold NaN garbage), as cuBLAS documents */
            float v = al * acc + (be != 0.0f ? be * load(C, ci, ct) : 0.0f);
            store(C, ci, ct, v);
        }
    simt_emu_device_access_ptrs(ops, nops, 0);
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                      int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                                      const float *beta, float *C, int ldc)
{
    return gemm("cublasSgemm_v2", h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C,
                CUDA_R_32F, ldc);
}

EMU_API cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                    const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                                    cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                                    cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
        compute != CUBLAS_COMPUTE_32F_FAST_16F && compute != CUBLAS_COMPUTE_32F_FAST_16BF &&
        compute != CUBLAS_COMPUTE_32F_FAST_TF32) {
        fprintf(stderr, "simt_emu: cublasGemmEx: compute type %d not emulated (f32 only)\n", (int)compute);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    /* the combinations cuBLAS supports with f32 compute: A and B of one type */
    if (at != bt || !elt_size(at) || !elt_size(ct) || (at == CUDA_R_32F && ct != CUDA_R_32F)) {
        fprintf(stderr, "simt_emu: cublasGemmEx: A %d B %d C %d with f32 compute not supported\n", (int)at, (int)bt,
                (int)ct);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return gemm("cublasGemmEx", h, ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc);
}
