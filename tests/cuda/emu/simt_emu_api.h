/* Internal interface of the CUDA emulation (not CUDA names, so a preloaded profiler never
 * interposes them): the running GPU thread's indices, block barriers and warp shuffles for
 * kernels compiled with simt_emu.h, kernel registration for cudaLaunchKernel, and the
 * device-allocation lookup the emulated cuBLAS uses to check its operands. Implemented in
 * emu_cudart.c (libcudart.so.13 of this folder). */
#ifndef SIMT_EMU_API_H
#define SIMT_EMU_API_H

#include <stddef.h>
#include <cuda_runtime_api.h>
#include <vector_types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct simt_emu_thread {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};

/* The GPU thread (fiber) running on this OS thread; set by the block executor. */
extern __thread const struct simt_emu_thread *simt_emu_cur;

enum { SIMT_EMU_SHFL_DOWN = 0, SIMT_EMU_SHFL_XOR = 1 };

void simt_emu_syncthreads(void);
unsigned long long simt_emu_shfl(unsigned mask, unsigned long long v, int arg, int width, int mode);

typedef void (*simt_emu_thunk)(void **args);
/* Makes `func` launchable with cudaLaunchKernel and nameable with cudaFuncGetName. */
int simt_emu_register_kernel(const void *func, const char *name, simt_emu_thunk thunk);
/* The kernel's parameter sizes and alignments (from its parameter types), for
 * cuFuncGetParamInfo of the emulated driver; after simt_emu_register_kernel. */
void simt_emu_register_kernel_params(const void *func, int n, const size_t *size, const size_t *align);

/* 1 when SIMT_EMU_LAUNCH=nvcc: launches take the path nvcc 13's <<<>>> stubs take,
 * __cudaGetKernel + __cudaLaunchKernel (kernel handle named by cuKernelGetName), instead of
 * cudaLaunchKernel (named by cudaFuncGetName). */
int simt_emu_nvcc_launch(void);
/* The CUDA 13 runtime's internal launch entry points (crt/host_runtime.h uses them). */
cudaError_t __cudaGetKernel(cudaKernel_t *kernel, const void *func);
cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 grid, dim3 block, void **args, size_t shared,
                               cudaStream_t stream);

/* 1 when [p, p + bytes) lies inside one live device allocation (cudaMalloc). */
int simt_emu_is_device_range(const void *p, size_t bytes);
/* Device memory is PROT_NONE outside kernels, copies and cuBLAS calls (host code must not
 * touch it). simt_emu_device_access: on = 1 opens all of it (nests), 0 closes it again;
 * _ptrs opens / closes only the allocations holding the n pointers (two system calls per
 * allocation instead of per live allocation). */
void simt_emu_device_access(int on);
void simt_emu_device_access_ptrs(const void *const *ptrs, int n, int on);
/* The device pointers among the next launch's arguments (simt_emu.h sets them): the launch
 * opens only their allocations. Without them it opens all device memory. */
void simt_emu_launch_pointers(const void *const *ptrs, int n);
/* Records a sticky launch/execution error reported later by cudaGetLastError (cuBLAS
 * failures that real hardware would report asynchronously). */
void simt_emu_set_error(int cuda_error);
/* Fault injection for error-path tests: SIMT_EMU_FAIL=WHAT:N makes the N-th call of WHAT
 * fail (WHAT: cudaMalloc, cudaMemcpy (also Async), cudaMemset, launch (the kernel is not run
 * and every later call fails with cudaErrorLaunchFailure, as after a faulting kernel), cublas
 * (the GEMM returns CUBLAS_STATUS_EXECUTION_FAILED)). Counts every call of WHAT; returns 1
 * when this call must fail. */
int simt_emu_inject_fault(const char *what);
/* The sticky error left by a faulting kernel (0 = none): cuBLAS calls fail after it too. */
int simt_emu_sticky_error(void);
/* Number of kernels executed and device threads run since start (tests). */
unsigned long long simt_emu_kernels_run(void);

#ifdef __cplusplus
}
#endif
#endif
