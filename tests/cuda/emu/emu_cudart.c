/* Emulated CUDA runtime (built as libcudart.so.13, the real soname, so a preloaded
 * libmoecap.so finds it with mc_resolve_next exactly as it finds the real one): the subset
 * the reference engine and the shim's CUDA wrappers use, on the CPU.
 *
 * - Device memory is host memory in its own mapping (guard pages before and after, 256-byte
 *   aligned, filled with 0xFF bytes = NaN / -1 so reads of uninitialised memory show up).
 * - Copies and memsets check their kind against the pointers (a host->device copy whose
 *   destination is not inside one device allocation fails with cudaErrorInvalidValue and
 *   says why on stderr), as do frees. Outside kernels, copies and cuBLAS calls device pages
 *   are PROT_NONE: host code that touches device memory faults, with a message.
 * - cudaLaunchKernel (and __cudaLaunchKernel, nvcc 13's path) runs a kernel registered by simt_emu.h's launch: blocks one after
 *   another, each block's threads as fibers (small reused stacks, with ASan's
 *   fiber-switch annotations), so __syncthreads and warp shuffles have their GPU meaning.
 *   Barrier misuse (threads of a block waiting at different barriers, a shuffle whose mask
 *   names exited or absent lanes) aborts with a message: on a GPU it is undefined.
 * - Everything is synchronous: streams, events and host functions run in call order.
 * - Test hooks: SIMT_EMU_ORDER=reverse, SIMT_EMU_FAIL=WHAT:N, SIMT_EMU_STATS=FILE. */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include "simt_emu_api.h"
#include "simt_emu_trace.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

#define PAGE 4096u
#define EMU_API __attribute__((visibility("default")))

/* ---- errors ---- */

static __thread cudaError_t last_error;     /* per thread, as the runtime keeps it */
/* A faulting kernel (here: an injected one) leaves the context unusable: every later call
 * returns its error, as on a GPU, so an engine that checks any later call sees it. */
static cudaError_t sticky_error;
#define STICKY() do { if (sticky_error) return last_error = sticky_error; } while (0)

static cudaError_t fail(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cudaError_t fail(cudaError_t e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("simt_emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    last_error = e;
    return e;
}

EMU_API void simt_emu_set_error(int e) { last_error = (cudaError_t)e; }

/* ---- fault injection (SIMT_EMU_FAIL=WHAT:N) and call counts ---- */

static const char *const fault_names[] = { "cudaMalloc", "cudaMemcpy", "cudaMemset", "launch", "cublas" };
#define NFAULT (sizeof fault_names / sizeof *fault_names)
static unsigned long long fault_calls[NFAULT];

EMU_API int simt_emu_inject_fault(const char *what)
{
    static int parsed;
    static char target[32];
    static unsigned long long at;
    if (!parsed) {
        const char *e = getenv("SIMT_EMU_FAIL");
        const char *colon = e ? strchr(e, ':') : NULL;
        if (colon && (size_t)(colon - e) < sizeof target) {
            memcpy(target, e, (size_t)(colon - e));
            at = strtoull(colon + 1, NULL, 10);
        }
        parsed = 1;
    }
    for (size_t i = 0; i < NFAULT; i++)
        if (!strcmp(what, fault_names[i])) {
            unsigned long long n = __atomic_add_fetch(&fault_calls[i], 1, __ATOMIC_RELAXED);
            return at && n == at && !strcmp(target, what);
        }
    return 0;
}

EMU_API cudaError_t cudaGetLastError(void)
{
    cudaError_t e = sticky_error ? sticky_error : last_error;
    last_error = cudaSuccess;
    return e;
}

EMU_API int simt_emu_sticky_error(void) { return (int)sticky_error; }

EMU_API cudaError_t cudaPeekAtLastError(void) { return sticky_error ? sticky_error : last_error; }

EMU_API const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaErrorUnknown";
    }
}

EMU_API const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "unknown error";
    }
}

/* ---- device and host allocations ---- */

struct alloc {
    uintptr_t ptr, size;       /* what the program sees */
    void *map;                 /* device: the mapping incl. guard pages; host: malloc block */
    size_t map_len;
    int device;                /* 1 device memory, 0 pinned host memory */
    char *body;                /* device: the pages between the guard pages */
    size_t body_len;
};

static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct alloc *allocs;   /* sorted by ptr */
static size_t nallocs, cap_allocs;

/* Index of the allocation containing p (or -1). Caller holds alloc_lock. */
static long find_alloc(uintptr_t p)
{
    size_t lo = 0, hi = nallocs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (allocs[mid].ptr <= p) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return -1;
    struct alloc *a = &allocs[lo - 1];
    /* a zero-size allocation still owns its start address */
    return (p < a->ptr + (a->size ? a->size : 1)) ? (long)(lo - 1) : -1;
}

static int add_alloc(struct alloc a)
{
    pthread_mutex_lock(&alloc_lock);
    if (nallocs == cap_allocs) {
        size_t cap = cap_allocs ? cap_allocs * 2 : 256;
        struct alloc *v = realloc(allocs, cap * sizeof *v);
        if (!v) { pthread_mutex_unlock(&alloc_lock); return -1; }
        allocs = v;
        cap_allocs = cap;
    }
    size_t at = 0;
    while (at < nallocs && allocs[at].ptr < a.ptr) at++;
    memmove(&allocs[at + 1], &allocs[at], (nallocs - at) * sizeof *allocs);
    allocs[at] = a;
    nallocs++;
    pthread_mutex_unlock(&alloc_lock);
    return 0;
}

