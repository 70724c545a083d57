/* Emulated CUPTI (built as libcupti.so.13, the real soname and symbol version, so the
 * collector libmoecap-cupti.so binds to it when LD_LIBRARY_PATH names this folder): the
 * subset cupti/collector.c calls, backed by the CUDA emulation's tracing hook
 * (simt_emu_trace.h). Records use the real structs of /usr/local/cuda's CUPTI headers
 * (CUpti_ActivityKernel10, Memcpy6, Memset4, API).
 *
 * Per traced call (runtime launch/copy/memset, or a driver call made directly such as the
 * taps' cuMemcpyDtoHAsync_v2): one correlation id; driver-domain callbacks (enter/exit) for
 * cuLaunchKernel with a real cuLaunchKernel_params; a RUNTIME and a DRIVER API activity
 * record sharing that id and the calling thread's id (gettid); the kernel / memcpy / memset
 * record with the emulated execution interval. Timestamps are CLOCK_REALTIME ns, on purpose
 * not the collector's CLOCK_MONOTONIC, so its offset calibration is exercised.
 * Assumed, not known from a GPU: that nested runtime -> driver calls share one correlation
 * id, that threadId is the OS thread id, the default stream's id (7).
 * Buffers: requested from the client when needed, completed when full or on
 * cuptiActivityFlushAll; cuptiActivityFlushPeriod is accepted but no flush thread runs.
 * Test hook: SIMT_EMU_CUPTI_SUBSCRIBE=busy makes cuptiSubscribe answer
 * CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED (another client holds the callbacks);
 * SIMT_EMU_CUPTI_ACTIVITY=silent delivers no activity records (another client holds them). */
#include <cuda.h>
#include <cupti.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "simt_emu_trace.h"

#define API __attribute__((visibility("default")))

/* ---- callback ids and their names (the names CUPTI's enums spell) ---- */

struct cbname { const char *api; uint32_t cbid; const char *name; };
#define RT(fn, ver) { #fn, CUPTI_RUNTIME_TRACE_CBID_##fn##_##ver, #fn "_" #ver }
#define DRV(fn) { #fn, CUPTI_DRIVER_TRACE_CBID_##fn, #fn }
static const struct cbname rt_names[] = {
    RT(cudaLaunchKernel, v7000), RT(__cudaLaunchKernel, v13000), RT(cudaMemcpy, v3020),
    RT(cudaMemcpyAsync, v3020), RT(cudaMemset, v3020), RT(cudaMemsetAsync, v3020),
};
static const struct cbname drv_names[] = {
    DRV(cuLaunchKernel), DRV(cuMemcpy), DRV(cuMemcpyAsync), DRV(cuMemcpyHtoD_v2), DRV(cuMemcpyHtoDAsync_v2),
    DRV(cuMemcpyDtoH_v2), DRV(cuMemcpyDtoHAsync_v2), DRV(cuMemcpyDtoD_v2), DRV(cuMemcpyDtoDAsync_v2),
    DRV(cuMemsetD8_v2), DRV(cuMemsetD8Async), DRV(cuLaunchHostFunc),
};
#define NELEM(a) (sizeof (a) / sizeof *(a))

static uint32_t cbid_of(const struct cbname *t, size_t n, const char *api)
{
    for (size_t i = 0; api && i < n; i++)
        if (!strcmp(t[i].api, api)) return t[i].cbid;
    return 0;
}

API CUptiResult cuptiGetCallbackName(CUpti_CallbackDomain domain, uint32_t cbid, const char **name)
{
    if (!name) return CUPTI_ERROR_INVALID_PARAMETER;
    const struct cbname *t = domain == CUPTI_CB_DOMAIN_RUNTIME_API ? rt_names : drv_names;
    size_t n = domain == CUPTI_CB_DOMAIN_RUNTIME_API ? NELEM(rt_names) : NELEM(drv_names);
    if (domain != CUPTI_CB_DOMAIN_RUNTIME_API && domain != CUPTI_CB_DOMAIN_DRIVER_API) return CUPTI_ERROR_INVALID_PARAMETER;
    for (size_t i = 0; i < n; i++)
        if (t[i].cbid == cbid) { *name = t[i].name; return CUPTI_SUCCESS; }
    *name = NULL;
    return CUPTI_ERROR_INVALID_PARAMETER;
}

