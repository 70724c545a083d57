/* CUDA driver API interposers: cuInit (first-use trigger), allocations, copies, memsets,
 * launches, graph launches and synchronisations, plus cuGetProcAddress[_v2]: a caller that
 * obtains a driver function through an entry-point query gets our wrapper, which forwards
 * to exactly the function the driver returned (per symbol one forwarding slot; a second,
 * different answer for the same symbol is handed out unwrapped rather than guessed at).
 * Records are written only at CUDA nesting depth 0, so a runtime call that reaches the
 * driver through one of these wrappers is recorded once (by the runtime wrapper). */
#include <cuda.h>
#include <string.h>
#include "shim_core.h"
#include "mc_cuda.h"

#define U64(p) ((uint64_t)(uintptr_t)(p))
#define MC_UNPAREN(...) __VA_ARGS__

/* For each wrapped symbol: the exported wrapper `name` (resolves the next definition) and
 * `ep_name`, the same logic forwarding to the pointer an entry-point query returned. */
#define DRV_WRAP(name, sym, params, args) \
    CUresult name params \
    { \
        MC_REAL(name##_fn, real, sym); \
        if (!real) return CUDA_ERROR_NOT_INITIALIZED; \
        return name##_impl(real, MC_UNPAREN args); \
    } \
    static name##_fn ep_real_##name; \
    static CUresult ep_##name params \
    { \
        name##_fn real = __atomic_load_n(&ep_real_##name, __ATOMIC_ACQUIRE); \
        if (!real) return CUDA_ERROR_NOT_INITIALIZED; \
        return name##_impl(real, MC_UNPAREN args); \
    }

/* Exported per-thread-default-stream twin of an existing wrapper (same impl). */
#define DRV_WRAP_PTSZ(name, sym, params, args) \
    CUresult name##_ptsz params; \
    CUresult name##_ptsz params \
    { \
        MC_REAL(name##_fn, real, sym); \
        if (!real) return CUDA_ERROR_NOT_INITIALIZED; \
        return name##_impl(real, MC_UNPAREN args); \
    }


/* ---- init ---- */

typedef CUresult (*cuInit_fn)(unsigned int);
static CUresult cuInit_impl(cuInit_fn real, unsigned int flags)
{
    mc_cuda_first_use();
    return real(flags);
}
DRV_WRAP(cuInit, "cuInit", (unsigned int flags), (flags))

/* ---- allocations ---- */

typedef CUresult (*cuMemAlloc_v2_fn)(CUdeviceptr *, size_t);
static CUresult cuMemAlloc_v2_impl(cuMemAlloc_v2_fn real, CUdeviceptr *dptr, size_t bytesize)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dptr, bytesize));
    if (call.depth == 0 && rc == CUDA_SUCCESS && dptr)
        mc_cuda_record_alloc(*dptr, bytesize, mc_cuda_current_device(), 0, MC_ALLOC_CU_MEM_ALLOC);
    return rc;
}
DRV_WRAP(cuMemAlloc_v2, "cuMemAlloc_v2", (CUdeviceptr *dptr, size_t bytesize), (dptr, bytesize))

typedef CUresult (*cuMemFree_v2_fn)(CUdeviceptr);
static CUresult cuMemFree_v2_impl(cuMemFree_v2_fn real, CUdeviceptr dptr)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dptr));
    if (call.depth == 0 && rc == CUDA_SUCCESS && dptr)
        mc_cuda_record_alloc(dptr, 0, mc_cuda_current_device(), 1, MC_ALLOC_CU_MEM_ALLOC);
    return rc;
}
DRV_WRAP(cuMemFree_v2, "cuMemFree_v2", (CUdeviceptr dptr), (dptr))

typedef CUresult (*cuMemAllocAsync_fn)(CUdeviceptr *, size_t, CUstream);
static CUresult cuMemAllocAsync_impl(cuMemAllocAsync_fn real, CUdeviceptr *dptr, size_t bytesize,
                                     CUstream hStream)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dptr, bytesize, hStream));
    if (call.depth == 0 && rc == CUDA_SUCCESS && dptr)
        mc_cuda_record_alloc(*dptr, bytesize, mc_cuda_current_device(), 0, MC_ALLOC_CU_MEM_ALLOC_ASYNC);
    return rc;
}
DRV_WRAP(cuMemAllocAsync, "cuMemAllocAsync", (CUdeviceptr *dptr, size_t bytesize, CUstream hStream),
         (dptr, bytesize, hStream))