/* Device memory is not host-accessible on a GPU: outside kernels, cuBLAS calls, copies and
 * memsets its pages are PROT_NONE, so engine host code that dereferences a device pointer
 * faults here as it would (with a message, see on_segv) instead of working by accident.
 * SIMT_EMU_PROTECT=0 leaves device memory accessible. */
static int access_depth;

static int protect_enabled(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("SIMT_EMU_PROTECT");
        on = !(e && !strcmp(e, "0"));
    }
    return on;
}

/* Caller holds alloc_lock. */
static void set_access_locked(int on)
{
    for (size_t i = 0; i < nallocs; i++)
        if (allocs[i].device) mprotect(allocs[i].body, allocs[i].body_len, on ? PROT_READ | PROT_WRITE : PROT_NONE);
}

EMU_API void simt_emu_device_access(int on)
{
    if (!protect_enabled()) return;
    pthread_mutex_lock(&alloc_lock);
    if (on ? access_depth++ == 0 : --access_depth == 0) set_access_locked(on);
    pthread_mutex_unlock(&alloc_lock);
}

EMU_API void simt_emu_device_access_ptrs(const void *const *ptrs, int n, int on)
{
    if (!protect_enabled()) return;
    pthread_mutex_lock(&alloc_lock);
    if (access_depth == 0)   /* inside a whole-memory opening everything is open already */
        for (int i = 0; i < n; i++) {
            long j = ptrs[i] ? find_alloc((uintptr_t)ptrs[i]) : -1;
            if (j >= 0 && allocs[j].device)
                mprotect(allocs[j].body, allocs[j].body_len, on ? PROT_READ | PROT_WRITE : PROT_NONE);
        }
    pthread_mutex_unlock(&alloc_lock);
}

/* What [p, p + n) is: 1 inside one device allocation, 0 not device memory at all,
 * -1 starts in device memory but runs past the allocation's end. */
static int classify(const void *p, size_t n)
{
    pthread_mutex_lock(&alloc_lock);
    long i = find_alloc((uintptr_t)p);
    int r = 0;
    if (i >= 0 && allocs[i].device)
        r = (uintptr_t)p + n <= allocs[i].ptr + allocs[i].size ? 1 : -1;
    pthread_mutex_unlock(&alloc_lock);
    return r;
}

EMU_API int simt_emu_is_device_range(const void *p, size_t bytes) { return classify(p, bytes) == 1; }

static cudaError_t device_alloc(void **out, size_t size)
{
    STICKY();
    if (!out) return fail(cudaErrorInvalidValue, "cudaMalloc: NULL result pointer");
    *out = NULL;
    if (size == 0) return cudaSuccess;
    if (simt_emu_inject_fault("cudaMalloc"))
        return fail(cudaErrorMemoryAllocation, "cudaMalloc(%zu): injected failure (SIMT_EMU_FAIL)", size);
    size_t body = (size + 255) & ~(size_t)255;
    size_t pages = (body + PAGE - 1) / PAGE;
    size_t len = (pages + 2) * PAGE;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation, "cudaMalloc(%zu): out of memory", size);
    mprotect(m, PAGE, PROT_NONE);
    mprotect(m + (pages + 1) * PAGE, PAGE, PROT_NONE);
    /* the allocation ends at the trailing guard page (to 256 bytes): overruns fault */
    char *p = m + (pages + 1) * PAGE - body;
    memset(p, 0xFF, size);
#if EMU_ASAN
    /* the < 256-byte tail before the guard page: ASan reports even a 1-byte overrun */
    if (body > size) __asan_poison_memory_region(p + size, body - size);
#endif
    struct alloc a = { (uintptr_t)p, size, m, len, 1, m + PAGE, pages * PAGE };
    pthread_mutex_lock(&alloc_lock);
    if (protect_enabled() && access_depth == 0) mprotect(a.body, a.body_len, PROT_NONE);
    pthread_mutex_unlock(&alloc_lock);
    if (add_alloc(a) != 0) {
        munmap(m, len);
        return fail(cudaErrorMemoryAllocation, "cudaMalloc(%zu): out of memory", size);
    }
    *out = p;
    return cudaSuccess;
}

static cudaError_t release(void *p, int device, const char *what)
{
    STICKY();
    if (!p) return cudaSuccess;
    pthread_mutex_lock(&alloc_lock);
    long i = find_alloc((uintptr_t)p);
    if (i < 0 || allocs[i].ptr != (uintptr_t)p || allocs[i].device != device) {
        pthread_mutex_unlock(&alloc_lock);
        return fail(cudaErrorInvalidValue, "%s(%p): not the start of a live %s allocation", what, p,
                    device ? "device" : "pinned host");
    }
    struct alloc a = allocs[i];
    memmove(&allocs[i], &allocs[i + 1], (nallocs - (size_t)i - 1) * sizeof *allocs);
    nallocs--;
    pthread_mutex_unlock(&alloc_lock);
#if EMU_ASAN
    if (device) __asan_unpoison_memory_region(a.map, a.map_len);   /* the addresses get reused */
#endif
    if (device) munmap(a.map, a.map_len);
    else free(a.map);
    return cudaSuccess;
}

EMU_API cudaError_t cudaMalloc(void **devPtr, size_t size) { return device_alloc(devPtr, size); }
EMU_API cudaError_t cudaFree(void *devPtr) { return release(devPtr, 1, "cudaFree"); }
EMU_API cudaError_t cudaMallocAsync(void **devPtr, size_t size, cudaStream_t s) { (void)s; return device_alloc(devPtr, size); }
EMU_API cudaError_t cudaFreeAsync(void *devPtr, cudaStream_t s) { (void)s; return release(devPtr, 1, "cudaFreeAsync"); }

