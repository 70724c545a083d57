/* libmoecap-cupti.so: the CUPTI collector. Loaded by libmoecap.so (dlopen on first CUDA
 * use, or MOECAP_CUPTI=1) or by CUDA itself through CUDA_INJECTION64_PATH
 * (InitializeInjection). It turns CUPTI activity records into trace records:
 *   CONCURRENT_KERNEL -> MC_REC_KERNEL (source 0; graph kernels carry their graph id)
 *   MEMCPY / MEMSET   -> MC_REC_MEMCPY (source 0)
 *   RUNTIME / DRIVER  -> MC_REC_API for launches, copies, syncs and graph launches only
 *   GRAPH_TRACE       -> MC_REC_API (MC_API_CUPTI_GRAPH) per whole-graph execution
 * with device timestamps converted to this process's CLOCK_MONOTONIC (offset measured
 * from cuptiGetTimestamp / clock_gettime pairs). Kernel-parameter taps (taps.c, files in
 * data/taps/ or MOECAP_TAPS) use driver-API callbacks: after a matching launch the top-k
 * ids are copied to pinned memory on the launch stream and a host function writes the
 * tokens-per-expert histogram (MC_REC_TOPK_TAP).
 * Another CUPTI client (e.g. the PyTorch profiler) is detected where CUPTI says so
 * (subscribe / enable errors) or where launches were seen but no kernel records came:
 * one stderr line + MC_REC_NOTE, and the rest keeps working.
 * The shim core API is reached through dlsym so this library also works when it is
 * injected without libmoecap.so preloaded (it then loads libmoecap.so from its own
 * directory). The collector joins the core as an interposer family (flush and fork hooks);
 * what the CUDA side of the shim offers it (launch count, NVML start) comes as the
 * argument of mc_cupti_start, the one name the shim looks up here. */
#include <cuda.h>
#include <cupti.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "moecap/trace_format.h"
#include "shim_core.h"
#include "mc_cuda.h"
#include "taps.h"
#include "topk_tap.h"

/* ---- the shim core, found at run time ---- */

static struct {
    int (*enabled)(void);
    uint64_t (*now)(void);
    void *(*reserve)(uint16_t, uint32_t);
    void (*commit)(void *);
    uint32_t (*intern)(const char *);
    void (*note)(int, const char *, ...);
    void (*family_register)(const struct mc_family *);
} core;
static void *core_handle;   /* where the core API was found */

static int find_core(void)
{
    void *h = RTLD_DEFAULT;
    if (!dlsym(h, "mc_rec_reserve")) {
        Dl_info info;
        char path[PATH_MAX];
        if (!dladdr((void *)&find_core, &info) || !info.dli_fname) return -1;
        snprintf(path, sizeof path, "%s", info.dli_fname);
        char *slash = strrchr(path, '/');
        size_t dir = slash ? (size_t)(slash - path + 1) : 0;
        snprintf(path + dir, sizeof path - dir, "libmoecap.so");
        h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
        if (!h) {
            fprintf(stderr, "moecap: CUPTI collector: libmoecap.so not preloaded and not found "
                    "next to %s (%s); nothing recorded\n", info.dli_fname, dlerror());
            return -1;
        }
    }
    *(void **)&core.enabled = dlsym(h, "mc_capture_enabled");
    *(void **)&core.now = dlsym(h, "mc_now_ns");
    *(void **)&core.reserve = dlsym(h, "mc_rec_reserve");
    *(void **)&core.commit = dlsym(h, "mc_rec_commit");
    *(void **)&core.intern = dlsym(h, "mc_intern");
    *(void **)&core.note = dlsym(h, "mc_note");
    *(void **)&core.family_register = dlsym(h, "mc_family_register");
    core_handle = h;
    return core.reserve && core.commit && core.intern && core.now && core.note ? 0 : -1;
}

/* stderr line + trace note, for what the user must know (lost data). */
static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The core's mc_note prints notes on stderr itself. */
    if (core.note) core.note(MC_NOTE_WARNING, "CUPTI: %s", msg);
    else fprintf(stderr, "moecap: CUPTI: %s\n", msg);
}