typedef CUresult (*cuMemFreeAsync_fn)(CUdeviceptr, CUstream);
static CUresult cuMemFreeAsync_impl(cuMemFreeAsync_fn real, CUdeviceptr dptr, CUstream hStream)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dptr, hStream));
    if (call.depth == 0 && rc == CUDA_SUCCESS && dptr)
        mc_cuda_record_alloc(dptr, 0, mc_cuda_current_device(), 1, MC_ALLOC_CU_MEM_ALLOC_ASYNC);
    return rc;
}
DRV_WRAP(cuMemFreeAsync, "cuMemFreeAsync", (CUdeviceptr dptr, CUstream hStream), (dptr, hStream))

/* ---- copies and memsets ---- */

typedef CUresult (*cuMemcpyHtoD_v2_fn)(CUdeviceptr, const void *, size_t);
static CUresult cuMemcpyHtoD_v2_impl(cuMemcpyHtoD_v2_fn real, CUdeviceptr dst, const void *src,
                                     size_t n)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_H2D, n, U64(src), dst, 0, 0, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpyHtoD_v2, "cuMemcpyHtoD_v2", (CUdeviceptr dst, const void *src, size_t n),
         (dst, src, n))

typedef CUresult (*cuMemcpyDtoH_v2_fn)(void *, CUdeviceptr, size_t);
static CUresult cuMemcpyDtoH_v2_impl(cuMemcpyDtoH_v2_fn real, void *dst, CUdeviceptr src, size_t n)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_D2H, n, src, U64(dst), 0, 0, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpyDtoH_v2, "cuMemcpyDtoH_v2", (void *dst, CUdeviceptr src, size_t n), (dst, src, n))

typedef CUresult (*cuMemcpyDtoD_v2_fn)(CUdeviceptr, CUdeviceptr, size_t);
static CUresult cuMemcpyDtoD_v2_impl(cuMemcpyDtoD_v2_fn real, CUdeviceptr dst, CUdeviceptr src,
                                     size_t n)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_D2D, n, src, dst, 0, 0, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpyDtoD_v2, "cuMemcpyDtoD_v2", (CUdeviceptr dst, CUdeviceptr src, size_t n),
         (dst, src, n))

typedef CUresult (*cuMemcpyHtoDAsync_v2_fn)(CUdeviceptr, const void *, size_t, CUstream);
static CUresult cuMemcpyHtoDAsync_v2_impl(cuMemcpyHtoDAsync_v2_fn real, CUdeviceptr dst,
                                          const void *src, size_t n, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n, s));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_H2D, n, U64(src), dst, U64(s), 1, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpyHtoDAsync_v2, "cuMemcpyHtoDAsync_v2",
         (CUdeviceptr dst, const void *src, size_t n, CUstream s), (dst, src, n, s))

typedef CUresult (*cuMemcpyDtoHAsync_v2_fn)(void *, CUdeviceptr, size_t, CUstream);
static CUresult cuMemcpyDtoHAsync_v2_impl(cuMemcpyDtoHAsync_v2_fn real, void *dst, CUdeviceptr src,
                                          size_t n, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n, s));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_D2H, n, src, U64(dst), U64(s), 1, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpyDtoHAsync_v2, "cuMemcpyDtoHAsync_v2",
         (void *dst, CUdeviceptr src, size_t n, CUstream s), (dst, src, n, s))

typedef CUresult (*cuMemcpyDtoDAsync_v2_fn)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
static CUresult cuMemcpyDtoDAsync_v2_impl(cuMemcpyDtoDAsync_v2_fn real, CUdeviceptr dst,
                                          CUdeviceptr src, size_t n, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n, s));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_D2D, n, src, dst, U64(s), 1, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpyDtoDAsync_v2, "cuMemcpyDtoDAsync_v2",
         (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s), (dst, src, n, s))

/* Unified-address copies: direction unknown without pointer queries (kind UNKNOWN). */
typedef CUresult (*cuMemcpy_fn)(CUdeviceptr, CUdeviceptr, size_t);
static CUresult cuMemcpy_impl(cuMemcpy_fn real, CUdeviceptr dst, CUdeviceptr src, size_t n)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_UNKNOWN, n, src, dst, 0, 0, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpy, "cuMemcpy", (CUdeviceptr dst, CUdeviceptr src, size_t n), (dst, src, n))