EMU_API cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags)
{
    (void)flags;
    if (!pHost) return fail(cudaErrorInvalidValue, "cudaHostAlloc: NULL result pointer");
    void *p = NULL;
    if (posix_memalign(&p, 256, size ? size : 1) != 0)
        return fail(cudaErrorMemoryAllocation, "cudaHostAlloc(%zu): out of memory", size);
    struct alloc a = { (uintptr_t)p, size, p, size, 0, NULL, 0 };
    if (add_alloc(a) != 0) { free(p); return fail(cudaErrorMemoryAllocation, "cudaHostAlloc: out of memory"); }
    *pHost = p;
    return cudaSuccess;
}

EMU_API cudaError_t cudaMallocHost(void **ptr, size_t size) { return cudaHostAlloc(ptr, size, 0); }
EMU_API cudaError_t cudaFreeHost(void *ptr) { return release(ptr, 0, "cudaFreeHost"); }

EMU_API cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attr, const void *ptr)
{
    if (!attr) return fail(cudaErrorInvalidValue, "cudaPointerGetAttributes: NULL attributes");
    memset(attr, 0, sizeof *attr);
    pthread_mutex_lock(&alloc_lock);
    long i = find_alloc((uintptr_t)ptr);
    int dev = i >= 0 ? allocs[i].device : -1;
    pthread_mutex_unlock(&alloc_lock);
    if (dev == 1) {
        attr->type = cudaMemoryTypeDevice;
        attr->device = 0;
        attr->devicePointer = (void *)ptr;
    } else if (dev == 0) {
        attr->type = cudaMemoryTypeHost;
        attr->device = 0;
        attr->devicePointer = (void *)ptr;
        attr->hostPointer = (void *)ptr;
    } else {
        attr->type = cudaMemoryTypeUnregistered;
        attr->device = -2;
        attr->hostPointer = (void *)ptr;
    }
    return cudaSuccess;
}

/* ---- tracing hook (simt_emu_trace.h): the emulated CUPTI wraps calls in API records ---- */

static const struct simt_emu_tracer *tracer;

EMU_API void simt_emu_set_tracer(const struct simt_emu_tracer *t) { __atomic_store_n(&tracer, t, __ATOMIC_RELEASE); }

EMU_API cudaError_t simt_emu_traced(const struct simt_emu_call *c, simt_emu_run_fn run, void *ctx)
{
    const struct simt_emu_tracer *t = __atomic_load_n(&tracer, __ATOMIC_ACQUIRE);
    return t ? t->call(c, run, ctx) : run(ctx);
}

/* ---- copies and memsets ---- */

static const char *kind_name(enum cudaMemcpyKind k)
{
    switch (k) {
    case cudaMemcpyHostToHost: return "HostToHost";
    case cudaMemcpyHostToDevice: return "HostToDevice";
    case cudaMemcpyDeviceToHost: return "DeviceToHost";
    case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
    case cudaMemcpyDefault: return "Default";
    default: return "invalid";
    }
}

static cudaError_t copy(const char *api, void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    STICKY();
    if (n == 0) return cudaSuccess;
    if (!dst || !src) return fail(cudaErrorInvalidValue, "%s(%s): NULL pointer", api, kind_name(kind));
    if (simt_emu_inject_fault("cudaMemcpy"))
        return fail(cudaErrorInvalidValue, "%s(%s): injected failure (SIMT_EMU_FAIL)", api, kind_name(kind));
    int d = classify(dst, n), s = classify(src, n);
    if (d < 0) return fail(cudaErrorInvalidValue, "%s(%s, %zu bytes): destination %p runs past its device allocation",
                           api, kind_name(kind), n, dst);
    if (s < 0) return fail(cudaErrorInvalidValue, "%s(%s, %zu bytes): source %p runs past its device allocation",
                           api, kind_name(kind), n, src);
    int want_d, want_s;
    switch (kind) {
    case cudaMemcpyHostToHost: want_s = 0; want_d = 0; break;
    case cudaMemcpyHostToDevice: want_s = 0; want_d = 1; break;
    case cudaMemcpyDeviceToHost: want_s = 1; want_d = 0; break;
    case cudaMemcpyDeviceToDevice: want_s = 1; want_d = 1; break;
    case cudaMemcpyDefault: want_s = s; want_d = d; break;
    default: return fail(cudaErrorInvalidMemcpyDirection, "%s: invalid kind %d", api, (int)kind);
    }
    if (d != want_d)
        return fail(cudaErrorInvalidValue, "%s(%s, %zu bytes): destination %p is %s memory", api, kind_name(kind), n,
                    dst, d ? "device" : "host (not device)");
    if (s != want_s)
        return fail(cudaErrorInvalidValue, "%s(%s, %zu bytes): source %p is %s memory", api, kind_name(kind), n, src,
                    s ? "device" : "host (not device)");
    const void *ends[2] = { dst, src };
    simt_emu_device_access_ptrs(ends, 2, 1);
    memmove(dst, src, n);
    simt_emu_device_access_ptrs(ends, 2, 0);
    return cudaSuccess;
}

struct copy_call { const char *api; void *dst; const void *src; size_t n; enum cudaMemcpyKind kind; };
static cudaError_t copy_run(void *p) { struct copy_call *a = p; return copy(a->api, a->dst, a->src, a->n, a->kind); }

