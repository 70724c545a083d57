/* A fake CUDA runtime + driver + cuBLAS + cuBLASLt library (libfakecuda.so) for testing the
 * interposers without a GPU: same signatures as the real entry points, deterministic
 * results, and call counters the test reads (fake_calls). The runtime's launch reaches
 * the driver through a pointer from cuGetProcAddress_v2, as libcudart does, so the test
 * can check that such nested launches are recorded once. Entry points returned by
 * cuGetProcAddress are internal (static) functions, like a real driver's. */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cublas_api.h>
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>
#include "fake_cuda.h"

struct fake_calls fake_calls;

/* ---- driver ---- */

static CUresult impl_cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
    unsigned int bx, unsigned int by, unsigned int bz, unsigned int sh, CUstream s, void **p, void **e)
{
    (void)f; (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz; (void)sh; (void)s;
    (void)p; (void)e;
    fake_calls.cu_launch++;
    return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
    unsigned int bx, unsigned int by, unsigned int bz, unsigned int sh, CUstream s, void **p, void **e)
{
    return impl_cuLaunchKernel(f, gx, gy, gz, bx, by, bz, sh, s, p, e);
}

static CUresult impl_cuMemAlloc(CUdeviceptr *p, size_t n)
{
    fake_calls.cu_alloc++;
    *p = (CUdeviceptr)(FAKE_DEVICE_BASE + 0x100000ull * (uint64_t)fake_calls.cu_alloc);
    (void)n;
    return CUDA_SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) { return impl_cuMemAlloc(p, n); }

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    (void)dst; (void)src; (void)n;
    fake_calls.cu_copy++;
    return CUDA_SUCCESS;
}

CUresult cuInit(unsigned int flags) { (void)flags; return CUDA_SUCCESS; }

CUresult cuFuncGetName(const char **name, CUfunction f)
{
    (void)f;
    *name = "drv_kernel";
    return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice *d) { *d = FAKE_DEVICE; return CUDA_SUCCESS; }

static CUresult impl_gpa(const char *symbol, void **pfn, int ver, cuuint64_t flags,
                         CUdriverProcAddressQueryResult *st)
{
    (void)ver; (void)flags;
    fake_calls.cu_gpa++;
    if (st) *st = CU_GET_PROC_ADDRESS_SUCCESS;
    if (!strcmp(symbol, "cuLaunchKernel")) { *pfn = (void *)impl_cuLaunchKernel; return CUDA_SUCCESS; }
    if (!strcmp(symbol, "cuMemAlloc")) { *pfn = (void *)impl_cuMemAlloc; return CUDA_SUCCESS; }
    if (!strcmp(symbol, "cuGetProcAddress")) { *pfn = (void *)impl_gpa; return CUDA_SUCCESS; }
    *pfn = NULL;
    if (st) *st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int ver, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *st)
{
    return impl_gpa(symbol, pfn, ver, flags, st);
}

/* ---- runtime ---- */

cudaError_t cudaGetDevice(int *d) { *d = FAKE_DEVICE; return cudaSuccess; }

cudaError_t cudaMalloc(void **p, size_t n)
{
    fake_calls.rt_malloc++;
    *p = (void *)(uintptr_t)(FAKE_DEVICE_BASE + 0x1000ull * (uint64_t)fake_calls.rt_malloc);
    (void)n;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) { (void)p; fake_calls.rt_free++; return cudaSuccess; }

/* Internal (static) like a real runtime's: calls between the fake's own entry points must
 * not go through the exported, interposable symbols. */
static cudaError_t impl_memcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind k)
{
    (void)dst; (void)src; (void)n; (void)k;
    fake_calls.rt_copy++;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind k)
{
    return impl_memcpy(dst, src, n, k);
}

static int fake_dev(const void *p)
{
    uint64_t u = (uint64_t)(uintptr_t)p;
    return u >= FAKE_DEVICE_BASE && u < FAKE_DEVICE_BASE + (1ull << 40);
}

/* Copies for real when neither side is a fake device address (the router-tap test keeps
 * its "device" logits in host memory). */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind k,
                            cudaStream_t s)
{
    (void)s;
    fake_calls.rt_copy_async++;
    if (!fake_dev(dst) && !fake_dev(src) && (uint64_t)(uintptr_t)src > 0x100000) memcpy(dst, src, n);
    return impl_memcpy(dst, src, n, k);
}

cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int flags)
{
    (void)flags;
    *p = malloc(n);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

int fake_capturing;

cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *st)
{
    (void)s;
    *st = fake_capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

/* Stream order without a GPU: the host function runs right away. */
cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void *data)
{
    (void)s;
    fake_calls.host_funcs++;
    fn(data);
    return cudaSuccess;
}

/* Device memory is [FAKE_DEVICE_BASE, FAKE_DEVICE_BASE + 1 TiB): below the stack. */
cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
    memset(a, 0, sizeof *a);
    uint64_t u = (uint64_t)(uintptr_t)p;
    a->type = u >= FAKE_DEVICE_BASE && u < FAKE_DEVICE_BASE + (1ull << 40)
        ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
    return cudaSuccess;
}

cudaError_t cudaFuncGetName(const char **name, const void *func)
{
    *name = func == (const void *)FAKE_KERNEL_A ? "kernel_A" : "kernel_other";
    return cudaSuccess;
}

