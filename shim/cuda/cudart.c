/* CUDA runtime API interposers: allocations and frees (MC_REC_ALLOC), copies and memsets
 * (MC_REC_MEMCPY, source = 1; host->device copies out of weight-file ranges also give
 * MC_REC_FILE_MAP), kernel and graph launches and synchronisations (MC_REC_API), and
 * cudaGetDriverEntryPoint* (which hands out our driver wrappers, see cudrv.c).
 * Launch counts here are a lower bound: Triton and other dlsym users bypass symbol
 * interposition; CUPTI (cupti/) counts every kernel. */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "shim_core.h"
#include "mc_cuda.h"

/* ---- small shared helpers ---- */

typedef cudaError_t (*get_device_fn)(int *);

typedef int (*ctx_get_device_fn)(int *);

int mc_cuda_current_device(void)
{
    MC_REAL(get_device_fn, real, "cudaGetDevice");
    int d = -1;
    if (real) return real(&d) == cudaSuccess ? d : -1;
    /* Driver-only program (or a statically linked runtime): ask the current context. */
    MC_REAL(ctx_get_device_fn, drv, "cuCtxGetDevice");
    if (drv && drv(&d) == 0) return d;
    return -1;
}

void mc_cuda_record_alloc(uint64_t ptr, uint64_t bytes, int device, int is_free, int api)
{
    struct mc_rec_alloc *r = mc_rec_reserve(MC_REC_ALLOC, sizeof *r);
    if (!r) return;
    r->t_ns = mc_now_ns();
    r->ptr = ptr;
    r->bytes = bytes;
    r->device = device;
    r->is_free = (uint16_t)is_free;
    r->api = (uint16_t)api;
    mc_rec_commit(r);
}

void mc_cuda_record_copy(uint64_t t0, uint64_t t1, int kind, uint64_t bytes, uint64_t src,
                         uint64_t dst, uint64_t stream, int async, int device)
{
    struct mc_rec_memcpy *r = mc_rec_reserve(MC_REC_MEMCPY, sizeof *r);
    if (r) {
        r->start_ns = t0;
        r->end_ns = t1;
        r->bytes = bytes;
        r->src = src;
        r->dst = dst;
        r->stream = stream;
        r->device = device;
        r->kind = (uint16_t)kind;
        r->async = (uint8_t)async;
        r->source = 1;
        mc_rec_commit(r);
    }
    if (kind == MC_COPY_H2D) mc_cuda_note_h2d(src, dst, bytes, device);
}

/* Launches seen by interposition (read by the CUPTI collector to detect a silent activity
 * stream: launches but no kernel records). */
static uint64_t launch_count;
uint64_t mc_cuda_launch_count(void) { return __atomic_load_n(&launch_count, __ATOMIC_RELAXED); }

void mc_cuda_record_api(uint16_t api, uint64_t t0, uint64_t t1, uint64_t arg0, uint64_t arg1,
                        uint32_t name, int result)
{
    if (!mc_api_is_sync(api))
        __atomic_add_fetch(&launch_count, 1, __ATOMIC_RELAXED);
    struct mc_rec_api *r = mc_rec_reserve(MC_REC_API, sizeof *r);
    if (!r) return;
    r->t_begin_ns = t0;
    r->t_end_ns = t1;
    r->arg0 = arg0;
    r->arg1 = arg1;
    r->tid = mc_tid();
    r->device = mc_cuda_current_device();
    r->name_str = name;
    r->api = api;
    r->result = (uint16_t)result;
    mc_rec_commit(r);
}

#define U64(p) ((uint64_t)(uintptr_t)(p))


/* ---- allocations ---- */

typedef cudaError_t (*malloc_fn)(void **, size_t);
typedef cudaError_t (*free_fn)(void *);

cudaError_t cudaMalloc(void **devPtr, size_t size)
{
    MC_REAL(malloc_fn, real, "cudaMalloc");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(devPtr, size));
    if (call.depth == 0 && rc == cudaSuccess && devPtr)
        mc_cuda_record_alloc(U64(*devPtr), size, mc_cuda_current_device(), 0, MC_ALLOC_CUDA_MALLOC);
    return rc;
}

cudaError_t cudaFree(void *devPtr)
{
    MC_REAL(free_fn, real, "cudaFree");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(devPtr));
    if (call.depth == 0 && rc == cudaSuccess && devPtr)
        mc_cuda_record_alloc(U64(devPtr), 0, mc_cuda_current_device(), 1, MC_ALLOC_CUDA_MALLOC);
    return rc;
}