/* A copy as the tracer sees it: the driver entry point the runtime goes through per direction. */
static cudaError_t traced_copy(const char *api, void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                               int async, cudaStream_t stream)
{
    struct copy_call a = { api, dst, src, n, kind };
    if (!__atomic_load_n(&tracer, __ATOMIC_ACQUIRE)) return copy_run(&a);
    int k = (int)kind;
    if (kind == cudaMemcpyDefault) {
        int d = classify(dst, n) == 1, s = classify(src, n) == 1;
        k = s ? (d ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost) : (d ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
    }
    static const char *const drv[2][4] = {
        { "cuMemcpy", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemcpyDtoD_v2" },
        { "cuMemcpyAsync", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoDAsync_v2" } };
    struct simt_emu_call c = { .what = SIMT_EMU_CALL_COPY, .runtime_api = api,
                               .driver_api = drv[async != 0][k >= 0 && k < 4 ? k : 0], .copy_kind = k, .bytes = n,
                               .async = async, .stream = stream };
    return simt_emu_traced(&c, copy_run, &a);
}

EMU_API cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind)
{
    return traced_copy("cudaMemcpy", dst, src, count, kind, 0, 0);
}

EMU_API cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                                    cudaStream_t stream)
{
    return traced_copy("cudaMemcpyAsync", dst, src, count, kind, 1, stream);
}

static cudaError_t set(const char *api, void *p, int value, size_t n)
{
    STICKY();
    if (n == 0) return cudaSuccess;
    if (simt_emu_inject_fault("cudaMemset"))
        return fail(cudaErrorInvalidValue, "%s: injected failure (SIMT_EMU_FAIL)", api);
    if (classify(p, n) != 1)
        return fail(cudaErrorInvalidValue, "%s(%p, %zu bytes): not inside one device allocation", api, p, n);
    const void *one[1] = { p };
    simt_emu_device_access_ptrs(one, 1, 1);
    memset(p, value, n);
    simt_emu_device_access_ptrs(one, 1, 0);
    return cudaSuccess;
}

struct set_call { const char *api; void *p; int value; size_t n; };
static cudaError_t set_run(void *x) { struct set_call *a = x; return set(a->api, a->p, a->value, a->n); }

static cudaError_t traced_set(const char *api, void *p, int value, size_t n, int async, cudaStream_t s)
{
    struct set_call a = { api, p, value, n };
    struct simt_emu_call c = { .what = SIMT_EMU_CALL_SET, .runtime_api = api,
                               .driver_api = async ? "cuMemsetD8Async" : "cuMemsetD8_v2", .bytes = n,
                               .async = async, .stream = s };
    return simt_emu_traced(&c, set_run, &a);
}

EMU_API cudaError_t cudaMemset(void *devPtr, int value, size_t count)
{
    return traced_set("cudaMemset", devPtr, value, count, 0, 0);
}
EMU_API cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t s)
{
    return traced_set("cudaMemsetAsync", devPtr, value, count, 1, s);
}

/* ---- device, streams, synchronisation (all trivially in order) ---- */

EMU_API cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: NULL");
    *count = 1;
    return cudaSuccess;
}

EMU_API cudaError_t cudaGetDevice(int *device)
{
    if (!device) return fail(cudaErrorInvalidValue, "cudaGetDevice: NULL");
    *device = 0;
    return cudaSuccess;
}

EMU_API cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice, "cudaSetDevice(%d): one device (0)", device);
}

EMU_API cudaError_t cudaDeviceSynchronize(void) { STICKY(); return cudaSuccess; }
EMU_API cudaError_t cudaStreamSynchronize(cudaStream_t s) { (void)s; STICKY(); return cudaSuccess; }
EMU_API cudaError_t cudaEventSynchronize(cudaEvent_t e) { (void)e; STICKY(); return cudaSuccess; }
EMU_API cudaError_t cudaRuntimeGetVersion(int *v) { if (v) *v = CUDART_VERSION; return cudaSuccess; }
EMU_API cudaError_t cudaDriverGetVersion(int *v) { if (v) *v = CUDART_VERSION; return cudaSuccess; }

EMU_API cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *st)
{
    (void)s;
    if (!st) return fail(cudaErrorInvalidValue, "cudaStreamIsCapturing: NULL");
    *st = cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

/* Stream order is kept trivially: everything before it already ran. */
EMU_API cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void *data)
{
    (void)s;
    if (!fn) return fail(cudaErrorInvalidValue, "cudaLaunchHostFunc: NULL function");
    fn(data);
    return cudaSuccess;
}

/* ---- kernel registry ---- */

/* nparams/poff/psize: the parameter layout the launch's types give (simt_emu.h), -1 = not yet known */
#define EMU_MAX_PARAMS 32
struct kern { const void *func; const char *name; simt_emu_thunk thunk; int nparams; size_t poff[EMU_MAX_PARAMS], psize[EMU_MAX_PARAMS]; };
static pthread_mutex_t kern_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kern kerns[1024];
static int nkerns;

EMU_API int simt_emu_register_kernel(const void *func, const char *name, simt_emu_thunk thunk)
{
    pthread_mutex_lock(&kern_lock);
    int i;
    for (i = 0; i < nkerns && kerns[i].func != func; i++) {}
    if (i == nkerns && nkerns < (int)(sizeof kerns / sizeof *kerns))
        kerns[nkerns++] = (struct kern){ .func = func, .name = name, .thunk = thunk, .nparams = -1 };
    pthread_mutex_unlock(&kern_lock);
    return 1;
}

