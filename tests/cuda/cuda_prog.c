/* A "CUDA program" for the preload test: calls the fake CUDA/cuBLAS library
 * (libfakecuda.so) the way a framework would, with known arguments, so that
 * test_cuda_preload.py can compare the trace libmoecap.so writes against them. */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cublas_api.h>
#include <cublasLt.h>
#include <stdio.h>
#include "fake_cuda.h"

int main(void)
{
    void *d = NULL;
    char host[4096] = {0};
    float alpha = 1.0f, beta = 0.0f;
    if (cudaMalloc(&d, 1 << 20) != cudaSuccess) return 1;
    cudaMemcpy(d, host, sizeof host, cudaMemcpyHostToDevice);
    /* Router GEMM: m = 8 experts, n = 5 tokens, k = 64 hidden; A = weight (T). */
    cublasGemmEx((cublasHandle_t)(uintptr_t)1, CUBLAS_OP_T, CUBLAS_OP_N, 8, 5, 64, &alpha, d, CUDA_R_16BF, 64,
                 (char *)d + 4096, CUDA_R_16BF, 64, &beta, (char *)d + 8192, CUDA_R_16BF, 8,
                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    struct fake_lt_desc desc = { CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N };
    struct fake_lt_layout a = { CUDA_R_16BF, 0, 64, 96, 64, 1, 0 }, b = { CUDA_R_16BF, 0, 64, 5, 64, 1, 0 },
                          o = { CUDA_R_16BF, 0, 96, 5, 96, 1, 0 };
    cublasLtMatmul((cublasLtHandle_t)(uintptr_t)1, (cublasLtMatmulDesc_t)&desc, &alpha, d,
                   (cublasLtMatrixLayout_t)&a, d, (cublasLtMatrixLayout_t)&b, &beta, d,
                   (cublasLtMatrixLayout_t)&o, d, (cublasLtMatrixLayout_t)&o, NULL, NULL, 0, NULL);
    dim3 g = { 2, 1, 1 }, bl = { 64, 1, 1 };
    cudaLaunchKernel((const void *)(uintptr_t)FAKE_KERNEL_A, g, bl, NULL, 0, NULL);
    void *pfn = NULL;
    cuGetProcAddress("cuLaunchKernel", &pfn, 12000, 0, NULL);
    if (pfn) ((CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                            unsigned, CUstream, void **, void **))pfn)(
                 (CUfunction)(uintptr_t)0xbeef, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL);
    cudaStreamSynchronize(NULL);
    cudaFree(d);
    printf("launches %d %d\n", fake_calls.rt_launch, fake_calls.cu_launch);
    return 0;
}
