/* Tests of the CUPTI collector (cupti/collector.c) against a fake CUPTI and a fake driver:
 * activity records become trace records with times moved onto CLOCK_MONOTONIC, names
 * interned, copy kinds mapped, API records filtered to launches/copies/syncs, dropped
 * counts kept; a subscriber conflict and a silent activity stream are reported; a
 * kernel-parameter tap (moe-ref's mr_fused_topk description) turns a launch's top-k ids
 * into the tokens-per-expert histogram computed here by hand. */
#include <cuda.h>
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "mc_test.h"
#include "fake_core.h"
#include "fake_cupti.h"
#include "mc_cuda.h"
#include "topk_tap.h"


static uint64_t mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

extern int fake_cupti_enabled[64];

static int has_note(const char *needle)
{
    for (int i = 0; i < fake_nnotes; i++) if (strstr(fake_notes[i], needle)) return 1;
    return 0;
}

static void add_api(CUpti_ActivityKind kind, uint32_t cbid, uint32_t corr)
{
    CUpti_ActivityAPI a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    a.cbid = cbid;
    a.start = 1000;
    a.end = 2000;
    a.threadId = 77;
    a.correlationId = corr;
    fake_cupti_add(&a, sizeof a);
}

/* Runs fn in a child (each child has a fresh collector); passes if the child exits 0. */
static int in_child(int (*fn)(void))
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) _exit(fn());
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int conflict_child(void)
{
    setenv("FAKE_CUPTI_SUBSCRIBE", "conflict", 1);
    fake_reset();
    mc_cupti_start(NULL);
    return has_note("another CUPTI subscriber") ? 0 : 1;
}

static int silent_child(void)
{
    fake_reset();
    mc_cupti_start(NULL);
    add_api(CUPTI_ACTIVITY_KIND_RUNTIME, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000, 5);
    fake_flush_families();
    return has_note("1 kernel launches seen but 0 kernel activity records") ? 0 : 1;
}

/* MOECAP_CUPTI_API=0: kernel and copy activity on, runtime/driver API activity off. */
static int no_api_child(void)
{
    setenv("MOECAP_CUPTI_API", "0", 1);
    fake_reset();
    mc_cupti_start(NULL);
    return fake_cupti_enabled[CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL] && fake_cupti_enabled[CUPTI_ACTIVITY_KIND_MEMCPY] &&
           !fake_cupti_enabled[CUPTI_ACTIVITY_KIND_RUNTIME] && !fake_cupti_enabled[CUPTI_ACTIVITY_KIND_DRIVER] ? 0 : 1;
}

static void test_api_activity_off(void) { MC_CHECK(in_child(no_api_child), "API kinds not enabled"); }

static void test_subscriber_conflict(void) { MC_CHECK(in_child(conflict_child), "conflict reported as a note"); }
static void test_silent_activity(void) { MC_CHECK(in_child(silent_child), "launches without kernel records reported"); }