static const char *cupti_err(CUptiResult r)
{
    const char *s = NULL;
    if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || !s) s = "unknown CUPTI error";
    return s;
}

/* ---- time base ---- */

static int64_t ts_offset;   /* host monotonic ns - CUPTI timestamp */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void calibrate(void)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 7; i++) {
        uint64_t a = mono_ns(), c = 0, b;
        if (cuptiGetTimestamp(&c) != CUPTI_SUCCESS) return;
        b = mono_ns();
        if (b - a < best) { best = b - a; ts_offset = (int64_t)(a + (b - a) / 2) - (int64_t)c; }
    }
}

static uint64_t to_host(uint64_t t) { return t ? (uint64_t)((int64_t)t + ts_offset) : 0; }

/* ---- string interning caches ---- */

static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;
#define KNAME_SLOTS 8192u
static struct { uint64_t hash; char *text; uint32_t id; } kname[KNAME_SLOTS];

static uint32_t intern_kernel(const char *name)
{
    if (!name) return 0;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    uint32_t i = (uint32_t)h & (KNAME_SLOTS - 1), id = 0;
    pthread_mutex_lock(&name_lock);
    for (uint32_t probe = 0; probe < 64; probe++, i = (i + 1) & (KNAME_SLOTS - 1)) {
        if (kname[i].text && kname[i].hash == h && !strcmp(kname[i].text, name)) { id = kname[i].id; break; }
        if (!kname[i].text) {
            id = core.intern(name);
            kname[i].text = strdup(name);
            kname[i].hash = h;
            kname[i].id = id;
            break;
        }
    }
    pthread_mutex_unlock(&name_lock);
    return id ? id : core.intern(name);
}

/* Which API activity records to keep (launches, copies, memsets, syncs, graph launches),
 * decided once per (domain, cbid) from CUPTI's callback name. 0 = unknown, 1 keep, 2 drop. */
#define CBID_MAX 2048
static uint8_t keep_state[2][CBID_MAX];
static uint32_t cb_name_id[2][CBID_MAX];
static uint8_t is_launch[2][CBID_MAX];

static int keep_api(int dom, CUpti_CallbackId cbid)
{
    if (cbid >= CBID_MAX) return 0;
    uint8_t st = __atomic_load_n(&keep_state[dom][cbid], __ATOMIC_ACQUIRE);
    if (st) return st == 1;
    const char *name = NULL;
    cuptiGetCallbackName(dom ? CUPTI_CB_DOMAIN_DRIVER_API : CUPTI_CB_DOMAIN_RUNTIME_API, cbid, &name);
    int keep = name && (strstr(name, "Launch") || strstr(name, "Memcpy") || strstr(name, "Memset") ||
                        strstr(name, "Synchronize"));
    if (keep) {
        cb_name_id[dom][cbid] = core.intern(name);
        is_launch[dom][cbid] = strstr(name, "LaunchKernel") || strstr(name, "LaunchCooperative") ||
                               !strcmp(name, "cuLaunchGrid") || !strcmp(name, "cuLaunch");
    }
    __atomic_store_n(&keep_state[dom][cbid], keep ? 1 : 2, __ATOMIC_RELEASE);
    return keep;
}

/* ---- activity records ---- */

static uint64_t n_kernels, n_api_launches, n_dropped_total;
static int kernels_enabled;
static int warned_zero;

static int copy_kind(uint8_t k)
{
    switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return MC_COPY_H2D;
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return MC_COPY_D2H;
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return MC_COPY_D2D;
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH: return MC_COPY_H2H;
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return MC_COPY_P2P;
    default: return MC_COPY_UNKNOWN;
    }
}

static void emit_kernel(const CUpti_ActivityKernel10 *k)
{
    __atomic_add_fetch(&n_kernels, 1, __ATOMIC_RELAXED);
    struct mc_rec_kernel *r = core.reserve(MC_REC_KERNEL, sizeof *r);
    if (!r) return;
    r->start_ns = to_host(k->start);
    r->end_ns = to_host(k->end);
    r->stream = k->streamId;
    r->correlation_id = k->correlationId;
    r->graph_id = k->graphId;
    r->name_str = intern_kernel(k->name);
    r->device = (int32_t)k->deviceId;
    r->grid[0] = (uint32_t)k->gridX; r->grid[1] = (uint32_t)k->gridY; r->grid[2] = (uint32_t)k->gridZ;
    r->block[0] = (uint32_t)k->blockX; r->block[1] = (uint32_t)k->blockY; r->block[2] = (uint32_t)k->blockZ;
    r->shared_mem = (uint32_t)(k->staticSharedMemory + k->dynamicSharedMemory);
    r->source = 0;
    core.commit(r);
}

