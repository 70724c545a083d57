/* Emulated CUDA driver (built as libcuda.so.1, loaded as a dependency of the emulated
 * libcupti.so.13): the driver entry points the CUPTI collector looks up with
 * dlopen("libcuda.so.1", RTLD_NOLOAD) + dlsym for its kernel-parameter taps
 * (cupti/collector.c: cuMemcpyDtoHAsync_v2, cuLaunchHostFunc, cuMemHostAlloc,
 * cuStreamIsCapturing, cuCtxGetDevice, cuFuncGetParamInfo), on the CUDA emulation of this
 * folder. Copies and host functions go through the tracing hook, so the emulated CUPTI
 * records them as a GPU stack would (a driver API record and a memcpy record each). */
#include <cuda.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "simt_emu_api.h"
#include "simt_emu_trace.h"

#define API __attribute__((visibility("default")))

struct dtoh { void *dst; const void *src; size_t n; };

static cudaError_t dtoh_run(void *p)
{
    struct dtoh *a = p;
    if (!a->dst || !simt_emu_is_device_range(a->src, a->n)) return cudaErrorInvalidValue;
    const void *src[1] = { a->src };
    simt_emu_device_access_ptrs(src, 1, 1);
    memcpy(a->dst, a->src, a->n);
    simt_emu_device_access_ptrs(src, 1, 0);
    return cudaSuccess;
}

API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream stream)
{
    if (n == 0) return CUDA_SUCCESS;
    struct dtoh a = { dst, (const void *)(uintptr_t)src, n };
    struct simt_emu_call c = { .what = SIMT_EMU_CALL_COPY, .runtime_api = NULL, .driver_api = "cuMemcpyDtoHAsync_v2",
                               .copy_kind = cudaMemcpyDeviceToHost, .bytes = n, .async = 1,
                               .stream = (cudaStream_t)stream };
    return simt_emu_traced(&c, dtoh_run, &a) == cudaSuccess ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

struct hostfn { CUhostFn fn; void *data; };

/* Everything before it on the stream already ran (the emulation is synchronous). */
static cudaError_t hostfn_run(void *p)
{
    struct hostfn *a = p;
    a->fn(a->data);
    return cudaSuccess;
}

API CUresult cuLaunchHostFunc(CUstream stream, CUhostFn fn, void *data)
{
    if (!fn) return CUDA_ERROR_INVALID_VALUE;
    struct hostfn a = { fn, data };
    struct simt_emu_call c = { .what = SIMT_EMU_CALL_HOSTFN, .runtime_api = NULL, .driver_api = "cuLaunchHostFunc",
                               .stream = (cudaStream_t)stream };
    simt_emu_traced(&c, hostfn_run, &a);
    return CUDA_SUCCESS;
}

/* Pinned host memory is host memory here. */
API CUresult cuMemHostAlloc(void **pp, size_t bytes, unsigned int flags)
{
    (void)flags;
    if (!pp) return CUDA_ERROR_INVALID_VALUE;
    if (posix_memalign(pp, 256, bytes ? bytes : 1) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    return CUDA_SUCCESS;
}

API CUresult cuMemFreeHost(void *p)
{
    free(p);
    return CUDA_SUCCESS;
}

API CUresult cuStreamIsCapturing(CUstream stream, CUstreamCaptureStatus *status)
{
    (void)stream;
    if (!status) return CUDA_ERROR_INVALID_VALUE;
    *status = CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}

API CUresult cuCtxGetDevice(CUdevice *dev)
{
    if (!dev) return CUDA_ERROR_INVALID_VALUE;
    *dev = 0;
    return CUDA_SUCCESS;
}

/* Offset and size of parameter `idx` of kernel f, from the kernel's parameter types. */
API CUresult cuFuncGetParamInfo(CUfunction f, size_t idx, size_t *offset, size_t *size)
{
    if (!offset || !size) return CUDA_ERROR_INVALID_VALUE;
    return simt_emu_kernel_param_info((const void *)f, idx, offset, size) == 0 ? CUDA_SUCCESS
                                                                              : CUDA_ERROR_INVALID_VALUE;
}