typedef CUresult (*cuMemcpyAsync_fn)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
static CUresult cuMemcpyAsync_impl(cuMemcpyAsync_fn real, CUdeviceptr dst, CUdeviceptr src,
                                   size_t n, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, src, n, s));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_COPY_UNKNOWN, n, src, dst, U64(s), 1, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemcpyAsync, "cuMemcpyAsync", (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s),
         (dst, src, n, s))

typedef CUresult (*cuMemsetD8_v2_fn)(CUdeviceptr, unsigned char, size_t);
static CUresult cuMemsetD8_v2_impl(cuMemsetD8_v2_fn real, CUdeviceptr dst, unsigned char v, size_t n)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, v, n));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_MEMSET, n, 0, dst, 0, 0, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemsetD8_v2, "cuMemsetD8_v2", (CUdeviceptr dst, unsigned char v, size_t n), (dst, v, n))

typedef CUresult (*cuMemsetD32_v2_fn)(CUdeviceptr, unsigned int, size_t);
static CUresult cuMemsetD32_v2_impl(cuMemsetD32_v2_fn real, CUdeviceptr dst, unsigned int v, size_t n)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, v, n));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_MEMSET, 4 * (uint64_t)n, 0, dst, 0, 0, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemsetD32_v2, "cuMemsetD32_v2", (CUdeviceptr dst, unsigned int v, size_t n), (dst, v, n))

typedef CUresult (*cuMemsetD8Async_fn)(CUdeviceptr, unsigned char, size_t, CUstream);
static CUresult cuMemsetD8Async_impl(cuMemsetD8Async_fn real, CUdeviceptr dst, unsigned char v,
                                     size_t n, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, v, n, s));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_MEMSET, n, 0, dst, U64(s), 1, mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemsetD8Async, "cuMemsetD8Async",
         (CUdeviceptr dst, unsigned char v, size_t n, CUstream s), (dst, v, n, s))

typedef CUresult (*cuMemsetD32Async_fn)(CUdeviceptr, unsigned int, size_t, CUstream);
static CUresult cuMemsetD32Async_impl(cuMemsetD32Async_fn real, CUdeviceptr dst, unsigned int v,
                                      size_t n, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(dst, v, n, s));
    if (call.depth == 0 && rc == CUDA_SUCCESS)
        mc_cuda_record_copy(call.t0, call.t1, MC_MEMSET, 4 * (uint64_t)n, 0, dst, U64(s), 1,
                            mc_cuda_current_device());
    return rc;
}
DRV_WRAP(cuMemsetD32Async, "cuMemsetD32Async",
         (CUdeviceptr dst, unsigned int v, size_t n, CUstream s), (dst, v, n, s))

/* ---- launches ---- */

typedef CUresult (*func_name_fn)(const char **, CUfunction);

static int driver_func_name(const void *f, const char **name)
{
    MC_REAL(func_name_fn, real, "cuFuncGetName");
    if (!real) return -1;
    return real(name, (CUfunction)(uintptr_t)f) == CUDA_SUCCESS ? 0 : -1;
}

typedef CUresult (*cuLaunchKernel_fn)(CUfunction, unsigned int, unsigned int, unsigned int,
    unsigned int, unsigned int, unsigned int, unsigned int, CUstream, void **, void **);
static CUresult cuLaunchKernel_impl(cuLaunchKernel_fn real, CUfunction f, unsigned int gx,
    unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz,
    unsigned int shmem, CUstream s, void **params, void **extra)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra));
    if (call.depth == 0)
        mc_cuda_record_api(MC_API_CU_LAUNCH_KERNEL, call.t0, call.t1, U64(f), U64(s),
                           rc == CUDA_SUCCESS ? mc_kernel_name_id(f, driver_func_name) : 0, rc);
    return rc;
}
DRV_WRAP(cuLaunchKernel, "cuLaunchKernel",
         (CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
          unsigned int by, unsigned int bz, unsigned int shmem, CUstream s, void **params,
          void **extra),
         (f, gx, gy, gz, bx, by, bz, shmem, s, params, extra))