/* MEMCPY and MEMSET records differ only in their CUPTI struct and async flag: one writer. */
static void emit_copy(uint64_t start, uint64_t end, uint64_t bytes, uint32_t stream,
                      uint32_t correlation, uint32_t device, uint16_t kind, int async)
{
    struct mc_rec_memcpy *r = core.reserve(MC_REC_MEMCPY, sizeof *r);
    if (!r) return;
    r->start_ns = to_host(start);
    r->end_ns = to_host(end);
    r->bytes = bytes;
    r->stream = stream;
    r->correlation_id = correlation;
    r->device = (int32_t)device;
    r->kind = kind;
    r->async = async ? 1 : 0;
    r->source = 0;
    core.commit(r);
}

static void emit_memcpy(const CUpti_ActivityMemcpy6 *m)
{
    emit_copy(m->start, m->end, m->bytes, m->streamId, m->correlationId, m->deviceId,
              (uint16_t)copy_kind(m->copyKind), m->flags & CUPTI_ACTIVITY_FLAG_MEMCPY_ASYNC);
}

static void emit_memset(const CUpti_ActivityMemset4 *m)
{
    emit_copy(m->start, m->end, m->bytes, m->streamId, m->correlationId, m->deviceId,
              MC_MEMSET, m->flags & CUPTI_ACTIVITY_FLAG_MEMSET_ASYNC);
}

static void emit_api(const CUpti_ActivityAPI *a, int dom)
{
    if (!keep_api(dom, a->cbid)) return;
    if (is_launch[dom][a->cbid]) __atomic_add_fetch(&n_api_launches, 1, __ATOMIC_RELAXED);
    struct mc_rec_api *r = core.reserve(MC_REC_API, sizeof *r);
    if (!r) return;
    r->t_begin_ns = to_host(a->start);
    r->t_end_ns = to_host(a->end);
    r->arg0 = a->cbid;
    r->correlation_id = a->correlationId;
    r->tid = (int32_t)a->threadId;
    r->device = -1;
    r->name_str = cb_name_id[dom][a->cbid];
    r->api = dom ? MC_API_CUPTI_DRIVER : MC_API_CUPTI_RUNTIME;
    r->result = (uint16_t)a->returnValue;
    core.commit(r);
}

static void emit_graph(const CUpti_ActivityGraphTrace2 *g)
{
    struct mc_rec_api *r = core.reserve(MC_REC_API, sizeof *r);
    if (!r) return;
    r->t_begin_ns = to_host(g->start);
    r->t_end_ns = to_host(g->end);
    r->arg0 = g->graphId;
    r->arg1 = g->streamId;
    r->correlation_id = g->correlationId;
    r->tid = -1;
    r->device = (int32_t)g->deviceId;
    r->api = MC_API_CUPTI_GRAPH;
    core.commit(r);
}

#define BUF_SIZE (4u << 20)

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
    *buffer = aligned_alloc(8, BUF_SIZE);
    *size = *buffer ? BUF_SIZE : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t *buffer,
                                      size_t size, size_t valid)
{
    (void)size;
    CUpti_Activity *rec = NULL;
    while (valid && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
        switch (rec->kind) {
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
        case CUPTI_ACTIVITY_KIND_KERNEL:
            emit_kernel((const CUpti_ActivityKernel10 *)rec); break;
        case CUPTI_ACTIVITY_KIND_MEMCPY: emit_memcpy((const CUpti_ActivityMemcpy6 *)rec); break;
        case CUPTI_ACTIVITY_KIND_MEMSET: emit_memset((const CUpti_ActivityMemset4 *)rec); break;
        case CUPTI_ACTIVITY_KIND_RUNTIME: emit_api((const CUpti_ActivityAPI *)rec, 0); break;
        case CUPTI_ACTIVITY_KIND_DRIVER: emit_api((const CUpti_ActivityAPI *)rec, 1); break;
        case CUPTI_ACTIVITY_KIND_GRAPH_TRACE: emit_graph((const CUpti_ActivityGraphTrace2 *)rec); break;
        default: break;
        }
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS && dropped) {
        n_dropped_total += dropped;
        struct mc_rec_dropped *d = core.reserve(MC_REC_DROPPED, sizeof *d);
        if (d) {
            d->t_ns = core.now();
            d->count = dropped;
            d->reason_str = core.intern("CUPTI activity buffer full");
            core.commit(d);
        }
    }
    free(buffer);
}

