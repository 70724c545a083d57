/* Router-logit tap (docs/gpu.md "Router-logit tap", docs/attribution.md §4b): right
 * after a cuBLAS GEMM shaped like a MoE router (m = E experts, k = d hidden, from
 * MOECAP_ROUTER_TAP="E:d[,E:d...]" or MOECAP_MODEL=config.json), copy its output
 * (tokens x E logits) on the same stream into a pinned buffer, and let a host function
 * (cudaLaunchHostFunc, run in stream order after the copy) write MC_REC_ROUTER_TAP with the
 * logits. The post-processor applies the model's top-k rule, so grouped or fused expert
 * kernels that hide which experts ran are still attributed exactly.
 *
 * Works under CUDA graph capture: the copy and host function become graph nodes with a
 * buffer of their own, and every replay writes one record. Buffers are allocated before any
 * capture (at the first router GEMM outside capture); during capture nothing is allocated.
 * Record: t_ns = the router GEMM record's t_begin_ns and tid = its thread, so the two are
 * joined exactly; layout row-major tokens x experts (ldc must equal m). */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "shim_core.h"
#include "mc_cuda.h"

#define MAX_SHAPES 8
#define TAP_SLOTS 64
#define TAP_SLOT_BYTES (256u << 10)

static int state;               /* 0 = not read yet, 1 = on, -1 = off */
static int nshapes;
static int64_t shape_e[MAX_SHAPES], shape_d[MAX_SHAPES];

struct rt_slot {
    int busy;                   /* 0 free, 1 in flight, 2 owned by a captured graph */
    void *buf;
    uint64_t t_ns;
    int64_t tokens, experts;
    int32_t tid;
    uint16_t dtype;
};
static struct rt_slot slots[TAP_SLOTS];
static int pool_state;          /* 0 not tried, 1 ok, -1 failed */
static uint64_t tap_dropped;
static int warned_size, warned_busy, warned_capture, warned_ld;

/* "num_experts" / "num_local_experts" / "n_routed_experts" and "hidden_size" from a
 * config.json, by plain text search (the shim does not link a JSON library; the file is the
 * user's model config). Returns 0 on success. */
static int json_int(const char *text, const char *key, int64_t *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(text, pat);
    if (!p) return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != ':') return -1;
    p++;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v <= 0 || v > (1 << 20)) return -1;
    *out = v;
    return 0;
}

int mc_router_tap_parse_config(const char *text, int64_t *experts, int64_t *hidden)
{
    if (json_int(text, "hidden_size", hidden) != 0) return -1;
    if (json_int(text, "num_experts", experts) == 0 || json_int(text, "num_local_experts", experts) == 0 ||
        json_int(text, "n_routed_experts", experts) == 0)
        return 0;
    return -1;
}