static void test_activity_records(void)
{
    fake_reset();
    MC_CHECK(mc_cupti_start(NULL) == 0, "collector starts");
    uint64_t s = mono() - FAKE_CUPTI_BEHIND_NS;   /* "now" on CUPTI's clock */
    CUpti_ActivityKernel10 k;
    memset(&k, 0, sizeof k);
    k.kind = CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL;
    k.start = s; k.end = s + 2000;
    k.deviceId = 1; k.streamId = 7; k.correlationId = 42;
    k.gridX = 4; k.gridY = 1; k.gridZ = 1; k.blockX = 128; k.blockY = 1; k.blockZ = 1;
    k.staticSharedMemory = 1024; k.dynamicSharedMemory = 512;
    k.name = "moe_kernel_a";
    k.graphId = 0;
    fake_cupti_add(&k, sizeof k);
    k.start = s + 5000; k.end = s + 9000; k.correlationId = 43; k.graphId = 9;
    fake_cupti_add(&k, sizeof k);
    CUpti_ActivityMemcpy6 m;
    memset(&m, 0, sizeof m);
    m.kind = CUPTI_ACTIVITY_KIND_MEMCPY;
    m.copyKind = CUPTI_ACTIVITY_MEMCPY_KIND_HTOD;
    m.flags = CUPTI_ACTIVITY_FLAG_MEMCPY_ASYNC;
    m.bytes = 4096; m.start = s; m.end = s + 100; m.deviceId = 1; m.streamId = 7; m.correlationId = 44;
    fake_cupti_add(&m, sizeof m);
    CUpti_ActivityMemset4 ms;
    memset(&ms, 0, sizeof ms);
    ms.kind = CUPTI_ACTIVITY_KIND_MEMSET;
    ms.bytes = 256; ms.start = s; ms.end = s + 10;
    fake_cupti_add(&ms, sizeof ms);
    add_api(CUPTI_ACTIVITY_KIND_RUNTIME, CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000, 42);
    add_api(CUPTI_ACTIVITY_KIND_DRIVER, 1, 45);   /* cuCtxGetDevice: dropped */
    CUpti_ActivityGraphTrace2 g;
    memset(&g, 0, sizeof g);
    g.kind = CUPTI_ACTIVITY_KIND_GRAPH_TRACE;
    g.graphId = 9; g.start = s; g.end = s + 9000; g.streamId = 7;
    fake_cupti_add(&g, sizeof g);
    fake_cupti_dropped = 3;
    fake_flush_families();

    MC_CHECK(fake_count(MC_REC_KERNEL) == 2, "2 kernels, got %d", fake_count(MC_REC_KERNEL));
    struct mc_rec_kernel *k0 = fake_find(MC_REC_KERNEL, 0), *k1 = fake_find(MC_REC_KERNEL, 1);
    if (k0 && k1) {
        int64_t err = (int64_t)k0->start_ns - (int64_t)(s + FAKE_CUPTI_BEHIND_NS);
        MC_CHECK(err > -50000 && err < 50000, "start on host clock, off by %lld ns", (long long)err);
        MC_CHECK(k0->end_ns - k0->start_ns == 2000, "duration kept");
        MC_CHECK(k0->stream == 7 && k0->correlation_id == 42 && k0->device == 1, "ids");
        MC_CHECK(k0->grid[0] == 4 && k0->block[0] == 128 && k0->shared_mem == 1536, "launch shape");
        MC_CHECK(k0->source == 0 && k0->graph_id == 0 && k1->graph_id == 9, "source, graph id");
        const char *nm = fake_string(k0->name_str);
        MC_CHECK(nm && !strcmp(nm, "moe_kernel_a") && k1->name_str == k0->name_str, "name interned once");
    }
    struct mc_rec_memcpy *c0 = fake_find(MC_REC_MEMCPY, 0), *c1 = fake_find(MC_REC_MEMCPY, 1);
    MC_CHECK(c0 && c0->kind == MC_COPY_H2D && c0->bytes == 4096 && c0->async == 1 && c0->source == 0 &&
             c0->correlation_id == 44, "memcpy");
    MC_CHECK(c1 && c1->kind == MC_MEMSET && c1->bytes == 256, "memset");
    MC_CHECK(fake_count(MC_REC_API) == 2, "runtime launch + graph kept, driver query dropped: %d", fake_count(MC_REC_API));
    struct mc_rec_api *a0 = fake_find(MC_REC_API, 0), *a1 = fake_find(MC_REC_API, 1);
    if (a0 && a1) {
        const char *nm = fake_string(a0->name_str);
        MC_CHECK(a0->api == MC_API_CUPTI_RUNTIME && nm && !strcmp(nm, "cudaLaunchKernel") &&
                 a0->correlation_id == 42 && a0->tid == 77, "runtime API record");
        MC_CHECK(a1->api == MC_API_CUPTI_GRAPH && a1->arg0 == 9, "graph execution");
    }
    struct mc_rec_dropped *d = fake_find(MC_REC_DROPPED, 0);
    MC_CHECK(d && d->count == 3, "dropped count");
    MC_CHECK(!has_note("0 kernel activity records"), "no silent-stream warning when kernels came");
}

static void launch(const char *name, void *f, void **params, CUresult rc)
{
    cuLaunchKernel_params p;
    memset(&p, 0, sizeof p);
    p.f = (CUfunction)f;
    p.gridDimX = p.gridDimY = p.gridDimZ = 1;
    p.blockDimX = 64; p.blockDimY = p.blockDimZ = 1;
    p.hStream = (CUstream)(uintptr_t)0x33;
    p.kernelParams = params;
    CUpti_CallbackData cb;
    memset(&cb, 0, sizeof cb);
    cb.callbackSite = CUPTI_API_EXIT;
    cb.functionParams = &p;
    cb.functionReturnValue = &rc;
    cb.symbolName = name;
    cb.correlationId = 99;
    fake_cupti_callback(NULL, CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel, &cb);
}