/* ---- kernel-parameter taps ---- */

#define MAX_TAPS 128
static struct mc_tap taps[MAX_TAPS];
static int ntaps;
static uint32_t tap_name_id[MAX_TAPS];

#define TAP_SLOTS 32
#define TAP_SLOT_BYTES (256u << 10)
struct tap_slot {
    int busy;
    void *buf;
    int tap;
    int64_t rows, k, valid_below;
    uint32_t kernel_str;
    uint32_t correlation;
    int32_t device;
};
static struct tap_slot slots[TAP_SLOTS];
static int slots_ready;    /* 0 untried, 1 ok, -1 failed */
static pthread_mutex_t slot_init_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
    CUresult (*memcpy_dtoh_async)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*host_func)(CUstream, CUhostFn, void *);
    CUresult (*host_alloc)(void **, size_t, unsigned int);
    CUresult (*is_capturing)(CUstream, CUstreamCaptureStatus *);
    CUresult (*ctx_device)(CUdevice *);
} drv;

static int tap_warned_capture, tap_warned_size, tap_warned_busy;
static uint64_t tap_dropped;
static __thread int in_tap;

/* Does kernel f have a parameter `idx` of pointer size? (cuFuncGetParamInfo, CUDA 12.4+;
 * when the driver lacks it, trust the description.) Guards against a pattern matching a
 * kernel with another signature: reading past kernelParams would crash the program. */
static int param_is_pointer(void *f, int idx)
{
    static CUresult (*info)(CUfunction, size_t, size_t *, size_t *);
    static int looked;
    if (!looked) {
        void *cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (cu) *(void **)&info = dlsym(cu, "cuFuncGetParamInfo");
        looked = 1;
    }
    if (!info) return 1;
    size_t off = 0, size = 0;
    CUresult r = info((CUfunction)f, (size_t)idx, &off, &size);
    if (r == CUDA_ERROR_NOT_SUPPORTED) return 1;
    return r == CUDA_SUCCESS && size == sizeof(CUdeviceptr);
}

/* Function handle -> tap index + 1, or -1 for "no tap"; pointer-keyed, lock-free. */
#define FTAB_SLOTS 4096u
static struct { void *f; int tap; } ftab[FTAB_SLOTS];

static int tap_for(void *f, const char *name)
{
    uint32_t i = (uint32_t)(((uintptr_t)f >> 4) * 2654435761u) & (FTAB_SLOTS - 1);
    for (uint32_t probe = 0; probe < 32; probe++, i = (i + 1) & (FTAB_SLOTS - 1)) {
        void *k = __atomic_load_n(&ftab[i].f, __ATOMIC_ACQUIRE);
        if (k == f) {
            int t;
            while ((t = __atomic_load_n(&ftab[i].tap, __ATOMIC_ACQUIRE)) == 0) { /* being filled */ }
            return t;
        }
        if (!k) {
            void *expect = NULL;
            if (!__atomic_compare_exchange_n(&ftab[i].f, &expect, f, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                if (expect == f) { probe--; continue; }
                continue;
            }
            int t = -1;
            for (int j = 0; j < ntaps && name; j++)
                if (mc_tap_matches(&taps[j], name)) { t = j + 1; break; }
            if (t > 0 && !param_is_pointer(f, taps[t - 1].ids_param)) {
                warn("tap %s matches kernel %s but its parameter %d is not a pointer: not tapped",
                     taps[t - 1].name, name, taps[t - 1].ids_param);
                t = -1;
            }
            __atomic_store_n(&ftab[i].tap, t, __ATOMIC_RELEASE);
            return t;
        }
    }
    int t = -1;   /* crowded table: match every time */
    for (int j = 0; j < ntaps && name; j++)
        if (mc_tap_matches(&taps[j], name)) { t = j + 1; break; }
    return t;
}

static void resolve_driver(void)
{
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&slot_init_lock);
    if (!done) {
        void *cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (cu) {
            *(void **)&drv.memcpy_dtoh_async = dlsym(cu, "cuMemcpyDtoHAsync_v2");
            *(void **)&drv.host_func = dlsym(cu, "cuLaunchHostFunc");
            *(void **)&drv.host_alloc = dlsym(cu, "cuMemHostAlloc");
            *(void **)&drv.is_capturing = dlsym(cu, "cuStreamIsCapturing");
            *(void **)&drv.ctx_device = dlsym(cu, "cuCtxGetDevice");
        }
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&slot_init_lock);
}

