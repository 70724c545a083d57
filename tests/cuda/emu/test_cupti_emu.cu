/* Unit test of the emulated CUPTI + driver (emu_cupti.c, emu_cuda_driver.c), compiled like
 * the engine (g++ -x c++ -include simt_emu.h) and calling the CUPTI API the way a client
 * does: the cuLaunchKernel callback's params (grid, block, stream, pointers to the argument
 * values), cuFuncGetParamInfo offsets and sizes against the CUDA ABI layout derived by hand
 * for a kernel with mixed parameter types, correlation ids shared by the callback, the
 * runtime and driver API records and the kernel record, thread ids, memcpy / memset
 * records, record iteration, and small client buffers (many buffers, nothing dropped). */
/* cupti.h's generated param structs have fields named like simt_emu.h's index macros */
#pragma push_macro("gridDim")
#pragma push_macro("blockDim")
#pragma push_macro("threadIdx")
#pragma push_macro("blockIdx")
#undef gridDim
#undef blockDim
#undef threadIdx
#undef blockIdx
#include <cupti.h>
#pragma pop_macro("gridDim")
#pragma pop_macro("blockDim")
#pragma pop_macro("threadIdx")
#pragma pop_macro("blockIdx")
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>
#include "mc_test.h"

struct pair_ic { int a; char b; };   /* size 8, alignment 4 */

__global__ void k_params(char c, double d, int i, float *out, short s, pair_ic st, long long ll, float f)
{
    if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = (float)(c + d + i + s + st.a + st.b + ll + f);
}

extern "C" CUresult cuFuncGetParamInfo(CUfunction f, size_t idx, size_t *off, size_t *size);

/* ---- a CUPTI client ---- */

static size_t buf_bytes = 1 << 16;
static int buffers_completed;
static std::vector<std::vector<uint8_t>> records;   /* copies of every record delivered */

static void CUPTIAPI on_request(uint8_t **buf, size_t *size, size_t *max)
{
    *buf = (uint8_t *)aligned_alloc(8, buf_bytes);
    *size = buf_bytes;
    *max = 0;
}

static size_t rec_size(CUpti_ActivityKind k)
{
    switch (k) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: return sizeof(CUpti_ActivityKernel10);
    case CUPTI_ACTIVITY_KIND_MEMCPY: return sizeof(CUpti_ActivityMemcpy6);
    case CUPTI_ACTIVITY_KIND_MEMSET: return sizeof(CUpti_ActivityMemset4);
    default: return sizeof(CUpti_ActivityAPI);
    }
}

static void CUPTIAPI on_complete(CUcontext, uint32_t, uint8_t *buf, size_t, size_t valid)
{
    CUpti_Activity *r = NULL;
    while (cuptiActivityGetNextRecord(buf, valid, &r) == CUPTI_SUCCESS)
        records.emplace_back((uint8_t *)r, (uint8_t *)r + rec_size(r->kind));
    if (valid) buffers_completed++;
    free(buf);
}

struct seen_cb {
    int enter, exit;
    uint32_t corr_enter, corr_exit;
    const char *symbol;
    cuLaunchKernel_params p;
    char c; double d; int i; float *out; short s; pair_ic st; long long ll; float f;
    size_t off[9], size[9];
    CUresult info8;
};
static seen_cb seen;

static void CUPTIAPI on_callback(void *, CUpti_CallbackDomain dom, CUpti_CallbackId cbid, const void *data)
{
    const CUpti_CallbackData *cd = (const CUpti_CallbackData *)data;
    if (dom != CUPTI_CB_DOMAIN_DRIVER_API || cbid != CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel) return;
    if (cd->callbackSite == CUPTI_API_ENTER) {
        seen.enter++;
        seen.corr_enter = cd->correlationId;
        return;
    }
    seen.exit++;
    seen.corr_exit = cd->correlationId;
    seen.symbol = cd->symbolName;
    seen.p = *(const cuLaunchKernel_params *)cd->functionParams;
    void **kp = seen.p.kernelParams;
    memcpy(&seen.c, kp[0], 1); memcpy(&seen.d, kp[1], 8); memcpy(&seen.i, kp[2], 4);
    memcpy(&seen.out, kp[3], 8); memcpy(&seen.s, kp[4], 2); memcpy(&seen.st, kp[5], 8);
    memcpy(&seen.ll, kp[6], 8); memcpy(&seen.f, kp[7], 4);
    for (int j = 0; j < 8; j++) cuFuncGetParamInfo(seen.p.f, (size_t)j, &seen.off[j], &seen.size[j]);
    seen.info8 = cuFuncGetParamInfo(seen.p.f, 8, &seen.off[8], &seen.size[8]);
}

