/* Tracing hook of the CUDA emulation: the emulated runtime (emu_cudart.c) and driver
 * (emu_cuda_driver.c) hand every launch, copy, memset and host-function call to one tracer,
 * which the emulated CUPTI (emu_cupti.c, libcupti.so.13 of this folder) installs when a
 * client enables activity or subscribes to callbacks. The tracer runs the call itself (the
 * `run` closure), so it can time it and wrap it in API callbacks the way CUPTI does. Not
 * CUDA names, so a preloaded profiler never interposes them. */
#ifndef SIMT_EMU_TRACE_H
#define SIMT_EMU_TRACE_H

#include <stddef.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { SIMT_EMU_CALL_LAUNCH = 1, SIMT_EMU_CALL_COPY, SIMT_EMU_CALL_SET, SIMT_EMU_CALL_HOSTFN };

struct simt_emu_call {
    int what;                  /* SIMT_EMU_CALL_* */
    const char *runtime_api;   /* "cudaMemcpyAsync"...; NULL for a driver entry point called directly */
    const char *driver_api;    /* the driver entry point the call goes through ("cuLaunchKernel") */
    /* launch */
    const void *func;          /* the CUfunction handle: cuFuncGetParamInfo describes it */
    const char *name;
    dim3 grid, block;
    void **args;
    size_t shared;
    /* copy / memset */
    int copy_kind;             /* cudaMemcpyKind, Default already resolved */
    size_t bytes;
    int async;
    cudaStream_t stream;
};

typedef cudaError_t (*simt_emu_run_fn)(void *ctx);
struct simt_emu_tracer {
    /* Must call run(ctx) exactly once and return its result. */
    cudaError_t (*call)(const struct simt_emu_call *c, simt_emu_run_fn run, void *ctx);
};

/* NULL uninstalls. */
void simt_emu_set_tracer(const struct simt_emu_tracer *t);
/* Runs the call through the tracer when one is installed, else run(ctx) directly. */
cudaError_t simt_emu_traced(const struct simt_emu_call *c, simt_emu_run_fn run, void *ctx);

/* Parameter layout of a launched kernel handle (what cuFuncGetParamInfo answers), as the
 * launch's parameter types give it (simt_emu.h). 0 ok, -1 unknown handle or index. */
int simt_emu_kernel_param_info(const void *handle, size_t idx, size_t *offset, size_t *size);
/* The kernel handle (CUfunction) of a registered kernel function, or NULL. */
const void *simt_emu_kernel_handle(const void *func);

#ifdef __cplusplus
}
#endif
#endif