typedef cudaError_t (*malloc_async_fn)(void **, size_t, cudaStream_t);
typedef cudaError_t (*free_async_fn)(void *, cudaStream_t);

cudaError_t cudaMallocAsync(void **devPtr, size_t size, cudaStream_t stream)
{
    MC_REAL(malloc_async_fn, real, "cudaMallocAsync");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(devPtr, size, stream));
    if (call.depth == 0 && rc == cudaSuccess && devPtr)
        mc_cuda_record_alloc(U64(*devPtr), size, mc_cuda_current_device(), 0, MC_ALLOC_CUDA_MALLOC_ASYNC);
    return rc;
}

cudaError_t cudaFreeAsync(void *devPtr, cudaStream_t stream)
{
    MC_REAL(free_async_fn, real, "cudaFreeAsync");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(devPtr, stream));
    if (call.depth == 0 && rc == cudaSuccess && devPtr)
        mc_cuda_record_alloc(U64(devPtr), 0, mc_cuda_current_device(), 1, MC_ALLOC_CUDA_MALLOC_ASYNC);
    return rc;
}

cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    MC_REAL(malloc_fn, real, "cudaMallocHost");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(ptr, size));
    if (call.depth == 0 && rc == cudaSuccess && ptr)
        mc_cuda_record_alloc(U64(*ptr), size, -1, 0, MC_ALLOC_CUDA_MALLOC_HOST);
    return rc;
}

typedef cudaError_t (*host_alloc_fn)(void **, size_t, unsigned int);

cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags)
{
    MC_REAL(host_alloc_fn, real, "cudaHostAlloc");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(pHost, size, flags));
    if (call.depth == 0 && rc == cudaSuccess && pHost)
        mc_cuda_record_alloc(U64(*pHost), size, -1, 0, MC_ALLOC_CUDA_HOST_ALLOC);
    return rc;
}

cudaError_t cudaFreeHost(void *ptr)
{
    MC_REAL(free_fn, real, "cudaFreeHost");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(ptr));
    if (call.depth == 0 && rc == cudaSuccess && ptr)
        mc_cuda_record_alloc(U64(ptr), 0, -1, 1, MC_ALLOC_CUDA_MALLOC_HOST);
    return rc;
}

cudaError_t cudaMallocManaged(void **devPtr, size_t size, unsigned int flags)
{
    MC_REAL(host_alloc_fn, real, "cudaMallocManaged");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(devPtr, size, flags));
    if (call.depth == 0 && rc == cudaSuccess && devPtr)
        mc_cuda_record_alloc(U64(*devPtr), size, mc_cuda_current_device(), 0, MC_ALLOC_CUDA_MALLOC_MANAGED);
    return rc;
}

/* ---- copies ---- */

typedef cudaError_t (*ptr_attr_fn)(struct cudaPointerAttributes *, const void *);

/* 1 = device (or managed) memory, 0 = host, per cudaPointerGetAttributes. */
static int is_device_ptr(const void *p)
{
    MC_REAL(ptr_attr_fn, real, "cudaPointerGetAttributes");
    struct cudaPointerAttributes a;
    if (!real || real(&a, p) != cudaSuccess) return 0;
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

int mc_cuda_copy_kind(int cuda_kind, const void *dst, const void *src)
{
    switch (cuda_kind) {
    case cudaMemcpyHostToHost: return MC_COPY_H2H;
    case cudaMemcpyHostToDevice: return MC_COPY_H2D;
    case cudaMemcpyDeviceToHost: return MC_COPY_D2H;
    case cudaMemcpyDeviceToDevice: return MC_COPY_D2D;
    case cudaMemcpyDefault: {
        int s = is_device_ptr(src), d = is_device_ptr(dst);
        return s ? (d ? MC_COPY_D2D : MC_COPY_D2H) : (d ? MC_COPY_H2D : MC_COPY_H2H);
    }
    default: return MC_COPY_UNKNOWN;
    }
}

typedef cudaError_t (*memcpy_fn)(void *, const void *, size_t, enum cudaMemcpyKind);
typedef cudaError_t (*memcpy_async_fn)(void *, const void *, size_t, enum cudaMemcpyKind, cudaStream_t);

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind)
{
    MC_REAL(memcpy_fn, real, "cudaMemcpy");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(dst, src, count, kind));
    if (call.depth == 0 && rc == cudaSuccess)
        mc_cuda_record_copy(call.t0, call.t1, mc_cuda_copy_kind(kind, dst, src), count, U64(src), U64(dst),
                            0, 0, mc_cuda_current_device());
    return rc;
}