template <typename T> static std::vector<T> of_kind(CUpti_ActivityKind k)
{
    std::vector<T> v;
    for (auto &r : records)
        if (((const CUpti_Activity *)r.data())->kind == k) { T x; memcpy(&x, r.data(), sizeof x); v.push_back(x); }
    return v;
}

static float *dev_out;

static void test_launch_callback_and_records(void)
{
    cudaMalloc((void **)&dev_out, 256);
    pair_ic st = { 40, 2 };
    MR_LAUNCH(k_params, 3, 32)((char)1, 2.5, 3, dev_out, (short)4, st, 5000000000LL, 0.25f);
    MC_CHECK(seen.enter == 1 && seen.exit == 1, "callbacks enter %d exit %d", seen.enter, seen.exit);
    MC_CHECK(seen.corr_enter == seen.corr_exit && seen.corr_enter, "correlation enter %u exit %u", seen.corr_enter,
             seen.corr_exit);
    MC_CHECK(seen.symbol && !strcmp(seen.symbol, "k_params"), "symbol %s", seen.symbol ? seen.symbol : "(null)");
    MC_CHECK(seen.p.gridDimX == 3 && seen.p.gridDimY == 1 && seen.p.blockDimX == 32 && seen.p.blockDimZ == 1,
             "grid %u block %u", seen.p.gridDimX, seen.p.blockDimX);
    MC_CHECK(seen.c == 1 && seen.d == 2.5 && seen.i == 3 && seen.out == dev_out && seen.s == 4 && seen.st.a == 40 &&
             seen.st.b == 2 && seen.ll == 5000000000LL && seen.f == 0.25f, "argument values through kernelParams");
    /* CUDA ABI: each parameter at the next multiple of its alignment (by hand for this list) */
    const size_t off[8] = { 0, 8, 16, 24, 32, 36, 48, 56 }, size[8] = { 1, 8, 4, 8, 2, 8, 8, 4 };
    for (int j = 0; j < 8; j++)
        MC_CHECK(seen.off[j] == off[j] && seen.size[j] == size[j], "param %d: offset %zu size %zu, want %zu %zu", j,
                 seen.off[j], seen.size[j], off[j], size[j]);
    MC_CHECK(seen.info8 == CUDA_ERROR_INVALID_VALUE, "param 8 of 8: %d", (int)seen.info8);
    float h = 0;
    cudaMemcpy(&h, dev_out, 4, cudaMemcpyDeviceToHost);
    cudaMemset(dev_out, 0, 128);
    MC_CHECK(h == (float)(1 + 2.5 + 3 + 4 + 40 + 2 + 5000000000LL + 0.25f), "kernel result %g", h);
    cuptiActivityFlushAll(1);
    auto kern = of_kind<CUpti_ActivityKernel10>(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    auto rt = of_kind<CUpti_ActivityAPI>(CUPTI_ACTIVITY_KIND_RUNTIME);
    auto drv = of_kind<CUpti_ActivityAPI>(CUPTI_ACTIVITY_KIND_DRIVER);
    auto cp = of_kind<CUpti_ActivityMemcpy6>(CUPTI_ACTIVITY_KIND_MEMCPY);
    auto ms = of_kind<CUpti_ActivityMemset4>(CUPTI_ACTIVITY_KIND_MEMSET);
    MC_CHECK(kern.size() == 1, "kernel records %zu", kern.size());
    MC_CHECK(rt.size() == 3 && drv.size() == 3, "api records runtime %zu driver %zu", rt.size(), drv.size());
    MC_CHECK(cp.size() == 1 && ms.size() == 1, "memcpy %zu memset %zu", cp.size(), ms.size());
    if (kern.size() != 1 || rt.size() != 3 || drv.size() != 3 || cp.size() != 1 || ms.size() != 1) return;
    const CUpti_ActivityKernel10 &k = kern[0];
    MC_CHECK(!strcmp(k.name, "k_params") && k.gridX == 3 && k.blockX == 32 && k.correlationId == seen.corr_exit &&
             k.start <= k.end && k.streamId == 7, "kernel record %s grid %d corr %u stream %u", k.name, k.gridX,
             k.correlationId, k.streamId);
    uint32_t tid = (uint32_t)syscall(SYS_gettid);
    const char *name = NULL;
    MC_CHECK(rt[0].cbid == CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000 && rt[0].correlationId == k.correlationId &&
             rt[0].threadId == tid && rt[0].start <= k.start && k.end <= rt[0].end,
             "runtime launch record cbid %u corr %u tid %u", rt[0].cbid, rt[0].correlationId, rt[0].threadId);
    MC_CHECK(drv[0].cbid == CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel && drv[0].correlationId == k.correlationId,
             "driver launch record cbid %u", drv[0].cbid);
    MC_CHECK(cuptiGetCallbackName(CUPTI_CB_DOMAIN_DRIVER_API, drv[0].cbid, &name) == CUPTI_SUCCESS && name &&
             !strcmp(name, "cuLaunchKernel"), "driver callback name %s", name ? name : "(null)");
    MC_CHECK(cp[0].bytes == 4 && cp[0].copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH &&
             cp[0].correlationId == rt[1].correlationId && rt[1].cbid == CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_v3020 &&
             drv[1].cbid == CUPTI_DRIVER_TRACE_CBID_cuMemcpyDtoH_v2 && cp[0].correlationId != k.correlationId,
             "memcpy record bytes %llu kind %u corr %u", (unsigned long long)cp[0].bytes, cp[0].copyKind,
             cp[0].correlationId);
    MC_CHECK(ms[0].bytes == 128 && ms[0].correlationId == rt[2].correlationId &&
             rt[2].cbid == CUPTI_RUNTIME_TRACE_CBID_cudaMemset_v3020, "memset record bytes %llu",
             (unsigned long long)ms[0].bytes);
}

/* The emulated CUPTI clock is CLOCK_REALTIME (not the collector's monotonic clock). */
static void test_timestamp(void)
{
    struct timespec a, b;
    uint64_t t = 0;
    clock_gettime(CLOCK_REALTIME, &a);
    cuptiGetTimestamp(&t);
    clock_gettime(CLOCK_REALTIME, &b);
    uint64_t lo = (uint64_t)a.tv_sec * 1000000000ull + (uint64_t)a.tv_nsec;
    uint64_t hi = (uint64_t)b.tv_sec * 1000000000ull + (uint64_t)b.tv_nsec;
    MC_CHECK(lo <= t && t <= hi, "timestamp %llu not in [%llu, %llu]", (unsigned long long)t,
             (unsigned long long)lo, (unsigned long long)hi);
}

/* Client buffers that hold two kernel records: 50 launches arrive through many buffers,
 * all of them, in order, none dropped. */
static void test_small_buffers(void)
{
    records.clear();
    buffers_completed = 0;
    buf_bytes = 2 * sizeof(CUpti_ActivityKernel10) + 8;
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_RUNTIME);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_DRIVER);
    pair_ic st = { 0, 0 };
    for (int n = 0; n < 50; n++) MR_LAUNCH(k_params, 1, 1)((char)0, 0.0, n, dev_out, (short)0, st, 0LL, 0.0f);
    cuptiActivityFlushAll(1);
    auto kern = of_kind<CUpti_ActivityKernel10>(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    MC_CHECK(kern.size() == 50 && records.size() == 50, "kernel records %zu of 50 (all records %zu)", kern.size(),
             records.size());
    MC_CHECK(buffers_completed == 25, "buffers completed %d, want 25", buffers_completed);
    int order = 1;
    for (size_t j = 1; j < kern.size(); j++) order &= kern[j].correlationId == kern[j - 1].correlationId + 1;
    MC_CHECK(order, "correlation ids not consecutive");
    size_t dropped = 1;
    MC_CHECK(cuptiActivityGetNumDroppedRecords(NULL, 0, &dropped) == CUPTI_SUCCESS && dropped == 0, "dropped %zu",
             dropped);
    cudaFree(dev_out);
}

int main(void)
{
    CUpti_SubscriberHandle sub;
    if (cuptiActivityRegisterCallbacks(on_request, on_complete) != CUPTI_SUCCESS ||
        cuptiSubscribe(&sub, (CUpti_CallbackFunc)on_callback, NULL) != CUPTI_SUCCESS) {
        printf("not ok - cupti setup\n");
        return 1;
    }
    CUpti_SubscriberHandle second;
    MC_CHECK(cuptiSubscribe(&second, (CUpti_CallbackFunc)on_callback, NULL) ==
             CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED, "a second subscriber is refused");
    cuptiEnableCallback(1, sub, CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel);
    for (CUpti_ActivityKind k : { CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_RUNTIME,
                                  CUPTI_ACTIVITY_KIND_DRIVER, CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET })
        MC_CHECK(cuptiActivityEnable(k) == CUPTI_SUCCESS, "enable kind %d", (int)k);
    MC_RUN(test_launch_callback_and_records);
    MC_RUN(test_timestamp);
    MC_RUN(test_small_buffers);
    return MC_TEST_EXIT();
}