/* Parameters laid out as the CUDA ABI lays out a kernel's parameter buffer: each at the next
 * multiple of its alignment. */
EMU_API void simt_emu_register_kernel_params(const void *func, int n, const size_t *size, const size_t *align)
{
    if (n < 0 || n > EMU_MAX_PARAMS) return;
    pthread_mutex_lock(&kern_lock);
    for (int i = 0; i < nkerns; i++)
        if (kerns[i].func == func && kerns[i].nparams < 0) {
            size_t off = 0;
            for (int j = 0; j < n; j++) {
                size_t a = align[j] ? align[j] : 1;
                off = (off + a - 1) / a * a;
                kerns[i].poff[j] = off;
                kerns[i].psize[j] = size[j];
                off += size[j];
            }
            __atomic_store_n(&kerns[i].nparams, n, __ATOMIC_RELEASE);
        }
    pthread_mutex_unlock(&kern_lock);
}

static const struct kern *lookup_kernel(const void *func)
{
    const struct kern *k = NULL;
    pthread_mutex_lock(&kern_lock);
    for (int i = 0; i < nkerns && !k; i++)
        if (kerns[i].func == func) k = &kerns[i];
    pthread_mutex_unlock(&kern_lock);
    return k;
}

EMU_API int simt_emu_nvcc_launch(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("SIMT_EMU_LAUNCH");
        on = e && !strcmp(e, "nvcc");
    }
    return on;
}

/* The kernel handle of the CUDA 13 internal launch path is the registry entry. */
EMU_API cudaError_t __cudaGetKernel(cudaKernel_t *kernel, const void *func)
{
    const struct kern *k = lookup_kernel(func);
    if (!kernel) return fail(cudaErrorInvalidValue, "__cudaGetKernel: NULL");
    if (!k) return fail(cudaErrorInvalidDeviceFunction, "__cudaGetKernel(%p): not a kernel", func);
    *kernel = (cudaKernel_t)(uintptr_t)k;
    return cudaSuccess;
}

static const struct kern *kernel_of_handle(const void *h)
{
    const struct kern *k = h;
    return k >= kerns && k < kerns + nkerns ? k : NULL;
}

/* A driver entry point (libcuda's on a GPU), here so the shim's name lookup for
 * __cudaLaunchKernel finds it among the loaded objects. CUresult: 0 success, 400 invalid
 * handle. */
EMU_API const void *simt_emu_kernel_handle(const void *func) { return lookup_kernel(func); }

EMU_API int simt_emu_kernel_param_info(const void *handle, size_t idx, size_t *offset, size_t *size)
{
    const struct kern *k = kernel_of_handle(handle);
    int n = k ? __atomic_load_n(&k->nparams, __ATOMIC_ACQUIRE) : -1;
    if (n < 0 || idx >= (size_t)n) return -1;
    if (offset) *offset = k->poff[idx];
    if (size) *size = k->psize[idx];
    return 0;
}

EMU_API int cuKernelGetName(const char **name, const void *kernel)
{
    const struct kern *k = kernel_of_handle(kernel);
    if (!name || !k) return 400;
    *name = k->name;
    return 0;
}

EMU_API cudaError_t cudaFuncGetName(const char **name, const void *func)
{
    const struct kern *k = lookup_kernel(func);
    if (!name) return fail(cudaErrorInvalidValue, "cudaFuncGetName: NULL");
    if (!k) return fail(cudaErrorInvalidDeviceFunction, "cudaFuncGetName(%p): not a kernel", func);
    *name = k->name;
    return cudaSuccess;
}

/* ---- block executor: the threads of one block as fibers ---- */

enum { F_RUN, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };

/* Context switches. x86-64: a minimal switch of the callee-saved registers and the FP
 * control words (glibc's swapcontext also saves the signal mask with a system call per
 * switch, which doubled the run time); elsewhere, or with -DSIMT_EMU_UCONTEXT, ucontext. */
#if defined(__x86_64__) && !defined(SIMT_EMU_UCONTEXT)
typedef struct { void *sp; } emu_ctx;
void simt_emu_switch(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".globl simt_emu_switch\n"
        ".hidden simt_emu_switch\n"
        ".type simt_emu_switch,@function\n"
        "simt_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size simt_emu_switch, .-simt_emu_switch\n");

static void ctx_switch(emu_ctx *from, emu_ctx *to) { simt_emu_switch(&from->sp, to->sp); }

/* A fresh context that starts fn on [stack, stack + len) as if called (rsp = 8 mod 16). */
static void ctx_make(emu_ctx *c, char *stack, size_t len, void (*fn)(void))
{
    uintptr_t top = ((uintptr_t)stack + len) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;                           /* fn's return address: it never returns */
    *--sp = (uint64_t)(uintptr_t)fn;     /* where the switch's ret goes */
    for (int i = 0; i < 6; i++) *--sp = 0;
    *--sp = 0x037F00001F80ull;           /* default MXCSR (low 4 bytes), x87 control word */
    c->sp = sp;
}
#else
typedef ucontext_t emu_ctx;
static void ctx_switch(emu_ctx *from, emu_ctx *to) { swapcontext(from, to); }
static void ctx_make(emu_ctx *c, char *stack, size_t len, void (*fn)(void))
{
    getcontext(c);
    c->uc_stack.ss_sp = stack;
    c->uc_stack.ss_size = len;
    c->uc_link = NULL;
    makecontext(c, fn, 0);
}
#endif