int mc_router_tap_parse_spec(const char *spec, int64_t *e, int64_t *d, int max)
{
    int n = 0;
    const char *p = spec;
    while (*p && n < max) {
        char *end;
        long long a = strtoll(p, &end, 10);
        if (end == p || *end != ':' || a <= 0) return -1;
        p = end + 1;
        long long b = strtoll(p, &end, 10);
        if (end == p || b <= 0) return -1;
        e[n] = a;
        d[n] = b;
        n++;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n;
}

static void configure(void)
{
    const char *spec = getenv("MOECAP_ROUTER_TAP");
    const char *model = getenv("MOECAP_MODEL");
    if (spec && !strcmp(spec, "0")) { state = -1; return; }
    if (spec && *spec) {
        nshapes = mc_router_tap_parse_spec(spec, shape_e, shape_d, MAX_SHAPES);
        if (nshapes <= 0) {
            mc_note(MC_NOTE_WARNING, "MOECAP_ROUTER_TAP=%s: expected E:d[,E:d...] (experts:hidden); "
                    "router-logit tap off", spec);
            nshapes = 0;
        }
    } else if (model && *model) {
        FILE *f = fopen(model, "r");
        char *buf = malloc(1 << 20);
        size_t n = (f && buf) ? fread(buf, 1, (1 << 20) - 1, f) : 0;
        if (f) fclose(f);
        if (buf) {
            buf[n] = 0;
            if (mc_router_tap_parse_config(buf, &shape_e[0], &shape_d[0]) == 0) nshapes = 1;
            else mc_note(MC_NOTE_WARNING, "MOECAP_MODEL=%s: no hidden_size / num_experts found; "
                         "router-logit tap off", model);
        }
        free(buf);
    }
    __atomic_store_n(&state, nshapes > 0 ? 1 : -1, __ATOMIC_RELEASE);
}

typedef cudaError_t (*host_alloc_fn)(void **, size_t, unsigned int);
typedef cudaError_t (*memcpy_async_fn)(void *, const void *, size_t, enum cudaMemcpyKind, cudaStream_t);
typedef cudaError_t (*host_func_fn)(cudaStream_t, cudaHostFn_t, void *);
typedef cudaError_t (*capturing_fn)(cudaStream_t, enum cudaStreamCaptureStatus *);

static int ensure_pool(void)
{
    int s = __atomic_load_n(&pool_state, __ATOMIC_ACQUIRE);
    if (s) return s > 0;
    static int lock;
    while (__atomic_exchange_n(&lock, 1, __ATOMIC_ACQUIRE)) { /* first router GEMMs only */ }
    if (!pool_state) {
        MC_REAL(host_alloc_fn, host_alloc, "cudaHostAlloc");
        int ok = host_alloc != NULL;
        for (int i = 0; ok && i < TAP_SLOTS; i++)
            if (host_alloc(&slots[i].buf, TAP_SLOT_BYTES, cudaHostAllocDefault) != cudaSuccess) ok = 0;
        if (!ok) mc_note(MC_NOTE_WARNING, "router-logit tap: pinned buffers unavailable; tap off");
        __atomic_store_n(&pool_state, ok ? 1 : -1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&lock, 0, __ATOMIC_RELEASE);
    return pool_state > 0;
}

static void CUDART_CB tap_host_fn(void *arg)
{
    struct rt_slot *s = arg;
    uint64_t bytes = (uint64_t)s->tokens * (uint64_t)s->experts * (uint64_t)mc_dtype_bytes(s->dtype);
    struct mc_rec_router_tap *r = mc_rec_reserve(MC_REC_ROUTER_TAP, (uint32_t)(sizeof *r + bytes));
    if (r) {
        r->t_ns = s->t_ns;
        r->gemm_seq = 0;
        r->tokens = s->tokens;
        r->experts = s->experts;
        r->tid = s->tid;
        r->dtype = s->dtype;
        r->layout = MC_LAYOUT_ROW_MAJOR;
        memcpy(r + 1, s->buf, bytes);
        mc_rec_commit(r);
    } else {
        __atomic_add_fetch(&tap_dropped, 1, __ATOMIC_RELAXED);
    }
    int one = 1;
    __atomic_compare_exchange_n(&s->busy, &one, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

void mc_router_tap_after_gemm(int64_t m, int64_t n, int64_t k, int64_t ldc, const void *c,
                              int dtype_c, uint64_t stream, uint64_t t_begin_ns)
{
    int st = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (st == 0) { configure(); st = __atomic_load_n(&state, __ATOMIC_ACQUIRE); }
    if (st < 0) return;
    int64_t experts = -1;
    for (int i = 0; i < nshapes; i++)
        if (m == shape_e[i] && k == shape_d[i]) { experts = m; break; }
    if (experts < 0 || n <= 0 || !c) return;
    int esz = mc_dtype_bytes(dtype_c);
    if (esz == 0) return;
    if (ldc != m) {
        if (!warned_ld++) mc_note(MC_NOTE_WARNING, "router-logit tap: router output with ldc %lld != %lld not tapped",
                                  (long long)ldc, (long long)m);
        return;
    }
    uint64_t bytes = (uint64_t)n * (uint64_t)m * (uint64_t)esz;
    if (bytes > TAP_SLOT_BYTES) {
        __atomic_add_fetch(&tap_dropped, 1, __ATOMIC_RELAXED);
        if (!warned_size++) mc_note(MC_NOTE_WARNING, "router-logit tap: %lld tokens x %lld experts exceed the "
                                    "%u-byte buffer; such steps are not tapped", (long long)n, (long long)m,
                                    TAP_SLOT_BYTES);
        return;
    }
    MC_REAL(capturing_fn, capturing, "cudaStreamIsCapturing");
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (capturing) capturing((cudaStream_t)(uintptr_t)stream, &cs);
    int in_capture = cs != cudaStreamCaptureStatusNone;
    if (in_capture ? __atomic_load_n(&pool_state, __ATOMIC_ACQUIRE) <= 0 : !ensure_pool()) {
        __atomic_add_fetch(&tap_dropped, 1, __ATOMIC_RELAXED);
        if (in_capture && !warned_capture++)
            mc_note(MC_NOTE_WARNING, "router-logit tap: first router GEMM seen during graph capture "
                    "(no buffers yet); captured graphs are not tapped");
        return;
    }
    struct rt_slot *s = NULL;
    for (int i = 0; i < TAP_SLOTS && !s; i++) {
        int z = 0;
        if (__atomic_compare_exchange_n(&slots[i].busy, &z, in_capture ? 2 : 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            s = &slots[i];
    }
    if (!s) {
        __atomic_add_fetch(&tap_dropped, 1, __ATOMIC_RELAXED);
        if (!warned_busy++) mc_note(MC_NOTE_WARNING, "router-logit tap: all %d buffers busy or owned by captured "
                                    "graphs; some router outputs not tapped", TAP_SLOTS);
        return;
    }
    s->t_ns = t_begin_ns;
    s->tokens = n;
    s->experts = m;
    s->tid = mc_tid();
    s->dtype = (uint16_t)dtype_c;
    MC_REAL(memcpy_async_fn, copy, "cudaMemcpyAsync");
    MC_REAL(host_func_fn, host_func, "cudaLaunchHostFunc");
    cudaStream_t cs_stream = (cudaStream_t)(uintptr_t)stream;
    if (!copy || !host_func || copy(s->buf, c, bytes, cudaMemcpyDeviceToHost, cs_stream) != cudaSuccess ||
        host_func(cs_stream, tap_host_fn, s) != cudaSuccess) {
        __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
        __atomic_add_fetch(&tap_dropped, 1, __ATOMIC_RELAXED);
    }
}

uint64_t mc_router_tap_dropped(void) { return __atomic_load_n(&tap_dropped, __ATOMIC_RELAXED); }
