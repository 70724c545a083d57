/* Fake CUPTI (libfakecupti.so) and fake driver pieces (libcuda.so.1 stand-in, built from
 * this file with -DFAKE_DRIVER) for testing cupti/collector.c without a GPU.
 *
 * CUPTI part: stores the buffer callbacks and the subscriber callback; the test hands it
 * activity records (fake_cupti_add) that the next cuptiActivityFlushAll delivers through
 * the collector's own buffer-request/complete callbacks. Records are laid out in the buffer
 * as [uint64 size][record], which only this fake's cuptiActivityGetNextRecord reads.
 * cuptiGetTimestamp runs 5 s behind CLOCK_MONOTONIC. FAKE_CUPTI_SUBSCRIBE=conflict makes
 * cuptiSubscribe fail like it does when another client is subscribed.
 * Driver part: pinned allocation = malloc, async copies = memcpy, host functions run at once. */
#include <cuda.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FAKE_DRIVER
#include <cupti.h>
#include "fake_cupti.h"

static CUpti_BuffersCallbackRequestFunc req_cb;
static CUpti_BuffersCallbackCompleteFunc done_cb;
CUpti_CallbackFunc fake_cupti_callback;
static unsigned char pending[1 << 16];
static size_t pending_n;
size_t fake_cupti_dropped;
int fake_cupti_enabled[64];

CUptiResult cuptiActivityRegisterCallbacks(CUpti_BuffersCallbackRequestFunc r, CUpti_BuffersCallbackCompleteFunc c)
{
    req_cb = r;
    done_cb = c;
    return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityEnable(CUpti_ActivityKind kind)
{
    if ((int)kind < 64) fake_cupti_enabled[kind] = 1;
    return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityFlushPeriod(uint32_t ms) { (void)ms; return CUPTI_SUCCESS; }

CUptiResult cuptiGetTimestamp(uint64_t *ts)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    *ts = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec - FAKE_CUPTI_BEHIND_NS;
    return CUPTI_SUCCESS;
}

void fake_cupti_add(const void *rec, size_t size)
{
    uint64_t sz = (size + 7) & ~(size_t)7;
    if (pending_n + 8 + sz > sizeof pending) return;
    memcpy(pending + pending_n, &sz, 8);
    memcpy(pending + pending_n + 8, rec, size);
    pending_n += 8 + sz;
}

CUptiResult cuptiActivityFlushAll(uint32_t flag)
{
    (void)flag;
    if (!req_cb || !done_cb || !pending_n) return CUPTI_SUCCESS;
    uint8_t *buf = NULL;
    size_t size = 0, maxrec = 0;
    req_cb(&buf, &size, &maxrec);
    if (!buf || size < pending_n) return CUPTI_ERROR_UNKNOWN;
    memcpy(buf, pending, pending_n);
    size_t valid = pending_n;
    pending_n = 0;
    done_cb(NULL, 0, buf, size, valid);
    return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityGetNextRecord(uint8_t *buffer, size_t valid, CUpti_Activity **record)
{
    size_t off;
    if (!*record) {
        off = 0;
    } else {
        uint64_t sz;
        memcpy(&sz, (uint8_t *)*record - 8, 8);
        off = (size_t)((uint8_t *)*record - buffer) + sz;
    }
    if (off + 8 > valid) return CUPTI_ERROR_MAX_LIMIT_REACHED;
    *record = (CUpti_Activity *)(buffer + off + 8);
    return CUPTI_SUCCESS;
}

CUptiResult cuptiActivityGetNumDroppedRecords(CUcontext ctx, uint32_t stream, size_t *dropped)
{
    (void)ctx; (void)stream;
    *dropped = fake_cupti_dropped;
    fake_cupti_dropped = 0;
    return CUPTI_SUCCESS;
}

CUptiResult cuptiGetCallbackName(CUpti_CallbackDomain dom, uint32_t cbid, const char **name)
{
    if (dom == CUPTI_CB_DOMAIN_RUNTIME_API && cbid == CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000) *name = "cudaLaunchKernel";
    else if (dom == CUPTI_CB_DOMAIN_DRIVER_API && cbid == CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel) *name = "cuLaunchKernel";
    else *name = "cuCtxGetDevice";   /* everything else: an API the collector drops */
    return CUPTI_SUCCESS;
}

CUptiResult cuptiGetResultString(CUptiResult r, const char **s)
{
    *s = r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED ? "CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED" : "fake CUPTI error";
    return CUPTI_SUCCESS;
}

CUptiResult cuptiSubscribe(CUpti_SubscriberHandle *sub, CUpti_CallbackFunc cb, void *ud)
{
    (void)ud;
    const char *mode = getenv("FAKE_CUPTI_SUBSCRIBE");
    if (mode && !strcmp(mode, "conflict")) return CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED;
    *sub = (CUpti_SubscriberHandle)(uintptr_t)1;
    fake_cupti_callback = cb;
    return CUPTI_SUCCESS;
}

CUptiResult cuptiEnableCallback(uint32_t en, CUpti_SubscriberHandle s, CUpti_CallbackDomain d, CUpti_CallbackId c)
{
    (void)en; (void)s; (void)d; (void)c;
    return CUPTI_SUCCESS;
}

#else /* FAKE_DRIVER: the few libcuda.so.1 functions the collector's taps use */

CUresult cuMemHostAlloc(void **p, size_t n, unsigned int flags)
{
    (void)flags;
    *p = malloc(n);
    return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
    (void)s;
    memcpy(dst, (const void *)(uintptr_t)src, n);   /* test "device" memory is host memory */
    return CUDA_SUCCESS;
}

CUresult cuLaunchHostFunc(CUstream s, CUhostFn fn, void *data)
{
    (void)s;
    fn(data);
    return CUDA_SUCCESS;
}

int fake_driver_capturing;   /* set by tests: streams report an active capture */

CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *st)
{
    (void)s;
    *st = fake_driver_capturing ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice *d) { *d = 2; return CUDA_SUCCESS; }

/* Parameter 4 of every fake kernel is a pointer; others are 4-byte ints. */
CUresult cuFuncGetParamInfo(CUfunction f, size_t idx, size_t *off, size_t *size)
{
    (void)f;
    if (idx > 10) return CUDA_ERROR_INVALID_VALUE;
    *off = idx * 8;
    *size = idx == 4 || idx == 0 || idx == 5 ? 8 : 4;
    return CUDA_SUCCESS;
}
#endif