struct fiber {
    emu_ctx ctx;
    char *map;                 /* stack mapping, lowest page a guard */
    size_t map_len;
    int state, lane, warp;
    unsigned mask;             /* shuffle mask while F_WAIT_WARP */
    struct simt_emu_thread t;
    void *asan_fake;
};

struct warp_x { unsigned long long buf[2][32]; unsigned gen; };

struct executor {
    emu_ctx sched;
    struct fiber *f;           /* up to 1024, stacks kept between launches */
    struct warp_x warps[32];
    struct fiber *cur;
    const struct kern *k;
    void **args;
    const void *sched_stack;   /* ASan: the scheduler's stack */
    size_t sched_stack_len;
};

static __thread struct executor *ex;
EMU_API __thread const struct simt_emu_thread *simt_emu_cur;
static unsigned long long kernels_run;

EMU_API unsigned long long simt_emu_kernels_run(void) { return __atomic_load_n(&kernels_run, __ATOMIC_RELAXED); }

/* SIMT_EMU_STATS=FILE: the number of kernels run (tests compare it with the launches a
 * profiler recorded) and the allocations still live, written at exit. */
__attribute__((destructor)) static void write_stats(void)
{
    const char *path = getenv("SIMT_EMU_STATS");
    FILE *f = path && *path ? fopen(path, "w") : NULL;
    if (!f) return;
    size_t dev = 0, host = 0;
    pthread_mutex_lock(&alloc_lock);
    for (size_t i = 0; i < nallocs; i++) {
        if (allocs[i].device) dev++;
        else host++;
    }
    pthread_mutex_unlock(&alloc_lock);
    fprintf(f, "kernels %llu\nlive_device_allocations %zu\nlive_pinned_allocations %zu\n", simt_emu_kernels_run(),
            dev, host);
    for (size_t i = 0; i < NFAULT; i++) fprintf(f, "calls_%s %llu\n", fault_names[i], fault_calls[i]);
    fclose(f);
}

static size_t stack_bytes(void)
{
    static size_t sz;
    if (!sz) {
        const char *e = getenv("SIMT_EMU_STACK_KB");
        long kb = e ? atol(e) : 0;
        if (kb <= 0) kb = EMU_ASAN ? 256 : 64;
        sz = ((size_t)kb * 1024 + PAGE - 1) / PAGE * PAGE;
    }
    return sz;
}

/* SIMT_EMU_ORDER=reverse runs blocks, and the threads of a block between barriers, in
 * reverse order: a kernel whose result changes with it has a race (a missing
 * __syncthreads, or blocks depending on each other), which a GPU would show only sometimes. */
static int reverse_order(void)
{
    static int r = -1;
    if (r < 0) {
        const char *e = getenv("SIMT_EMU_ORDER");
        r = e && !strcmp(e, "reverse");
    }
    return r;
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "simt_emu: kernel %s, block (%u,%u,%u): ", ex && ex->k ? ex->k->name : "?",
            ex && ex->cur ? ex->cur->t.block_idx.x : 0, ex && ex->cur ? ex->cur->t.block_idx.y : 0,
            ex && ex->cur ? ex->cur->t.block_idx.z : 0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* Switch from a fiber back to the scheduler (and, when resumed, back in). */
static void yield_to_sched(struct fiber *f, int exiting)
{
#if EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &f->asan_fake, ex->sched_stack, ex->sched_stack_len);
#else
    (void)exiting;
#endif
    ctx_switch(&f->ctx, &ex->sched);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, &ex->sched_stack, &ex->sched_stack_len);
#endif
}

static void fiber_main(void)
{
    struct fiber *f = ex->cur;
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &ex->sched_stack, &ex->sched_stack_len);
#endif
    ex->k->thunk(ex->args);
    f = ex->cur;
    f->state = F_DONE;
    yield_to_sched(f, 1);
    abort();   /* never resumed */
}

static void run_fiber(struct fiber *f)
{
    ex->cur = f;
    simt_emu_cur = &f->t;
#if EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->map + PAGE, f->map_len - PAGE);
#endif
    ctx_switch(&ex->sched, &f->ctx);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    simt_emu_cur = NULL;
}

EMU_API void simt_emu_syncthreads(void)
{
    if (!ex || !ex->cur) { fprintf(stderr, "simt_emu: __syncthreads outside a kernel\n"); abort(); }
    struct fiber *f = ex->cur;
    f->state = F_WAIT_BLOCK;
    yield_to_sched(f, 0);
}

EMU_API unsigned long long simt_emu_shfl(unsigned mask, unsigned long long v, int arg, int width, int mode)
{
    if (!ex || !ex->cur) { fprintf(stderr, "simt_emu: warp shuffle outside a kernel\n"); abort(); }
    struct fiber *f = ex->cur;
    if (width <= 0 || width > 32 || (width & (width - 1)))
        fatal("shuffle width %d is not a power of two <= 32", width);
    if (!(mask & (1u << f->lane))) fatal("lane %d shuffles with a mask 0x%08x that excludes it", f->lane, mask);
    struct warp_x *w = &ex->warps[f->warp];
    unsigned g = w->gen & 1;
    w->buf[g][f->lane] = v;
    f->mask = mask;
    f->state = F_WAIT_WARP;
    yield_to_sched(f, 0);
    int seg = f->lane & ~(width - 1), src;
    if (mode == SIMT_EMU_SHFL_DOWN) src = (f->lane - seg) + arg < width ? f->lane + arg : f->lane;
    else src = ((f->lane ^ arg) & ~(width - 1)) == seg ? f->lane ^ arg : f->lane;
    if (!(mask & (1u << src))) fatal("lane %d reads lane %d, which is not in the shuffle mask 0x%08x", f->lane, src, mask);
    return w->buf[g][src];
}