static void test_kernel_tap(void)
{
    MC_CHECK(fake_cupti_callback != NULL, "subscribed (taps loaded)");
    if (!fake_cupti_callback) return;
    fake_reset();
    /* mr_fused_topk(logits, T, E, K, ids, w, ...): T = 6 tokens, E = 8, K = 2. Expert 8 is
     * outside [0, E): counted invalid. By hand: 0 x3, 1 x1, 2 x1, 3 x4, 5 x1, 7 x1. */
    int ids[12] = { 0, 3, 3, 5, 0, 3, 7, 1, 3, 0, 8, 2 };
    float logits[48] = {0}, w[12] = {0};
    void *lp = logits, *ip = ids, *wp = w;
    int T = 6, E = 8, K = 2, zero = 0;
    void *params[11] = { &lp, &T, &E, &K, &ip, &wp, &zero, &zero, &zero, &zero, &zero };
    launch("mr_fused_topk", (void *)(uintptr_t)0x5000, params, CUDA_SUCCESS);
    launch("some_other_kernel", (void *)(uintptr_t)0x6000, params, CUDA_SUCCESS);
    launch("mr_fused_topk", (void *)(uintptr_t)0x5000, params, CUDA_ERROR_INVALID_VALUE);  /* failed launch */
    MC_CHECK(fake_count(MC_REC_TOPK_TAP) == 1, "one tap record, got %d", fake_count(MC_REC_TOPK_TAP));
    struct mc_rec_topk_tap *r = fake_find(MC_REC_TOPK_TAP, 0);
    if (!r) return;
    const uint32_t *c = (const uint32_t *)(r + 1);
    uint32_t want[8] = { 3, 1, 1, 4, 0, 1, 0, 1 };
    MC_CHECK(r->rows == 6 && r->k == 2 && r->experts == 8 && r->invalid == 1, "shape %lld %lld %lld %lld",
             (long long)r->rows, (long long)r->k, (long long)r->experts, (long long)r->invalid);
    MC_CHECK(memcmp(c, want, sizeof want) == 0, "histogram %u %u %u %u %u %u %u %u", c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    MC_CHECK(r->correlation_id == 99 && r->device == 2, "correlation and device");
    const char *tn = fake_string(r->tap_str), *kn = fake_string(r->kernel_str);
    MC_CHECK(tn && !strcmp(tn, "moe-ref.fused_topk") && kn && !strcmp(kn, "mr_fused_topk"), "names");
}

extern int fake_driver_capturing;

/* Under graph capture each tapped launch keeps its buffer (32 of them): 33 captured
 * launches give 32 records and one note. */
static void test_kernel_tap_capture(void)
{
    if (!fake_cupti_callback) return;
    fake_reset();
    int ids[4] = { 1, 2, 1, 3 };
    float lg[16] = {0}, w[4] = {0};
    void *lp = lg, *ip = ids, *wp = w;
    int T = 2, E = 4, K = 2, zero = 0;
    void *params[11] = { &lp, &T, &E, &K, &ip, &wp, &zero, &zero, &zero, &zero, &zero };
    fake_driver_capturing = 1;
    for (int i = 0; i < 33; i++) launch("mr_fused_topk", (void *)(uintptr_t)0x5000, params, CUDA_SUCCESS);
    fake_driver_capturing = 0;
    MC_CHECK(fake_count(MC_REC_TOPK_TAP) == 32, "32 captured taps, got %d", fake_count(MC_REC_TOPK_TAP));
    MC_CHECK(has_note("owned by captured graphs"), "exhaustion reported");
    struct mc_rec_topk_tap *r = fake_find(MC_REC_TOPK_TAP, 0);
    const uint32_t *c = r ? (const uint32_t *)(r + 1) : NULL;
    MC_CHECK(c && c[0] == 0 && c[1] == 2 && c[2] == 1 && c[3] == 1, "captured histogram");
}

int main(void)
{
    char taps[4096];
    const char *root = getenv("MOECAP_ROOT");
    snprintf(taps, sizeof taps, "%s/data/taps", root ? root : ".");
    setenv("MOECAP_TAPS", taps, 1);
    setenv("MOECAP_CUPTI_FLUSH_MS", "0", 1);
    MC_RUN(test_api_activity_off);
    MC_RUN(test_subscriber_conflict);
    MC_RUN(test_silent_activity);
    MC_RUN(test_activity_records);
    MC_RUN(test_kernel_tap);
    MC_RUN(test_kernel_tap_capture);
    return MC_TEST_EXIT();
}