static cudaError_t memcpy_async_impl(memcpy_async_fn real, void *dst, const void *src, size_t count,
                                     enum cudaMemcpyKind kind, cudaStream_t stream)
{
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(dst, src, count, kind, stream));
    if (call.depth == 0 && rc == cudaSuccess)
        mc_cuda_record_copy(call.t0, call.t1, mc_cuda_copy_kind(kind, dst, src), count, U64(src), U64(dst),
                            U64(stream), 1, mc_cuda_current_device());
    return rc;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    MC_REAL(memcpy_async_fn, real, "cudaMemcpyAsync");
    return memcpy_async_impl(real, dst, src, count, kind, stream);
}

/* Per-thread-default-stream variants (code built with --default-stream per-thread). */
cudaError_t cudaMemcpyAsync_ptsz(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                                 cudaStream_t stream);
cudaError_t cudaMemcpyAsync_ptsz(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                                 cudaStream_t stream)
{
    MC_REAL(memcpy_async_fn, real, "cudaMemcpyAsync_ptsz");
    return memcpy_async_impl(real, dst, src, count, kind, stream);
}

typedef cudaError_t (*memset_fn)(void *, int, size_t);
typedef cudaError_t (*memset_async_fn)(void *, int, size_t, cudaStream_t);

cudaError_t cudaMemset(void *devPtr, int value, size_t count)
{
    MC_REAL(memset_fn, real, "cudaMemset");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(devPtr, value, count));
    if (call.depth == 0 && rc == cudaSuccess)
        mc_cuda_record_copy(call.t0, call.t1, MC_MEMSET, count, 0, U64(devPtr), 0, 0, mc_cuda_current_device());
    return rc;
}

static cudaError_t memset_async_impl(memset_async_fn real, void *devPtr, int value, size_t count,
                                     cudaStream_t stream)
{
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(devPtr, value, count, stream));
    if (call.depth == 0 && rc == cudaSuccess)
        mc_cuda_record_copy(call.t0, call.t1, MC_MEMSET, count, 0, U64(devPtr), U64(stream), 1,
                            mc_cuda_current_device());
    return rc;
}

cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream)
{
    MC_REAL(memset_async_fn, real, "cudaMemsetAsync");
    return memset_async_impl(real, devPtr, value, count, stream);
}

cudaError_t cudaMemsetAsync_ptsz(void *devPtr, int value, size_t count, cudaStream_t stream);
cudaError_t cudaMemsetAsync_ptsz(void *devPtr, int value, size_t count, cudaStream_t stream)
{
    MC_REAL(memset_async_fn, real, "cudaMemsetAsync_ptsz");
    return memset_async_impl(real, devPtr, value, count, stream);
}

/* ---- launches ---- */

typedef cudaError_t (*func_name_fn)(const char **, const void *);

static int runtime_func_name(const void *func, const char **name)
{
    MC_REAL(func_name_fn, real, "cudaFuncGetName");
    if (!real) return -1;
    return real(name, func) == cudaSuccess ? 0 : -1;
}

typedef int (*kernel_name_fn)(const char **, const void *);

static int kernel_handle_name(const void *kernel, const char **name)
{
    MC_REAL(kernel_name_fn, real, "cuKernelGetName");
    if (!real) return -1;
    return real(name, kernel) == 0 ? 0 : -1;
}

typedef cudaError_t (*launch_fn)(const void *, dim3, dim3, void **, size_t, cudaStream_t);

static cudaError_t launch_impl(launch_fn real, const void *func, dim3 gridDim, dim3 blockDim,
                               void **args, size_t sharedMem, cudaStream_t stream)
{
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(func, gridDim, blockDim, args, sharedMem, stream));
    if (call.depth == 0)
        mc_cuda_record_api(MC_API_CUDA_LAUNCH_KERNEL, call.t0, call.t1, U64(func), U64(stream),
                           rc == cudaSuccess ? mc_kernel_name_id(func, runtime_func_name) : 0, rc);
    return rc;
}