static struct executor *get_executor(void)
{
    if (!ex) {
        ex = calloc(1, sizeof *ex);
        if (ex) ex->f = calloc(1024, sizeof *ex->f);
        if (!ex || !ex->f) { fprintf(stderr, "simt_emu: out of memory for the block executor\n"); abort(); }
    }
    return ex;
}

static void note_stack_guard(char *guard);

static void prepare_fiber(struct fiber *f)
{
    if (!f->map) {
        size_t len = stack_bytes() + PAGE;
        f->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (f->map == MAP_FAILED) { fprintf(stderr, "simt_emu: no memory for fiber stacks\n"); abort(); }
        mprotect(f->map, PAGE, PROT_NONE);   /* stack overflow faults */
        note_stack_guard(f->map);
        f->map_len = len;
    }
    ctx_make(&f->ctx, f->map + PAGE, f->map_len - PAGE, fiber_main);
}

/* Releases the waiters that can go on; 0 when none can (a deadlock). */
static int release_waiters(struct fiber *f, int n)
{
    int released = 0, nwarps = (n + 31) / 32;
    for (int w = 0; w < nwarps; w++) {
        int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
        unsigned waiting = 0, mask = 0;
        for (int i = lo; i < hi; i++)
            if (f[i].state == F_WAIT_WARP) {
                if (waiting && f[i].mask != mask)
                    fatal("lanes of warp %d shuffle with different masks (0x%08x, 0x%08x)", w, mask, f[i].mask);
                mask = f[i].mask;
                waiting |= 1u << (i - lo);
            }
        if (!waiting) continue;
        if (waiting == mask) {
            ex->warps[w].gen++;
            for (int i = lo; i < hi; i++) if (f[i].state == F_WAIT_WARP) f[i].state = F_RUN;
            released = 1;
            continue;
        }
        for (int l = 0; l < 32; l++) {
            if (!(mask & (1u << l)) || (waiting & (1u << l))) continue;
            if (lo + l >= hi) fatal("warp %d shuffles with mask 0x%08x but lane %d does not exist (block of %d threads)",
                                    w, mask, l, n);
            if (f[lo + l].state == F_DONE) fatal("warp %d shuffles with mask 0x%08x but lane %d has exited", w, mask, l);
        }
    }
    if (released) return 1;
    int live = 0, at_block = 0;
    for (int i = 0; i < n; i++) {
        if (f[i].state != F_DONE) live++;
        if (f[i].state == F_WAIT_BLOCK) at_block++;
    }
    if (live && at_block == live) {
        for (int i = 0; i < n; i++) if (f[i].state == F_WAIT_BLOCK) f[i].state = F_RUN;
        return 1;
    }
    return 0;
}

static void run_block(const dim3 grid, const dim3 block, unsigned bx, unsigned by, unsigned bz)
{
    int n = (int)(block.x * block.y * block.z);
    struct fiber *f = ex->f;
    for (int i = 0; i < n; i++) {
        prepare_fiber(&f[i]);
        f[i].state = F_RUN;
        f[i].lane = i % 32;
        f[i].warp = i / 32;
        f[i].t.thread_idx = (uint3){ (unsigned)i % block.x, ((unsigned)i / block.x) % block.y,
                                     (unsigned)i / (block.x * block.y) };
        f[i].t.block_idx = (uint3){ bx, by, bz };
        f[i].t.block_dim = block;
        f[i].t.grid_dim = grid;
    }
    for (int w = 0; w < (n + 31) / 32; w++) ex->warps[w].gen = 0;
    int rev = reverse_order();
    for (;;) {
        for (int j = 0; j < n; j++) {
            int i = rev ? n - 1 - j : j;
            if (f[i].state == F_RUN) run_fiber(&f[i]);
        }
        int live = 0;
        for (int i = 0; i < n; i++) live += f[i].state != F_DONE;
        if (!live) break;
        if (!release_waiters(f, n)) {
            int at_block = 0, at_warp = 0;
            for (int i = 0; i < n; i++) {
                at_block += f[i].state == F_WAIT_BLOCK;
                at_warp += f[i].state == F_WAIT_WARP;
            }
            ex->cur = &f[0];
            fatal("deadlock: %d threads at __syncthreads, %d in warp shuffles, %d exited", at_block, at_warp, n - live);
        }
    }
    ex->cur = NULL;
}

static cudaError_t launch(const struct kern *k, dim3 grid, dim3 block, void **args, size_t sharedMem);

struct launch_call { const struct kern *k; dim3 grid, block; void **args; size_t shared; };
static cudaError_t launch_run(void *p) { struct launch_call *a = p; return launch(a->k, a->grid, a->block, a->args, a->shared); }

/* The runtime launch through the driver's cuLaunchKernel, as the tracer sees it. */
static cudaError_t traced_launch(const char *api, const struct kern *k, dim3 grid, dim3 block, void **args,
                                 size_t shared, cudaStream_t stream)
{
    struct launch_call a = { k, grid, block, args, shared };
    struct simt_emu_call c = { .what = SIMT_EMU_CALL_LAUNCH, .runtime_api = api, .driver_api = "cuLaunchKernel",
                               .func = k, .name = k->name, .grid = grid, .block = block, .args = args,
                               .shared = shared, .stream = stream };
    return simt_emu_traced(&c, launch_run, &a);
}