typedef CUresult (*cuLaunchKernelEx_fn)(const CUlaunchConfig *, CUfunction, void **, void **);
static CUresult cuLaunchKernelEx_impl(cuLaunchKernelEx_fn real, const CUlaunchConfig *config,
                                      CUfunction f, void **params, void **extra)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(config, f, params, extra));
    if (call.depth == 0)
        mc_cuda_record_api(MC_API_CU_LAUNCH_KERNEL_EX, call.t0, call.t1, U64(f),
                           config ? U64(config->hStream) : 0,
                           rc == CUDA_SUCCESS ? mc_kernel_name_id(f, driver_func_name) : 0, rc);
    return rc;
}
DRV_WRAP(cuLaunchKernelEx, "cuLaunchKernelEx",
         (const CUlaunchConfig *config, CUfunction f, void **params, void **extra),
         (config, f, params, extra))

typedef CUresult (*cuGraphLaunch_fn)(CUgraphExec, CUstream);
static CUresult cuGraphLaunch_impl(cuGraphLaunch_fn real, CUgraphExec g, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(g, s));
    if (call.depth == 0) mc_cuda_record_api(MC_API_CU_GRAPH_LAUNCH, call.t0, call.t1, U64(g), U64(s), 0, rc);
    return rc;
}
DRV_WRAP(cuGraphLaunch, "cuGraphLaunch", (CUgraphExec g, CUstream s), (g, s))

/* ---- synchronisation ---- */

typedef CUresult (*cuStreamSynchronize_fn)(CUstream);
static CUresult cuStreamSynchronize_impl(cuStreamSynchronize_fn real, CUstream s)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(s));
    if (call.depth == 0) mc_cuda_record_api(MC_API_CU_STREAM_SYNC, call.t0, call.t1, U64(s), 0, 0, rc);
    return rc;
}
DRV_WRAP(cuStreamSynchronize, "cuStreamSynchronize", (CUstream s), (s))

typedef CUresult (*cuEventSynchronize_fn)(CUevent);
static CUresult cuEventSynchronize_impl(cuEventSynchronize_fn real, CUevent ev)
{
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real(ev));
    if (call.depth == 0) mc_cuda_record_api(MC_API_CU_EVENT_SYNC, call.t0, call.t1, U64(ev), 0, 0, rc);
    return rc;
}
DRV_WRAP(cuEventSynchronize, "cuEventSynchronize", (CUevent ev), (ev))

typedef CUresult (*cuCtxSynchronize_fn)(void);
static CUresult cuCtxSynchronize_impl(cuCtxSynchronize_fn real, int unused)
{
    (void)unused;
    struct mc_cuda_call call;
    CUresult rc = (CUresult)MC_CUDA_TIMED_CALL(call, real());
    if (call.depth == 0) mc_cuda_record_api(MC_API_CU_CTX_SYNC, call.t0, call.t1, 0, 0, 0, rc);
    return rc;
}
CUresult cuCtxSynchronize(void)
{
    MC_REAL(cuCtxSynchronize_fn, real, "cuCtxSynchronize");
    if (!real) return CUDA_ERROR_NOT_INITIALIZED;
    return cuCtxSynchronize_impl(real, 0);
}
static cuCtxSynchronize_fn ep_real_cuCtxSynchronize;
static CUresult ep_cuCtxSynchronize(void)
{
    cuCtxSynchronize_fn real = __atomic_load_n(&ep_real_cuCtxSynchronize, __ATOMIC_ACQUIRE);
    if (!real) return CUDA_ERROR_NOT_INITIALIZED;
    return cuCtxSynchronize_impl(real, 0);
}

/* ---- per-thread default stream twins (code built with --default-stream per-thread) ---- */

DRV_WRAP_PTSZ(cuLaunchKernel, "cuLaunchKernel_ptsz",
              (CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
               unsigned int by, unsigned int bz, unsigned int shmem, CUstream s, void **params,
               void **extra),
              (f, gx, gy, gz, bx, by, bz, shmem, s, params, extra))
DRV_WRAP_PTSZ(cuLaunchKernelEx, "cuLaunchKernelEx_ptsz",
              (const CUlaunchConfig *config, CUfunction f, void **params, void **extra),
              (config, f, params, extra))