/* Pinned buffers, allocated once, never during a graph capture (allocation is not allowed
 * there). Returns 1 when ready. */
static int init_slots(void)
{
    pthread_mutex_lock(&slot_init_lock);
    if (!slots_ready) {
        slots_ready = -1;
        if (drv.memcpy_dtoh_async && drv.host_func && drv.host_alloc) {
            slots_ready = 1;
            for (int i = 0; i < TAP_SLOTS; i++)
                if (drv.host_alloc(&slots[i].buf, TAP_SLOT_BYTES, 0) != CUDA_SUCCESS) { slots_ready = -1; break; }
        }
        if (slots_ready < 0) warn("kernel-parameter taps disabled: pinned buffers or driver functions unavailable");
    }
    int ok = slots_ready == 1;
    pthread_mutex_unlock(&slot_init_lock);
    return ok;
}

/* Id i of a copied top-k id buffer, widened to int64 (the tap's ids_type: i64, u32, i32). */
static inline int64_t tap_id(const void *buf, int ids_type, int64_t i)
{
    if (ids_type == MC_DT_I64) return ((const int64_t *)buf)[i];
    if (ids_type == MC_DT_U32) return (int64_t)((const uint32_t *)buf)[i];
    return ((const int32_t *)buf)[i];
}

static void CUDA_CB tap_host_fn(void *arg)
{
    struct tap_slot *s = arg;
    int64_t n = s->rows * s->k;
    int64_t nexp = s->valid_below > 0 ? s->valid_below : 0;
    const struct mc_tap *tap = &taps[s->tap];
    if (nexp <= 0) {   /* no bound given: largest id seen + 1, capped */
        for (int64_t i = 0; i < n; i++) {
            int64_t id = tap_id(s->buf, tap->ids_type, i);
            if (id >= nexp && id < MC_TOPK_TAP_MAX_EXPERTS) nexp = id + 1;
        }
    }
    if (nexp > MC_TOPK_TAP_MAX_EXPERTS) nexp = MC_TOPK_TAP_MAX_EXPERTS;
    uint32_t size = (uint32_t)(sizeof(struct mc_rec_topk_tap) + (size_t)nexp * 4);
    struct mc_rec_topk_tap *r = core.reserve(MC_REC_TOPK_TAP, mc_rec_padded(size));
    if (r) {
        uint32_t *counts = (uint32_t *)(r + 1);
        int64_t invalid = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t id = tap_id(s->buf, tap->ids_type, i);
            if (id >= 0 && id < nexp) counts[id]++;
            else invalid++;
        }
        r->t_ns = core.now();
        r->correlation_id = s->correlation;
        r->rows = s->rows;
        r->k = s->k;
        r->experts = nexp;
        r->invalid = invalid;
        r->kernel_str = s->kernel_str;
        r->tap_str = tap_name_id[s->tap];
        r->device = s->device;
        core.commit(r);
    }
    int one = 1;   /* a graph-owned buffer (2) stays with its graph */
    __atomic_compare_exchange_n(&s->busy, &one, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

static void run_tap(int tapi, void *f, const char *name, CUstream stream, void **params,
                    const uint32_t grid[3], const uint32_t block[3], uint32_t correlation)
{
    (void)f;
    const struct mc_tap *tap = &taps[tapi];
    struct mc_tap_launch l = { params, -1, { grid[0], grid[1], grid[2] }, { block[0], block[1], block[2] } };
    int64_t rows, k, vb = 0;
    if (!params || !params[tap->ids_param] || mc_tap_eval(tap->rows, &l, &rows) ||
        mc_tap_eval(tap->k, &l, &k) || (tap->valid_below[0] && mc_tap_eval(tap->valid_below, &l, &vb)))
        return;
    int esz = tap->ids_type == MC_DT_I64 ? 8 : 4;
    if (rows <= 0 || k <= 0) return;
    uint64_t bytes = (uint64_t)rows * (uint64_t)k * (uint64_t)esz;
    if (bytes > TAP_SLOT_BYTES) {
        if (!tap_warned_size++) warn("tap %s: %lld x %lld ids exceed the %u-byte buffer; such launches are not tapped",
                                     tap->name, (long long)rows, (long long)k, TAP_SLOT_BYTES);
        tap_dropped++;
        return;
    }
    /* Under CUDA graph capture the copy and the host function become graph nodes: the
     * buffer then belongs to the graph (each replay rewrites it and reports again). */
    resolve_driver();
    int in_capture = 0;
    if (drv.is_capturing) {
        CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
        in_capture = drv.is_capturing(stream, &cs) == CUDA_SUCCESS && cs != CU_STREAM_CAPTURE_STATUS_NONE;
    }
    if (in_capture ? __atomic_load_n(&slots_ready, __ATOMIC_ACQUIRE) != 1 : !init_slots()) {
        if (in_capture && !tap_warned_capture++)
            warn("tap %s: first tapped launch happened inside a CUDA graph capture (no buffers yet); "
                 "captured launches are not tapped", tap->name);
        tap_dropped++;
        return;
    }
    struct tap_slot *s = NULL;
    for (int i = 0; i < TAP_SLOTS; i++) {
        int expect = 0;
        if (__atomic_compare_exchange_n(&slots[i].busy, &expect, in_capture ? 2 : 1, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) { s = &slots[i]; break; }
    }
    if (!s) {
        if (!tap_warned_busy++) warn("tap %s: all %d tap buffers busy or owned by captured graphs; "
                                     "some launches not tapped", tap->name, TAP_SLOTS);
        tap_dropped++;
        return;
    }
    CUdeviceptr ids;
    memcpy(&ids, params[tap->ids_param], sizeof ids);
    s->tap = tapi;
    s->rows = rows;
    s->k = k;
    s->valid_below = vb;
    s->kernel_str = intern_kernel(name);
    s->correlation = correlation;
    CUdevice dev = -1;
    s->device = drv.ctx_device && drv.ctx_device(&dev) == CUDA_SUCCESS ? dev : -1;
    if (drv.memcpy_dtoh_async(s->buf, ids, bytes, stream) != CUDA_SUCCESS ||
        drv.host_func(stream, tap_host_fn, s) != CUDA_SUCCESS) {
        __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
        tap_dropped++;
    }
}

static void CUPTIAPI api_callback(void *ud, CUpti_CallbackDomain dom, CUpti_CallbackId cbid,
                                  const void *data)
{
    (void)ud;
    const CUpti_CallbackData *cb = data;
    if (dom != CUPTI_CB_DOMAIN_DRIVER_API || cb->callbackSite != CUPTI_API_EXIT || in_tap) return;
    if (cb->functionReturnValue && *(const CUresult *)cb->functionReturnValue != CUDA_SUCCESS) return;
    in_tap = 1;
    if (cbid == CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel || cbid == CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel_ptsz) {
        const cuLaunchKernel_params *p = cb->functionParams;
        int t = tap_for((void *)p->f, cb->symbolName);
        if (t > 0) {
            uint32_t g[3] = { p->gridDimX, p->gridDimY, p->gridDimZ }, b[3] = { p->blockDimX, p->blockDimY, p->blockDimZ };
            run_tap(t - 1, (void *)p->f, cb->symbolName, p->hStream, p->kernelParams, g, b, cb->correlationId);
        }
    } else if (cbid == CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx || cbid == CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx_ptsz) {
        const cuLaunchKernelEx_params *p = cb->functionParams;
        int t = p->config ? tap_for((void *)p->f, cb->symbolName) : -1;
        if (t > 0) {
            uint32_t g[3] = { p->config->gridDimX, p->config->gridDimY, p->config->gridDimZ };
            uint32_t b[3] = { p->config->blockDimX, p->config->blockDimY, p->config->blockDimZ };
            run_tap(t - 1, (void *)p->f, cb->symbolName, p->config->hStream, p->kernelParams, g, b, cb->correlationId);
        }
    }
    in_tap = 0;
}

static void load_taps(void)
{
    char err[300];
    const char *env = getenv("MOECAP_TAPS");
    char path[PATH_MAX];
    if (env && !strcmp(env, "0")) return;
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        /* Default: <root>/data/taps with the library in <root>/build/lib. */
        Dl_info info;
        if (!dladdr((void *)&load_taps, &info) || !info.dli_fname) return;
        char *abs = realpath(info.dli_fname, NULL);
        snprintf(path, sizeof path, "%s", abs ? abs : info.dli_fname);
        free(abs);
        for (int up = 0; up < 3; up++) { char *s = strrchr(path, '/'); if (s) *s = 0; }
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "/data/taps");
    }
    char *save = NULL;
    for (char *p = strtok_r(path, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        if (mc_taps_load_path(p, taps, MAX_TAPS, &ntaps, err, sizeof err) < 0 && env && *env)
            warn("tap descriptions not loaded: %s", err);
    }
    for (int i = 0; i < ntaps; i++) tap_name_id[i] = core.intern(taps[i].name);
}

/* ---- start / flush / fork ---- */

static int state;   /* 0 = not started, 1 = running, -1 = failed/disabled */
static CUpti_SubscriberHandle subscriber;

static struct mc_cuda_host host;   /* the shim's CUDA side; zeros when absent */

static uint64_t shim_launches(void)
{
    return host.launch_count ? host.launch_count() : 0;
}

static void cupti_flush(void)
{
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != 1) return;
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    uint64_t launches = n_api_launches + shim_launches();
    if (!warned_zero && kernels_enabled && n_kernels == 0 && launches > 0) {
        warned_zero = 1;
        warn("%llu kernel launches seen but 0 kernel activity records: another CUPTI client "
             "(e.g. the PyTorch profiler) probably holds the activity stream; kernel times are missing",
             (unsigned long long)launches);
    }
    if (tap_dropped && core.note)
        core.note(MC_NOTE_WARNING, "CUPTI taps: %llu tapped launches could not be recorded",
                  (unsigned long long)tap_dropped);
}