static __thread const void *launch_ptrs[64];
static __thread int launch_nptrs = -1;   /* -1: not given, open all device memory */

EMU_API void simt_emu_launch_pointers(const void *const *ptrs, int n)
{
    if (n < 0 || n > 64) { launch_nptrs = -1; return; }
    memcpy(launch_ptrs, ptrs, (size_t)n * sizeof *ptrs);
    launch_nptrs = n;
}

EMU_API cudaError_t cudaLaunchKernel(const void *func, dim3 grid, dim3 block, void **args, size_t sharedMem,
                                     cudaStream_t stream)
{
    const struct kern *k = lookup_kernel(func);
    if (!k) return fail(cudaErrorInvalidDeviceFunction, "cudaLaunchKernel(%p): not a registered kernel", func);
    return traced_launch("cudaLaunchKernel", k, grid, block, args, sharedMem, stream);
}

EMU_API cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 grid, dim3 block, void **args, size_t sharedMem,
                                       cudaStream_t stream)
{
    const struct kern *k = kernel_of_handle(kernel);
    if (!k) return fail(cudaErrorInvalidResourceHandle, "__cudaLaunchKernel(%p): not a kernel handle", (void *)kernel);
    return traced_launch("__cudaLaunchKernel", k, grid, block, args, sharedMem, stream);
}

static cudaError_t launch(const struct kern *k, dim3 grid, dim3 block, void **args, size_t sharedMem)
{
    STICKY();
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (!block.x || !block.y || !block.z || block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024 ||
        !grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 || sharedMem > 0)
        return fail(cudaErrorInvalidConfiguration, "cudaLaunchKernel(%s): invalid configuration grid (%u,%u,%u) "
                    "block (%u,%u,%u) dynamic shared %zu", k->name, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                    sharedMem);
    if (simt_emu_inject_fault("launch")) {
        fprintf(stderr, "simt_emu: kernel %s: injected fault (SIMT_EMU_FAIL); not run\n", k->name);
        sticky_error = cudaErrorLaunchFailure;   /* reported by every later call, as a faulting kernel's */
        return cudaSuccess;
    }
    struct executor *e = get_executor();
    if (e->k) return fail(cudaErrorLaunchFailure, "cudaLaunchKernel(%s) from inside kernel %s", k->name, e->k->name);
    e->k = k;
    e->args = args;
    int rev = reverse_order();
    const void *const *lp = launch_ptrs;
    int nlp = launch_nptrs;
    launch_nptrs = -1;
    if (nlp >= 0) simt_emu_device_access_ptrs(lp, nlp, 1);
    else simt_emu_device_access(1);
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++)
                run_block(grid, block, rev ? grid.x - 1 - x : x, rev ? grid.y - 1 - y : y, rev ? grid.z - 1 - z : z);
    if (nlp >= 0) simt_emu_device_access_ptrs(lp, nlp, 0);
    else simt_emu_device_access(0);
    e->k = NULL;
    e->args = NULL;
    __atomic_add_fetch(&kernels_run, 1, __ATOMIC_RELAXED);
    return cudaSuccess;
}

/* ---- faults: say what a fault in emulated memory means, then let it take its course ---- */

static struct sigaction old_segv;
static char *stack_lo[1024], *stack_hi[1024];   /* fiber stack guard pages (any thread) */
static int nstack_guards;

static void note_stack_guard(char *guard)
{
    int i = __atomic_fetch_add(&nstack_guards, 1, __ATOMIC_RELAXED);
    if (i < 1024) { stack_lo[i] = guard; stack_hi[i] = guard + PAGE; }
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    uintptr_t a = (uintptr_t)si->si_addr;
    char msg[256];
    int n = 0;
    for (size_t i = 0; i < nallocs && !n; i++) {           /* no lock: we are dying anyway */
        struct alloc *x = &allocs[i];
        if (!x->device || a < (uintptr_t)x->map || a >= (uintptr_t)x->map + x->map_len) continue;
        if (a < (uintptr_t)x->body)
            n = snprintf(msg, sizeof msg, "simt_emu: access at %p before the start of device allocation %p (%zu bytes)\n",
                         (void *)a, (void *)x->ptr, (size_t)x->size);
        else if (a >= (uintptr_t)x->body + x->body_len)
            n = snprintf(msg, sizeof msg, "simt_emu: access at %p past the end of device allocation %p (%zu bytes, "
                         "+%zu)\n", (void *)a, (void *)x->ptr, (size_t)x->size, (size_t)(a - x->ptr));
        else
            n = snprintf(msg, sizeof msg, "simt_emu: host code touched device memory at %p (allocation %p, %zu "
                         "bytes): device memory is not host-accessible on a GPU (or a kernel used a device "
                         "pointer it was not passed as an argument: SIMT_EMU_PROTECT=0)\n", (void *)a,
                         (void *)x->ptr, (size_t)x->size);
    }
    for (int i = 0; i < 1024 && !n; i++)
        if (stack_lo[i] && a >= (uintptr_t)stack_lo[i] && a < (uintptr_t)stack_hi[i])
            n = snprintf(msg, sizeof msg, "simt_emu: a GPU thread overflowed its %zu-byte stack (SIMT_EMU_STACK_KB)\n",
                         stack_bytes());
    if (n > 0) {
        ssize_t w = write(2, msg, (size_t)n);
        (void)w;
    }
    sigaction(sig, &old_segv, NULL);   /* the fault repeats under the previous handler */
}

__attribute__((constructor)) static void install_segv(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}