API CUptiResult cuptiGetResultString(CUptiResult r, const char **str)
{
    if (!str) return CUPTI_ERROR_INVALID_PARAMETER;
    switch (r) {
    case CUPTI_SUCCESS: *str = "CUPTI_SUCCESS"; break;
    case CUPTI_ERROR_INVALID_PARAMETER: *str = "CUPTI_ERROR_INVALID_PARAMETER"; break;
    case CUPTI_ERROR_INVALID_KIND: *str = "CUPTI_ERROR_INVALID_KIND"; break;
    case CUPTI_ERROR_MAX_LIMIT_REACHED: *str = "CUPTI_ERROR_MAX_LIMIT_REACHED"; break;
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED: *str = "CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED"; break;
    default: *str = "CUPTI_ERROR_UNKNOWN"; return CUPTI_ERROR_INVALID_PARAMETER;
    }
    return CUPTI_SUCCESS;
}

/* ---- clock ---- */

static uint64_t ts(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

API CUptiResult cuptiGetTimestamp(uint64_t *timestamp)
{
    if (!timestamp) return CUPTI_ERROR_INVALID_PARAMETER;
    *timestamp = ts();
    return CUPTI_SUCCESS;
}

/* ---- activity buffers ---- */

static pthread_mutex_t act_lock = PTHREAD_MUTEX_INITIALIZER;
static CUpti_BuffersCallbackRequestFunc req_fn;
static CUpti_BuffersCallbackCompleteFunc done_fn;
static uint8_t *cur_buf;
static size_t cur_size, cur_used, dropped;
static uint8_t kind_on[256];

static void install_tracer(void);

static size_t record_size(CUpti_ActivityKind k)
{
    switch (k) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: return sizeof(CUpti_ActivityKernel10);
    case CUPTI_ACTIVITY_KIND_MEMCPY: return sizeof(CUpti_ActivityMemcpy6);
    case CUPTI_ACTIVITY_KIND_MEMSET: return sizeof(CUpti_ActivityMemset4);
    case CUPTI_ACTIVITY_KIND_RUNTIME:
    case CUPTI_ACTIVITY_KIND_DRIVER: return sizeof(CUpti_ActivityAPI);
    default: return 0;
    }
}

/* SIMT_EMU_CUPTI_ACTIVITY=silent: enabling succeeds but no record ever comes (another
 * client holds the activity stream, as the collector's zero-kernel-records check assumes). */
static int activity_silent(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("SIMT_EMU_CUPTI_ACTIVITY");
        v = e && !strcmp(e, "silent");
    }
    return v;
}

static int kind_enabled(CUpti_ActivityKind k)
{
    return (unsigned)k < 256 && __atomic_load_n(&kind_on[k], __ATOMIC_RELAXED) && !activity_silent();
}

/* Appends one record; hands a full buffer to the client and asks for the next one (never
 * calling the client with act_lock held: its callbacks may call back into CUPTI). */
static void append(const void *rec, size_t len)
{
    for (;;) {
        pthread_mutex_lock(&act_lock);
        if (!req_fn || !done_fn) { pthread_mutex_unlock(&act_lock); return; }
        if (cur_buf && cur_used + len <= cur_size) {
            memcpy(cur_buf + cur_used, rec, len);
            cur_used += len;
            pthread_mutex_unlock(&act_lock);
            return;
        }
        uint8_t *full = cur_buf;
        size_t full_size = cur_size, full_used = cur_used;
        cur_buf = NULL;
        CUpti_BuffersCallbackRequestFunc req = req_fn;
        CUpti_BuffersCallbackCompleteFunc done = done_fn;
        pthread_mutex_unlock(&act_lock);
        if (full) done(NULL, 0, full, full_size, full_used);
        uint8_t *b = NULL;
        size_t size = 0, max_records = 0;
        req(&b, &size, &max_records);
        if (!b || size < len) {
            pthread_mutex_lock(&act_lock);
            dropped++;
            pthread_mutex_unlock(&act_lock);
            if (b) done(NULL, 0, b, size, 0);
            return;
        }
        memset(b, 0, size);
        pthread_mutex_lock(&act_lock);
        if (!cur_buf) { cur_buf = b; cur_size = size; cur_used = 0; b = NULL; }
        pthread_mutex_unlock(&act_lock);
        if (b) done(NULL, 0, b, size, 0);   /* another thread installed one first */
    }
}

