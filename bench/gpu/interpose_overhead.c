/* Host-side cost of the CUDA interposers, measurable without a GPU: N calls each of
 * cublasGemmEx, cudaLaunchKernel, cudaMemcpyAsync and cudaStreamSynchronize against the fake
 * CUDA library (tests/cuda/fake_cuda.c, whose functions do nearly nothing), timed with
 * CLOCK_MONOTONIC. Run once plainly and once under LD_PRELOAD=libmoecap.so: the difference
 * per call is what the shim adds to each intercepted call (record + clock reads + lookups).
 *   interpose_overhead [N]    prints "name ns_per_call" lines */
#include <cuda_runtime_api.h>
#include <cublas_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "fake_cuda.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    float alpha = 1, beta = 0;
    void *d = (void *)(uintptr_t)(FAKE_DEVICE_BASE + 0x1000);
    char host[64];
    dim3 g = { 1, 1, 1 }, b = { 32, 1, 1 };
    double t0 = now();
    for (long i = 0; i < n; i++)
        cublasGemmEx((cublasHandle_t)(uintptr_t)1, CUBLAS_OP_T, CUBLAS_OP_N, 64, 8, 64, &alpha, d, CUDA_R_16BF, 64,
                     d, CUDA_R_16BF, 64, &beta, d, CUDA_R_16BF, 64, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    double t1 = now();
    for (long i = 0; i < n; i++) cudaLaunchKernel((const void *)(uintptr_t)FAKE_KERNEL_A, g, b, NULL, 0, NULL);
    double t2 = now();
    for (long i = 0; i < n; i++) cudaMemcpyAsync(d, host, sizeof host, cudaMemcpyHostToDevice, NULL);
    double t3 = now();
    for (long i = 0; i < n; i++) cudaStreamSynchronize(NULL);
    double t4 = now();
    printf("cublasGemmEx %.1f\ncudaLaunchKernel %.1f\ncudaMemcpyAsync %.1f\ncudaStreamSynchronize %.1f\n",
           (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / n, (t4 - t3) / n);
    return 0;
}