static void cupti_fork_child(void)
{
    /* CUDA and CUPTI are unusable in a forked child: stop touching them. */
    __atomic_store_n(&state, -1, __ATOMIC_RELEASE);
}

static const struct mc_family cupti_family = {
    .name = "cupti", .flush = cupti_flush, .fork_child = cupti_fork_child,
};

int mc_cupti_start(const struct mc_cuda_host *shim_cuda)
{
    int expect = 0;
    if (!__atomic_compare_exchange_n(&state, &expect, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return state == 1 || state == 2 ? 0 : -1;
    if (find_core() != 0 || (core.enabled && !core.enabled())) {
        __atomic_store_n(&state, -1, __ATOMIC_RELEASE);
        return -1;
    }
    if (shim_cuda) host = *shim_cuda;
    calibrate();
    int unusable = 0;   /* CUPTI answers nothing (no GPU or driver): no taps either */
    CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    if (r != CUPTI_SUCCESS) {
        unusable = 1;
        warn("cuptiActivityRegisterCallbacks failed (%s): no kernel/memcpy activity records", cupti_err(r));
    } else {
        static const struct { CUpti_ActivityKind kind; const char *name; } kinds[] = {
            { CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, "CONCURRENT_KERNEL" },
            { CUPTI_ACTIVITY_KIND_MEMCPY, "MEMCPY" },
            { CUPTI_ACTIVITY_KIND_MEMSET, "MEMSET" },
            { CUPTI_ACTIVITY_KIND_RUNTIME, "RUNTIME" },
            { CUPTI_ACTIVITY_KIND_DRIVER, "DRIVER" },
            { CUPTI_ACTIVITY_KIND_GRAPH_TRACE, "GRAPH_TRACE" },
        };
        char failed[256] = "";
        CUptiResult first_err = CUPTI_SUCCESS;
        int nfail = 0;
        /* API activity (every runtime/driver call) costs the most; MOECAP_CUPTI_API=0 skips it
         * (kernels and copies still come, without their API correlation records). */
        const char *api = getenv("MOECAP_CUPTI_API");
        int want_api = !(api && !strcmp(api, "0"));
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
            if (!want_api && (kinds[i].kind == CUPTI_ACTIVITY_KIND_RUNTIME || kinds[i].kind == CUPTI_ACTIVITY_KIND_DRIVER))
                continue;
            r = cuptiActivityEnable(kinds[i].kind);
            if (r == CUPTI_SUCCESS) {
                if (kinds[i].kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) kernels_enabled = 1;
                continue;
            }
            if (!nfail++) first_err = r;
            size_t len = strlen(failed);
            snprintf(failed + len, sizeof failed - len, "%s%s", len ? " " : "", kinds[i].name);
        }
        /* Deliver records during long runs too, not only when 4 MiB buffers fill. */
        const char *fp = getenv("MOECAP_CUPTI_FLUSH_MS");
        long period = fp && *fp ? strtol(fp, NULL, 10) : 1000;
        if (period > 0 && nfail < (int)(sizeof kinds / sizeof kinds[0]))
            cuptiActivityFlushPeriod((uint32_t)period);
        if (nfail == (int)(sizeof kinds / sizeof kinds[0])) unusable = 1;
        if (nfail == (int)(sizeof kinds / sizeof kinds[0]))
            warn("activity tracing unavailable (%s; no GPU or driver?): no kernel, memcpy or API activity records",
                 cupti_err(first_err));
        else if (nfail)
            warn("activity kinds not enabled: %s (%s)%s", failed, cupti_err(first_err),
                 first_err == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED || first_err == CUPTI_ERROR_NOT_COMPATIBLE
                     ? ": another CUPTI client is active" : "");
    }
    int taps_on = 0;
    if (!unusable) load_taps();
    if (ntaps > 0) {
        r = cuptiSubscribe(&subscriber, (CUpti_CallbackFunc)api_callback, NULL);
        if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED) {
            warn("another CUPTI subscriber is active (e.g. the PyTorch profiler or Nsight): "
                 "kernel-parameter taps are off; activity records continue where CUPTI allows");
        } else if (r != CUPTI_SUCCESS) {
            warn("cuptiSubscribe failed (%s): kernel-parameter taps are off", cupti_err(r));
        } else {
            taps_on = 1;
            cuptiEnableCallback(1, subscriber, CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel);
            cuptiEnableCallback(1, subscriber, CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel_ptsz);
            cuptiEnableCallback(1, subscriber, CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx);
            cuptiEnableCallback(1, subscriber, CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx_ptsz);
        }
    }
    if (core.family_register) core.family_register(&cupti_family);
    /* Injected without the shim's interposers seeing CUDA use: start NVML from here too
     * (idempotent when the shim already did). */
    const char *nv = getenv("MOECAP_NVML");
    if (host.nvml_start && !(nv && !strcmp(nv, "0"))) host.nvml_start();
    if (kernels_enabled || taps_on)
        core.note(MC_NOTE_INFO, "CUPTI collector active (kernel records %s, %d kernel-parameter taps)",
                  kernels_enabled ? "on" : "off", taps_on ? ntaps : 0);
    __atomic_store_n(&state, 1, __ATOMIC_RELEASE);
    return 0;
}

/* Entry point when loaded through CUDA_INJECTION64_PATH. */
int InitializeInjection(void);
int InitializeInjection(void)
{
    /* Loaded by CUDA, not by the shim: take the shim's CUDA side from the core library
     * (absent in a build without it: launch counts and NVML are then not used). */
    const struct mc_cuda_host *h = NULL;
    if (find_core() == 0) h = (const struct mc_cuda_host *)dlsym(core_handle, "mc_cuda_host");
    return mc_cupti_start(h) == 0 ? 1 : 0;
}