DRV_WRAP_PTSZ(cuGraphLaunch, "cuGraphLaunch_ptsz", (CUgraphExec g, CUstream s), (g, s))
DRV_WRAP_PTSZ(cuStreamSynchronize, "cuStreamSynchronize_ptsz", (CUstream s), (s))
DRV_WRAP_PTSZ(cuMemcpyAsync, "cuMemcpyAsync_ptsz", (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s),
              (dst, src, n, s))
DRV_WRAP_PTSZ(cuMemcpyHtoDAsync_v2, "cuMemcpyHtoDAsync_v2_ptsz",
              (CUdeviceptr dst, const void *src, size_t n, CUstream s), (dst, src, n, s))
DRV_WRAP_PTSZ(cuMemcpyDtoHAsync_v2, "cuMemcpyDtoHAsync_v2_ptsz",
              (void *dst, CUdeviceptr src, size_t n, CUstream s), (dst, src, n, s))

/* ---- entry-point queries ---- */

typedef CUresult (*cuGetProcAddress_v2_fn)(const char *, void **, int, cuuint64_t,
                                           CUdriverProcAddressQueryResult *);
typedef CUresult (*cuGetProcAddress_legacy_fn)(const char *, void **, int, cuuint64_t);
static cuGetProcAddress_v2_fn ep_real_gpa_v2;
static cuGetProcAddress_legacy_fn ep_real_gpa_legacy;
static CUresult ep_gpa_v2(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
static CUresult ep_gpa_legacy(const char *, void **, int, cuuint64_t);

struct ep_entry {
    const char *symbol;
    int min_version;    /* the ABI our wrapper has exists from this CUDA version on */
    int max_version;    /* ... up to this one (exclusive), 0 = open */
    void *wrapper;
    void **slot;        /* where the wrapper finds the real function */
};

#define EP(sym, minv, maxv, wrap, slot) { sym, minv, maxv, (void *)(wrap), (void **)(slot) }
static const struct ep_entry ep_table[] = {
    EP("cuInit", 2000, 0, ep_cuInit, &ep_real_cuInit),
    EP("cuMemAlloc", 3020, 0, ep_cuMemAlloc_v2, &ep_real_cuMemAlloc_v2),
    EP("cuMemFree", 3020, 0, ep_cuMemFree_v2, &ep_real_cuMemFree_v2),
    EP("cuMemAllocAsync", 11020, 0, ep_cuMemAllocAsync, &ep_real_cuMemAllocAsync),
    EP("cuMemFreeAsync", 11020, 0, ep_cuMemFreeAsync, &ep_real_cuMemFreeAsync),
    EP("cuMemcpyHtoD", 3020, 0, ep_cuMemcpyHtoD_v2, &ep_real_cuMemcpyHtoD_v2),
    EP("cuMemcpyDtoH", 3020, 0, ep_cuMemcpyDtoH_v2, &ep_real_cuMemcpyDtoH_v2),
    EP("cuMemcpyDtoD", 3020, 0, ep_cuMemcpyDtoD_v2, &ep_real_cuMemcpyDtoD_v2),
    EP("cuMemcpyHtoDAsync", 3020, 0, ep_cuMemcpyHtoDAsync_v2, &ep_real_cuMemcpyHtoDAsync_v2),
    EP("cuMemcpyDtoHAsync", 3020, 0, ep_cuMemcpyDtoHAsync_v2, &ep_real_cuMemcpyDtoHAsync_v2),
    EP("cuMemcpyDtoDAsync", 3020, 0, ep_cuMemcpyDtoDAsync_v2, &ep_real_cuMemcpyDtoDAsync_v2),
    EP("cuMemcpy", 4000, 0, ep_cuMemcpy, &ep_real_cuMemcpy),
    EP("cuMemcpyAsync", 4000, 0, ep_cuMemcpyAsync, &ep_real_cuMemcpyAsync),
    EP("cuMemsetD8", 3020, 0, ep_cuMemsetD8_v2, &ep_real_cuMemsetD8_v2),
    EP("cuMemsetD32", 3020, 0, ep_cuMemsetD32_v2, &ep_real_cuMemsetD32_v2),
    EP("cuMemsetD8Async", 3020, 0, ep_cuMemsetD8Async, &ep_real_cuMemsetD8Async),
    EP("cuMemsetD32Async", 3020, 0, ep_cuMemsetD32Async, &ep_real_cuMemsetD32Async),
    EP("cuLaunchKernel", 4000, 0, ep_cuLaunchKernel, &ep_real_cuLaunchKernel),
    EP("cuLaunchKernelEx", 11060, 0, ep_cuLaunchKernelEx, &ep_real_cuLaunchKernelEx),
    EP("cuGraphLaunch", 10000, 0, ep_cuGraphLaunch, &ep_real_cuGraphLaunch),
    EP("cuStreamSynchronize", 2000, 0, ep_cuStreamSynchronize, &ep_real_cuStreamSynchronize),
    EP("cuEventSynchronize", 2000, 0, ep_cuEventSynchronize, &ep_real_cuEventSynchronize),
    EP("cuCtxSynchronize", 2000, 0, ep_cuCtxSynchronize, &ep_real_cuCtxSynchronize),
    EP("cuGetProcAddress", 12000, 0, ep_gpa_v2, &ep_real_gpa_v2),
    EP("cuGetProcAddress", 11030, 12000, ep_gpa_legacy, &ep_real_gpa_legacy),
};

void *mc_cuda_ep_substitute(const char *symbol, void *pfn, int cuda_version)
{
    if (!symbol || !pfn) return pfn;
    for (size_t i = 0; i < sizeof ep_table / sizeof ep_table[0]; i++) {
        const struct ep_entry *e = &ep_table[i];
        if (strcmp(e->symbol, symbol) != 0) continue;
        if (cuda_version < e->min_version || (e->max_version && cuda_version >= e->max_version))
            continue;
        void *expect = NULL;
        if (__atomic_compare_exchange_n(e->slot, &expect, pfn, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE) || expect == pfn)
            return e->wrapper;
        return pfn;   /* a different function already owns the slot: do not guess */
    }
    return pfn;
}

static CUresult gpa_v2_impl(cuGetProcAddress_v2_fn real, const char *symbol, void **pfn,
                            int cudaVersion, cuuint64_t flags,
                            CUdriverProcAddressQueryResult *status)
{
    mc_cuda_first_use();
    CUresult e = real(symbol, pfn, cudaVersion, flags, status);
    if (e == CUDA_SUCCESS && pfn && *pfn && !(flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM))
        *pfn = mc_cuda_ep_substitute(symbol, *pfn, cudaVersion);
    return e;
}

static CUresult gpa_legacy_impl(cuGetProcAddress_legacy_fn real, const char *symbol, void **pfn,
                                int cudaVersion, cuuint64_t flags)
{
    mc_cuda_first_use();
    CUresult e = real(symbol, pfn, cudaVersion, flags);
    if (e == CUDA_SUCCESS && pfn && *pfn && !(flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM))
        *pfn = mc_cuda_ep_substitute(symbol, *pfn, cudaVersion);
    return e;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus)
{
    MC_REAL(cuGetProcAddress_v2_fn, real, "cuGetProcAddress_v2");
    if (!real) return CUDA_ERROR_NOT_INITIALIZED;
    return gpa_v2_impl(real, symbol, pfn, cudaVersion, flags, symbolStatus);
}

static CUresult ep_gpa_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                          CUdriverProcAddressQueryResult *symbolStatus)
{
    cuGetProcAddress_v2_fn real = __atomic_load_n(&ep_real_gpa_v2, __ATOMIC_ACQUIRE);
    if (!real) return CUDA_ERROR_NOT_INITIALIZED;
    return gpa_v2_impl(real, symbol, pfn, cudaVersion, flags, symbolStatus);
}

/* The pre-12.0 ABI, still exported by libcuda under the plain name. */
#undef cuGetProcAddress
CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);
CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    MC_REAL(cuGetProcAddress_legacy_fn, real, "cuGetProcAddress");
    if (!real) return CUDA_ERROR_NOT_INITIALIZED;
    return gpa_legacy_impl(real, symbol, pfn, cudaVersion, flags);
}

static CUresult ep_gpa_legacy(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    cuGetProcAddress_legacy_fn real = __atomic_load_n(&ep_real_gpa_legacy, __ATOMIC_ACQUIRE);
    if (!real) return CUDA_ERROR_NOT_INITIALIZED;
    return gpa_legacy_impl(real, symbol, pfn, cudaVersion, flags);
}