/* Like libcudart: launch through a driver entry point obtained by query. Queried through
 * the global symbol so a preloaded/interposing cuGetProcAddress_v2 is the one asked. */
cudaError_t cudaLaunchKernel(const void *func, dim3 g, dim3 b, void **args, size_t sh,
                             cudaStream_t s)
{
    (void)func; (void)args;
    fake_calls.rt_launch++;
    static CUresult (*launch)(CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                              unsigned int, unsigned int, unsigned int, CUstream, void **, void **);
    if (!launch && cuGetProcAddress_v2("cuLaunchKernel", (void **)&launch, 12000, 0, NULL) != CUDA_SUCCESS)
        return cudaErrorUnknown;
    return launch((CUfunction)(uintptr_t)func, g.x, g.y, g.z, b.x, b.y, b.z, (unsigned)sh,
                  (CUstream)s, NULL, NULL) == CUDA_SUCCESS ? cudaSuccess : cudaErrorUnknown;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) { (void)s; return cudaSuccess; }

/* ---- cuBLAS ---- */

cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *s)
{
    (void)h;
    *s = (cudaStream_t)(uintptr_t)FAKE_STREAM;
    return CUBLAS_STATUS_SUCCESS;
}

cublasPointerMode_t fake_pointer_mode = CUBLAS_POINTER_MODE_HOST;

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t h, cublasPointerMode_t *m)
{
    (void)h;
    *m = fake_pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A,
    cudaDataType Atype, int lda, const void *B, cudaDataType Btype, int ldb, const void *beta,
    void *C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    (void)handle; (void)transa; (void)transb; (void)m; (void)n; (void)k; (void)alpha; (void)A;
    (void)Atype; (void)lda; (void)B; (void)Btype; (void)ldb; (void)beta; (void)C; (void)Ctype;
    (void)ldc; (void)computeType; (void)algo;
    fake_calls.gemm_ex++;
    return m > 0 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
    cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A,
    cudaDataType Atype, int lda, long long int strideA, const void *B, cudaDataType Btype,
    int ldb, long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
    long long int strideC, int batchCount, cublasComputeType_t computeType,
    cublasGemmAlgo_t algo)
{
    (void)handle; (void)transa; (void)transb; (void)m; (void)n; (void)k; (void)alpha; (void)A;
    (void)Atype; (void)lda; (void)strideA; (void)B; (void)Btype; (void)ldb; (void)strideB;
    (void)beta; (void)C; (void)Ctype; (void)ldc; (void)strideC; (void)batchCount;
    (void)computeType; (void)algo;
    fake_calls.gemm_sb++;
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLASLt: layouts and descriptors are pointers to the test's plain structs ---- */

cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t layout,
    cublasLtMatrixLayoutAttribute_t attr, void *buf, size_t size, size_t *written)
{
    const struct fake_lt_layout *l = (const struct fake_lt_layout *)layout;
    int64_t v;
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: { uint32_t t = (uint32_t)l->type; memcpy(buf, &t, 4); *written = 4; return size >= 4 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE; }
    case CUBLASLT_MATRIX_LAYOUT_ORDER: { int32_t o = l->order; memcpy(buf, &o, 4); *written = 4; return CUBLAS_STATUS_SUCCESS; }
    case CUBLASLT_MATRIX_LAYOUT_ROWS: { uint64_t r = l->rows; memcpy(buf, &r, 8); *written = 8; return CUBLAS_STATUS_SUCCESS; }
    case CUBLASLT_MATRIX_LAYOUT_COLS: { uint64_t c = l->cols; memcpy(buf, &c, 8); *written = 8; return CUBLAS_STATUS_SUCCESS; }
    case CUBLASLT_MATRIX_LAYOUT_LD: v = l->ld; memcpy(buf, &v, 8); *written = 8; return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: { int32_t b = l->batch; memcpy(buf, &b, 4); *written = 4; return CUBLAS_STATUS_SUCCESS; }
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: v = l->stride; memcpy(buf, &v, 8); *written = 8; return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_INVALID_VALUE;
    }
}

cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc,
    cublasLtMatmulDescAttributes_t attr, void *buf, size_t size, size_t *written)
{
    const struct fake_lt_desc *d = (const struct fake_lt_desc *)desc;
    int32_t v;
    (void)size;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: v = d->compute; break;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: v = d->scale; break;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: v = 0; break;
    case CUBLASLT_MATMUL_DESC_TRANSA: v = d->ta; break;
    case CUBLASLT_MATMUL_DESC_TRANSB: v = d->tb; break;
    default: return CUBLAS_STATUS_INVALID_VALUE;
    }
    memcpy(buf, &v, 4);
    *written = 4;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
    const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
    cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc,
    void *D, cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
    size_t workspaceSizeInBytes, cudaStream_t stream)
{
    (void)lightHandle; (void)computeDesc; (void)alpha; (void)A; (void)Adesc; (void)B; (void)Bdesc;
    (void)beta; (void)C; (void)Cdesc; (void)D; (void)Ddesc; (void)algo; (void)workspace;
    (void)workspaceSizeInBytes; (void)stream;
    fake_calls.lt_matmul++;
    return CUBLAS_STATUS_SUCCESS;
}