cudaError_t cudaLaunchKernel(const void *func, dim3 gridDim, dim3 blockDim, void **args,
                             size_t sharedMem, cudaStream_t stream)
{
    MC_REAL(launch_fn, real, "cudaLaunchKernel");
    return launch_impl(real, func, gridDim, blockDim, args, sharedMem, stream);
}

cudaError_t cudaLaunchKernel_ptsz(const void *func, dim3 gridDim, dim3 blockDim, void **args,
                                  size_t sharedMem, cudaStream_t stream);
cudaError_t cudaLaunchKernel_ptsz(const void *func, dim3 gridDim, dim3 blockDim, void **args,
                                  size_t sharedMem, cudaStream_t stream)
{
    MC_REAL(launch_fn, real, "cudaLaunchKernel_ptsz");
    return launch_impl(real, func, gridDim, blockDim, args, sharedMem, stream);
}

typedef cudaError_t (*launch_internal_fn)(cudaKernel_t, dim3, dim3, void **, size_t, cudaStream_t);

/* Body of both __cudaLaunchKernel entry points (they carry every <<<>>> launch of a CUDA 13
 * program): a macro over the caller's parameters, so nothing is copied or called in between. */
#define LAUNCH_INTERNAL_BODY(sym) \
    MC_REAL(launch_internal_fn, real, sym); \
    if (!real) return cudaErrorInitializationError; \
    struct mc_cuda_call call; \
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(kernel, gridDim, blockDim, args, sharedMem, stream)); \
    if (call.depth == 0) \
        mc_cuda_record_api(MC_API_CUDA_LAUNCH_KERNEL_INTERNAL, call.t0, call.t1, U64(kernel), U64(stream), \
                           rc == cudaSuccess ? mc_kernel_name_id(kernel, kernel_handle_name) : 0, rc); \
    return rc

/* CUDA 13 compiles <<<>>> launches to this: libtorch_cuda imports __cudaLaunchKernel,
 * not cudaLaunchKernel (an interposed cudaLaunchKernel sees no torch launch at all). */
cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 gridDim, dim3 blockDim, void **args,
                               size_t sharedMem, cudaStream_t stream)
{
    LAUNCH_INTERNAL_BODY("__cudaLaunchKernel");
}

cudaError_t __cudaLaunchKernel_ptsz(cudaKernel_t kernel, dim3 gridDim, dim3 blockDim,
                                    void **args, size_t sharedMem, cudaStream_t stream)
{
    LAUNCH_INTERNAL_BODY("__cudaLaunchKernel_ptsz");
}

typedef cudaError_t (*launch_exc_fn)(const cudaLaunchConfig_t *, const void *, void **);

static cudaError_t launch_exc_impl(launch_exc_fn real, const cudaLaunchConfig_t *config,
                                   const void *func, void **args)
{
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(config, func, args));
    if (call.depth == 0)
        mc_cuda_record_api(MC_API_CUDA_LAUNCH_KERNEL_EXC, call.t0, call.t1, U64(func),
                           config ? U64(config->stream) : 0,
                           rc == cudaSuccess ? mc_kernel_name_id(func, runtime_func_name) : 0, rc);
    return rc;
}

cudaError_t cudaLaunchKernelExC(const cudaLaunchConfig_t *config, const void *func, void **args)
{
    MC_REAL(launch_exc_fn, real, "cudaLaunchKernelExC");
    return launch_exc_impl(real, config, func, args);
}

cudaError_t cudaLaunchKernelExC_ptsz(const cudaLaunchConfig_t *config, const void *func, void **args);
cudaError_t cudaLaunchKernelExC_ptsz(const cudaLaunchConfig_t *config, const void *func, void **args)
{
    MC_REAL(launch_exc_fn, real, "cudaLaunchKernelExC_ptsz");
    return launch_exc_impl(real, config, func, args);
}

typedef cudaError_t (*graph_launch_fn)(cudaGraphExec_t, cudaStream_t);

static cudaError_t graph_launch_impl(graph_launch_fn real, cudaGraphExec_t graphExec, cudaStream_t stream)
{
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(graphExec, stream));
    if (call.depth == 0)
        mc_cuda_record_api(MC_API_CUDA_GRAPH_LAUNCH, call.t0, call.t1, U64(graphExec), U64(stream), 0, rc);
    return rc;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream)
{
    MC_REAL(graph_launch_fn, real, "cudaGraphLaunch");
    return graph_launch_impl(real, graphExec, stream);
}

