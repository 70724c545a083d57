/* Shared between tests/cuda/fake_cuda.c (libfakecuda.so) and the tests that call it. */
#ifndef MC_FAKE_CUDA_H
#define MC_FAKE_CUDA_H
#include <stdint.h>
#define FAKE_DEVICE 3
#define FAKE_DEVICE_BASE 0x700000000000ull
#define FAKE_STREAM 0x5151u
#define FAKE_KERNEL_A 0xa000u
struct fake_calls {
    int cu_launch, cu_alloc, cu_copy, cu_gpa;
    int rt_malloc, rt_free, rt_copy, rt_launch;
    int gemm_ex, gemm_sb, lt_matmul;
    int rt_copy_async, host_funcs;
};
extern int fake_capturing;   /* cudaStreamIsCapturing reports an active capture */
extern struct fake_calls fake_calls;
/* cuBLASLt handles in the fake are pointers to these. */
struct fake_lt_layout { int type, order; uint64_t rows, cols; int64_t ld; int batch; int64_t stride; };
struct fake_lt_desc { int compute, scale, ta, tb; };
#endif