API CUptiResult cuptiActivityRegisterCallbacks(CUpti_BuffersCallbackRequestFunc req, CUpti_BuffersCallbackCompleteFunc done)
{
    if (!req || !done) return CUPTI_ERROR_INVALID_PARAMETER;
    pthread_mutex_lock(&act_lock);
    req_fn = req;
    done_fn = done;
    pthread_mutex_unlock(&act_lock);
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiActivityEnable(CUpti_ActivityKind kind)
{
    if (kind == CUPTI_ACTIVITY_KIND_GRAPH_TRACE) return CUPTI_SUCCESS;   /* accepted; the emulation has no graphs */
    if (!record_size(kind)) return CUPTI_ERROR_INVALID_KIND;
    __atomic_store_n(&kind_on[kind], 1, __ATOMIC_RELAXED);
    install_tracer();
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiActivityDisable(CUpti_ActivityKind kind)
{
    if ((unsigned)kind < 256) __atomic_store_n(&kind_on[kind], 0, __ATOMIC_RELAXED);
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiActivityFlushPeriod(uint32_t ms)
{
    (void)ms;
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiActivityFlushAll(uint32_t flag)
{
    (void)flag;   /* records are complete when written: forced or not, the current buffer goes */
    pthread_mutex_lock(&act_lock);
    uint8_t *b = cur_buf;
    size_t size = cur_size, used = cur_used;
    CUpti_BuffersCallbackCompleteFunc done = done_fn;
    cur_buf = NULL;
    pthread_mutex_unlock(&act_lock);
    if (b && done) done(NULL, 0, b, size, used);
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiActivityGetNextRecord(uint8_t *buffer, size_t valid, CUpti_Activity **record)
{
    if (!buffer || !record) return CUPTI_ERROR_INVALID_PARAMETER;
    uint8_t *p = *record ? (uint8_t *)*record + record_size((*record)->kind) : buffer;
    if (*record && p == (uint8_t *)*record) return CUPTI_ERROR_INVALID_KIND;
    if (p + sizeof(CUpti_Activity) > buffer + valid) { *record = NULL; return CUPTI_ERROR_MAX_LIMIT_REACHED; }
    size_t n = record_size(((CUpti_Activity *)p)->kind);
    if (!n || p + n > buffer + valid) { *record = NULL; return CUPTI_ERROR_MAX_LIMIT_REACHED; }
    *record = (CUpti_Activity *)p;
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiActivityGetNumDroppedRecords(CUcontext ctx, uint32_t stream, size_t *n)
{
    (void)ctx; (void)stream;
    if (!n) return CUPTI_ERROR_INVALID_PARAMETER;
    pthread_mutex_lock(&act_lock);
    *n = dropped;   /* reported once: the collector adds them up */
    dropped = 0;
    pthread_mutex_unlock(&act_lock);
    return CUPTI_SUCCESS;
}

/* ---- callbacks ---- */

static pthread_mutex_t sub_lock = PTHREAD_MUTEX_INITIALIZER;
static CUpti_CallbackFunc sub_fn;
static void *sub_ud;
static int sub_taken;
#define CB_MAX 2048
static uint8_t cb_on[2][CB_MAX];   /* [0] runtime, [1] driver */

API CUptiResult cuptiSubscribe(CUpti_SubscriberHandle *sub, CUpti_CallbackFunc fn, void *ud)
{
    const char *e = getenv("SIMT_EMU_CUPTI_SUBSCRIBE");
    if (!sub) return CUPTI_ERROR_INVALID_PARAMETER;
    if (e && !strcmp(e, "busy")) return CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED;
    pthread_mutex_lock(&sub_lock);
    if (sub_taken) { pthread_mutex_unlock(&sub_lock); return CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED; }
    sub_taken = 1;
    sub_ud = ud;
    __atomic_store_n(&sub_fn, fn, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sub_lock);
    *sub = (CUpti_SubscriberHandle)&sub_taken;
    install_tracer();
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiUnsubscribe(CUpti_SubscriberHandle sub)
{
    if (sub != (CUpti_SubscriberHandle)&sub_taken) return CUPTI_ERROR_INVALID_PARAMETER;
    pthread_mutex_lock(&sub_lock);
    __atomic_store_n(&sub_fn, NULL, __ATOMIC_RELEASE);
    sub_taken = 0;
    memset(cb_on, 0, sizeof cb_on);
    pthread_mutex_unlock(&sub_lock);
    return CUPTI_SUCCESS;
}

API CUptiResult cuptiEnableCallback(uint32_t enable, CUpti_SubscriberHandle sub, CUpti_CallbackDomain domain,
                                    CUpti_CallbackId cbid)
{
    if (sub != (CUpti_SubscriberHandle)&sub_taken || cbid >= CB_MAX ||
        (domain != CUPTI_CB_DOMAIN_RUNTIME_API && domain != CUPTI_CB_DOMAIN_DRIVER_API))
        return CUPTI_ERROR_INVALID_PARAMETER;
    __atomic_store_n(&cb_on[domain == CUPTI_CB_DOMAIN_DRIVER_API][cbid], enable ? 1 : 0, __ATOMIC_RELAXED);
    return CUPTI_SUCCESS;
}

/* ---- the tracer: one traced call -> callbacks + activity records ---- */

static uint32_t next_corr;
static uint8_t ctx_dummy;   /* the one context's handle */

/* CUDA's legacy default stream has id 7 in CUPTI records (assumed here); other streams
 * get ids in order of first use. */
static uint32_t stream_id(cudaStream_t s)
{
    static cudaStream_t seen[64];
    static int nseen;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    if (!s) return 7;
    pthread_mutex_lock(&lock);
    int i;
    for (i = 0; i < nseen && seen[i] != s; i++) {}
    if (i == nseen && nseen < 64) seen[nseen++] = s;
    pthread_mutex_unlock(&lock);
    return 8 + (uint32_t)i;
}

static void api_record(CUpti_ActivityKind kind, uint32_t cbid, uint64_t t0, uint64_t t1, uint32_t corr,
                       uint32_t tid, uint32_t ret)
{
    CUpti_ActivityAPI a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    a.cbid = cbid;
    a.start = t0;
    a.end = t1;
    a.processId = (uint32_t)getpid();
    a.threadId = tid;
    a.correlationId = corr;
    a.returnValue = ret;
    append(&a, sizeof a);
}

static uint8_t cupti_copy_kind(int k)
{
    switch (k) {
    case cudaMemcpyHostToDevice: return CUPTI_ACTIVITY_MEMCPY_KIND_HTOD;
    case cudaMemcpyDeviceToHost: return CUPTI_ACTIVITY_MEMCPY_KIND_DTOH;
    case cudaMemcpyDeviceToDevice: return CUPTI_ACTIVITY_MEMCPY_KIND_DTOD;
    case cudaMemcpyHostToHost: return CUPTI_ACTIVITY_MEMCPY_KIND_HTOH;
    default: return CUPTI_ACTIVITY_MEMCPY_KIND_UNKNOWN;
    }
}

static void exec_record(const struct simt_emu_call *c, uint64_t k0, uint64_t k1, uint32_t corr, int from_runtime)
{
    if (c->what == SIMT_EMU_CALL_LAUNCH &&
        (kind_enabled(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) || kind_enabled(CUPTI_ACTIVITY_KIND_KERNEL))) {
        CUpti_ActivityKernel10 k;
        memset(&k, 0, sizeof k);
        k.kind = kind_enabled(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) ? CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL
                                                                      : CUPTI_ACTIVITY_KIND_KERNEL;
        k.start = k0;
        k.end = k1;
        k.completed = k1;
        k.deviceId = 0;
        k.contextId = 1;
        k.streamId = stream_id(c->stream);
        k.gridX = (int32_t)c->grid.x; k.gridY = (int32_t)c->grid.y; k.gridZ = (int32_t)c->grid.z;
        k.blockX = (int32_t)c->block.x; k.blockY = (int32_t)c->block.y; k.blockZ = (int32_t)c->block.z;
        k.dynamicSharedMemory = (int32_t)c->shared;
        k.correlationId = corr;
        k.name = c->name;   /* the kernel registry's string: lives as long as the process */
        append(&k, sizeof k);
    } else if (c->what == SIMT_EMU_CALL_COPY && c->bytes && kind_enabled(CUPTI_ACTIVITY_KIND_MEMCPY)) {
        CUpti_ActivityMemcpy6 m;
        memset(&m, 0, sizeof m);
        m.kind = CUPTI_ACTIVITY_KIND_MEMCPY;
        m.copyKind = cupti_copy_kind(c->copy_kind);
        m.srcKind = c->copy_kind == cudaMemcpyDeviceToHost || c->copy_kind == cudaMemcpyDeviceToDevice
                        ? CUPTI_ACTIVITY_MEMORY_KIND_DEVICE : CUPTI_ACTIVITY_MEMORY_KIND_PAGEABLE;
        m.dstKind = c->copy_kind == cudaMemcpyHostToDevice || c->copy_kind == cudaMemcpyDeviceToDevice
                        ? CUPTI_ACTIVITY_MEMORY_KIND_DEVICE : CUPTI_ACTIVITY_MEMORY_KIND_PAGEABLE;
        m.flags = c->async ? CUPTI_ACTIVITY_FLAG_MEMCPY_ASYNC : 0;
        m.bytes = c->bytes;
        m.start = k0;
        m.end = k1;
        m.contextId = 1;
        m.streamId = stream_id(c->stream);
        m.correlationId = corr;
        m.runtimeCorrelationId = from_runtime ? corr : 0;
        m.copyCount = 1;
        append(&m, sizeof m);
    } else if (c->what == SIMT_EMU_CALL_SET && c->bytes && kind_enabled(CUPTI_ACTIVITY_KIND_MEMSET)) {
        CUpti_ActivityMemset4 m;
        memset(&m, 0, sizeof m);
        m.kind = CUPTI_ACTIVITY_KIND_MEMSET;
        m.bytes = c->bytes;
        m.start = k0;
        m.end = k1;
        m.contextId = 1;
        m.streamId = stream_id(c->stream);
        m.correlationId = corr;
        m.flags = c->async ? CUPTI_ACTIVITY_FLAG_MEMSET_ASYNC : 0;
        m.memoryKind = CUPTI_ACTIVITY_MEMORY_KIND_DEVICE;
        append(&m, sizeof m);
    }
}

static cudaError_t trace_call(const struct simt_emu_call *c, simt_emu_run_fn run, void *ctx)
{
    uint32_t corr = __atomic_add_fetch(&next_corr, 1, __ATOMIC_RELAXED);
    uint32_t tid = (uint32_t)syscall(SYS_gettid);
    uint32_t rt_cbid = cbid_of(rt_names, NELEM(rt_names), c->runtime_api);
    uint32_t drv_cbid = cbid_of(drv_names, NELEM(drv_names), c->driver_api);
    uint64_t rt0 = ts(), d0 = ts();
    CUpti_CallbackFunc fn = __atomic_load_n(&sub_fn, __ATOMIC_ACQUIRE);
    int cb = fn && c->what == SIMT_EMU_CALL_LAUNCH && drv_cbid < CB_MAX &&
             __atomic_load_n(&cb_on[1][drv_cbid], __ATOMIC_RELAXED);
    cuLaunchKernel_params lp;
    CUpti_CallbackData cd;
    CUresult ret = CUDA_SUCCESS;
    uint64_t corr_data = 0;
    if (cb) {
        lp = (cuLaunchKernel_params){ .f = (CUfunction)(uintptr_t)c->func, .gridDimX = c->grid.x,
                                      .gridDimY = c->grid.y, .gridDimZ = c->grid.z, .blockDimX = c->block.x,
                                      .blockDimY = c->block.y, .blockDimZ = c->block.z,
                                      .sharedMemBytes = (unsigned)c->shared, .hStream = (CUstream)c->stream,
                                      .kernelParams = c->args, .extra = NULL };
        cd = (CUpti_CallbackData){ .callbackSite = CUPTI_API_ENTER, .functionName = c->driver_api,
                                   .functionParams = &lp, .functionReturnValue = &ret, .symbolName = c->name,
                                   .context = (CUcontext)&ctx_dummy, .contextUid = 1,
                                   .correlationData = &corr_data, .correlationId = corr };
        fn(sub_ud, CUPTI_CB_DOMAIN_DRIVER_API, drv_cbid, &cd);
    }
    uint64_t k0 = ts();
    cudaError_t e = run(ctx);
    uint64_t k1 = ts();
    ret = e == cudaSuccess ? CUDA_SUCCESS : e == cudaErrorInvalidValue ? CUDA_ERROR_INVALID_VALUE
                                                                       : CUDA_ERROR_LAUNCH_FAILED;
    if (cb) {
        cd.callbackSite = CUPTI_API_EXIT;
        fn(sub_ud, CUPTI_CB_DOMAIN_DRIVER_API, drv_cbid, &cd);
    }
    uint64_t d1 = ts(), rt1 = ts();
    if (e == cudaSuccess) exec_record(c, k0, k1, corr, c->runtime_api != NULL);
    if (drv_cbid && kind_enabled(CUPTI_ACTIVITY_KIND_DRIVER))
        api_record(CUPTI_ACTIVITY_KIND_DRIVER, drv_cbid, d0, d1, corr, tid, (uint32_t)ret);
    if (rt_cbid && kind_enabled(CUPTI_ACTIVITY_KIND_RUNTIME))
        api_record(CUPTI_ACTIVITY_KIND_RUNTIME, rt_cbid, rt0, rt1, corr, tid, (uint32_t)e);
    return e;
}

static const struct simt_emu_tracer tracer = { trace_call };

static void install_tracer(void) { simt_emu_set_tracer(&tracer); }

API CUptiResult cuptiFinalize(void)
{
    cuptiActivityFlushAll(0);
    simt_emu_set_tracer(NULL);
    return CUPTI_SUCCESS;
}