cudaError_t cudaGraphLaunch_ptsz(cudaGraphExec_t graphExec, cudaStream_t stream);
cudaError_t cudaGraphLaunch_ptsz(cudaGraphExec_t graphExec, cudaStream_t stream)
{
    MC_REAL(graph_launch_fn, real, "cudaGraphLaunch_ptsz");
    return graph_launch_impl(real, graphExec, stream);
}

/* ---- synchronisation ---- */

typedef cudaError_t (*stream_sync_fn)(cudaStream_t);
typedef cudaError_t (*event_sync_fn)(cudaEvent_t);
typedef cudaError_t (*device_sync_fn)(void);

static cudaError_t stream_sync_impl(stream_sync_fn real, cudaStream_t stream)
{
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(stream));
    if (call.depth == 0) mc_cuda_record_api(MC_API_CUDA_STREAM_SYNC, call.t0, call.t1, U64(stream), 0, 0, rc);
    return rc;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    MC_REAL(stream_sync_fn, real, "cudaStreamSynchronize");
    return stream_sync_impl(real, stream);
}

cudaError_t cudaStreamSynchronize_ptsz(cudaStream_t stream);
cudaError_t cudaStreamSynchronize_ptsz(cudaStream_t stream)
{
    MC_REAL(stream_sync_fn, real, "cudaStreamSynchronize_ptsz");
    return stream_sync_impl(real, stream);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    MC_REAL(event_sync_fn, real, "cudaEventSynchronize");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real(event));
    if (call.depth == 0) mc_cuda_record_api(MC_API_CUDA_EVENT_SYNC, call.t0, call.t1, U64(event), 0, 0, rc);
    return rc;
}

cudaError_t cudaDeviceSynchronize(void)
{
    MC_REAL(device_sync_fn, real, "cudaDeviceSynchronize");
    if (!real) return cudaErrorInitializationError;
    struct mc_cuda_call call;
    cudaError_t rc = (cudaError_t)MC_CUDA_TIMED_CALL(call, real());
    if (call.depth == 0) mc_cuda_record_api(MC_API_CUDA_DEVICE_SYNC, call.t0, call.t1, 0, 0, 0, rc);
    return rc;
}

/* ---- first-use triggers and driver entry points ---- */

typedef cudaError_t (*set_device_fn)(int);

cudaError_t cudaSetDevice(int device)
{
    MC_REAL(set_device_fn, real, "cudaSetDevice");
    if (!real) return cudaErrorInitializationError;
    mc_cuda_first_use();
    return real(device);
}

typedef cudaError_t (*get_count_fn)(int *);

cudaError_t cudaGetDeviceCount(int *count)
{
    MC_REAL(get_count_fn, real, "cudaGetDeviceCount");
    if (!real) return cudaErrorInitializationError;
    mc_cuda_first_use();
    return real(count);
}

typedef cudaError_t (*get_ep_fn)(const char *, void **, unsigned long long,
                                 enum cudaDriverEntryPointQueryResult *);
typedef cudaError_t (*get_ep_ver_fn)(const char *, void **, unsigned int, unsigned long long,
                                     enum cudaDriverEntryPointQueryResult *);

cudaError_t cudaGetDriverEntryPoint(const char *symbol, void **funcPtr, unsigned long long flags,
                                    enum cudaDriverEntryPointQueryResult *driverStatus)
{
    MC_REAL(get_ep_fn, real, "cudaGetDriverEntryPoint");
    if (!real) return cudaErrorInitializationError;
    mc_cuda_first_use();
    cudaError_t e = real(symbol, funcPtr, flags, driverStatus);
    if (e == cudaSuccess && funcPtr && *funcPtr && !(flags & cudaEnablePerThreadDefaultStream))
        *funcPtr = mc_cuda_ep_substitute(symbol, *funcPtr, CUDART_VERSION);
    return e;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **funcPtr,
                                             unsigned int cudaVersion, unsigned long long flags,
                                             enum cudaDriverEntryPointQueryResult *driverStatus)
{
    MC_REAL(get_ep_ver_fn, real, "cudaGetDriverEntryPointByVersion");
    if (!real) return cudaErrorInitializationError;
    mc_cuda_first_use();
    cudaError_t e = real(symbol, funcPtr, cudaVersion, flags, driverStatus);
    if (e == cudaSuccess && funcPtr && *funcPtr && !(flags & cudaEnablePerThreadDefaultStream))
        *funcPtr = mc_cuda_ep_substitute(symbol, *funcPtr, (int)cudaVersion);
    return e;
}
