/* Unit tests of the CUDA-side interposers (shim/cuda) against a fake CUDA library
 * (libfakecuda.so) and an in-memory shim core (fake_core.c): records carry the call's
 * real fields; a runtime launch that reaches the driver through an entry point is
 * recorded once; cuGetProcAddress hands out a wrapper that forwards to the driver's
 * function; cuBLASLt shapes decode from layouts; NVML counters from a fake libnvidia-ml. */
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cublas_api.h>
#include <cublasLt.h>
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "mc_test.h"
#include "fake_core.h"
#include "fake_cuda.h"
#include "mc_cuda.h"
#include "cublaslt_decode.h"

static char test_dir[PATH_MAX];

static void test_dtype_maps(void)
{
    MC_CHECK(mc_cuda_dtype(CUDA_R_16BF) == MC_DT_BF16, "bf16");
    MC_CHECK(mc_cuda_dtype(CUDA_R_16F) == MC_DT_F16, "f16");
    MC_CHECK(mc_cuda_dtype(CUDA_R_32F) == MC_DT_F32, "f32");
    MC_CHECK(mc_cuda_dtype(CUDA_R_8F_E4M3) == MC_DT_F8E4M3, "e4m3");
    MC_CHECK(mc_cuda_dtype(CUDA_R_8I) == MC_DT_I8, "i8");
    MC_CHECK(mc_cuda_dtype(CUDA_C_32F) == MC_DT_UNKNOWN, "complex is unknown");
    MC_CHECK(mc_cublas_compute_dtype(CUBLAS_COMPUTE_32F_FAST_TF32) == MC_DT_F32, "tf32 accum f32");
    MC_CHECK(mc_cublas_compute_dtype(CUBLAS_COMPUTE_16F) == MC_DT_F16, "16F");
    MC_CHECK(mc_cublas_compute_dtype(CUBLAS_COMPUTE_32I) == MC_DT_I32, "32I");
    MC_CHECK(mc_cublas_compute_dtype(CUDA_R_32F) == MC_DT_F32, "legacy cudaDataType compute");
    MC_CHECK(mc_cublas_op(CUBLAS_OP_T) == MC_OP_T && mc_cublas_op(CUBLAS_OP_N) == MC_OP_N, "ops");
    /* IEEE half 0x3C00 = 1, 0xC000 = -2, 0x3555 = exponent 13, mantissa 341; bf16 0x3F80 = 1, 0xC0A0 = -5. */
    uint16_t h1 = 0x3C00, h2 = 0xC000, h3 = 0x3555, b1 = 0x3F80, b2 = 0xC0A0;
    MC_CHECK(mc_read_host_scalar(&h1, MC_DT_F16) == 1.0, "half 1");
    MC_CHECK(mc_read_host_scalar(&h2, MC_DT_F16) == -2.0, "half -2");
    double v = mc_read_host_scalar(&h3, MC_DT_F16);
    MC_CHECK(v == 0.25 * (1 + 341.0 / 1024), "half 0x3555 = 2^-2 * (1 + 341/1024), got %g", v);
    MC_CHECK(mc_read_host_scalar(&b1, MC_DT_BF16) == 1.0, "bf16 1");
    MC_CHECK(mc_read_host_scalar(&b2, MC_DT_BF16) == -5.0, "bf16 -5");
    MC_CHECK(mc_dtype_bytes(MC_DT_BF16) == 2 && mc_dtype_bytes(MC_DT_F8E4M3) == 1, "sizes");
}

static void test_gemm_ex(void)
{
    fake_reset();
    int before = fake_calls.gemm_ex;
    float alpha = 1.5f, beta = 0.25f;
    cublasHandle_t h = (cublasHandle_t)(uintptr_t)0x99;
    /* Router-like call: m = E = 16 experts, n = 8 tokens, k = d = 32, A = weight (T). */
    cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 16, 8, 32, &alpha,
                                     (void *)0x1000, CUDA_R_16BF, 32, (void *)0x2000, CUDA_R_16BF, 32,
                                     &beta, (void *)0x3000, CUDA_R_16BF, 16, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT);
    MC_CHECK(st == CUBLAS_STATUS_SUCCESS, "status %d", st);
    MC_CHECK(fake_calls.gemm_ex == before + 1, "real called once");
    MC_CHECK(fake_count(MC_REC_GEMM) == 1, "one record, got %d", fake_count(MC_REC_GEMM));
    struct mc_rec_gemm *g = fake_find(MC_REC_GEMM, 0);
    if (!g) return;
    MC_CHECK(g->api == MC_API_CUBLAS_GEMM_EX, "api %u", g->api);
    MC_CHECK(g->m == 16 && g->n == 8 && g->k == 32, "mnk %ld %ld %ld", (long)g->m, (long)g->n, (long)g->k);
    MC_CHECK(g->lda == 32 && g->ldb == 32 && g->ldc == 16, "ld");
    MC_CHECK(g->a == 0x1000 && g->b == 0x2000 && g->c == 0x3000, "operands");
    MC_CHECK(g->dtype_a == MC_DT_BF16 && g->dtype_c == MC_DT_BF16 && g->dtype_compute == MC_DT_F32, "dtypes");
    MC_CHECK(g->trans_a == MC_OP_T && g->trans_b == MC_OP_N, "trans");
    MC_CHECK(g->stream == FAKE_STREAM, "stream %llx", (unsigned long long)g->stream);
    MC_CHECK(g->alpha == 1.5 && g->beta == 0.25, "alpha %g beta %g", g->alpha, g->beta);
    MC_CHECK(g->device == FAKE_DEVICE, "device %d", g->device);
    MC_CHECK(g->batch == 1, "batch");
    MC_CHECK(g->t_end_ns >= g->t_begin_ns && g->t_begin_ns > 0, "times");
    MC_CHECK(g->tid == (int32_t)gettid(), "tid %d", g->tid);
    /* A failing call (the fake rejects m = 0) is not recorded. */
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 0, 8, 32, &alpha, (void *)0x1000, CUDA_R_16BF, 32,
                 (void *)0x2000, CUDA_R_16BF, 32, &beta, (void *)0x3000, CUDA_R_16BF, 16,
                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    MC_CHECK(fake_count(MC_REC_GEMM) == 1, "failed call not recorded");
}

static void test_gemm_strided_batched(void)
{
    fake_reset();
    float alpha = 1.0f, beta = 0.0f;
    /* batched_mm-like: one batch entry per (token, expert) pair. */
    cublasGemmStridedBatchedEx((cublasHandle_t)(uintptr_t)1, CUBLAS_OP_N, CUBLAS_OP_N, 512, 1, 64,
                               &alpha, (void *)0x10000, CUDA_R_16F, 512, 512 * 64,
                               (void *)0x20000, CUDA_R_16F, 64, 64, &beta, (void *)0x30000,
                               CUDA_R_16F, 512, 512, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    struct mc_rec_gemm *g = fake_find(MC_REC_GEMM, 0);
    MC_CHECK(g != NULL, "recorded");
    if (!g) return;
    MC_CHECK(g->api == MC_API_CUBLAS_GEMM_STRIDED_BATCHED_EX, "api");
    MC_CHECK(g->batch == 8 && g->stride_a == 512 * 64 && g->stride_b == 64 && g->stride_c == 512, "batch/strides");
    MC_CHECK(g->m == 512 && g->n == 1 && g->k == 64, "mnk");
    MC_CHECK(g->dtype_a == MC_DT_F16, "f16");
}

static void test_lt_decode_pure(void)
{
    /* D = op(A) op(B): A stored k x m (transposed), B k x n, D m x n with m=16 n=8 k=64. */
    struct mc_lt_desc d = { .compute_type = CUBLAS_COMPUTE_32F, .scale_type = CUDA_R_32F,
                            .trans_a = CUBLAS_OP_T, .trans_b = CUBLAS_OP_N, .valid = 1 };
    struct mc_lt_layout a = { CUDA_R_16BF, 0, 64, 16, 64, 1, 0, 1 };
    struct mc_lt_layout b = { CUDA_R_16BF, 0, 64, 8, 64, 1, 0, 1 };
    struct mc_lt_layout c = { CUDA_R_16BF, 0, 16, 8, 16, 1, 0, 1 };
    struct mc_rec_gemm g;
    memset(&g, 0, sizeof g);
    MC_CHECK(mc_lt_decode(&d, &a, &b, &c, &c, &g) == 0, "consistent");
    MC_CHECK(g.m == 16 && g.n == 8 && g.k == 64, "mnk %ld %ld %ld", (long)g.m, (long)g.n, (long)g.k);
    MC_CHECK(g.trans_a == MC_OP_T && g.trans_b == MC_OP_N, "trans");
    MC_CHECK(g.lda == 64 && g.ldb == 64 && g.ldc == 16, "ld");
    MC_CHECK(g.dtype_a == MC_DT_BF16 && g.dtype_compute == MC_DT_F32, "types");
    MC_CHECK(g.batch == 1 && g.layout == MC_LAYOUT_COL_MAJOR, "batch/layout");
    /* Batched, row-major D, B transposed: B stored n x k. */
    struct mc_lt_desc d2 = d;
    d2.trans_a = CUBLAS_OP_N; d2.trans_b = CUBLAS_OP_T;
    struct mc_lt_layout a2 = { CUDA_R_16F, 1, 32, 128, 128, 4, 32 * 128, 1 };
    struct mc_lt_layout b2 = { CUDA_R_16F, 1, 24, 128, 128, 4, 24 * 128, 1 };
    struct mc_lt_layout d2l = { CUDA_R_32F, 1, 32, 24, 24, 4, 32 * 24, 1 };
    memset(&g, 0, sizeof g);
    MC_CHECK(mc_lt_decode(&d2, &a2, &b2, NULL, &d2l, &g) == 0, "consistent 2");
    MC_CHECK(g.m == 32 && g.n == 24 && g.k == 128, "mnk2");
    MC_CHECK(g.batch == 4 && g.stride_a == 32 * 128 && g.stride_b == 24 * 128 && g.stride_c == 32 * 24, "batch2");
    MC_CHECK(g.layout == MC_LAYOUT_ROW_MAJOR && g.dtype_c == MC_DT_F32, "row major, f32 out");
    /* Inconsistent k between A and B is flagged. */
    b.rows = 63;
    MC_CHECK(mc_lt_decode(&d, &a, &b, &c, &c, &g) == 1, "inconsistent flagged");
    MC_CHECK(mc_lt_decode(&d, &a, &b, NULL, NULL, &g) == -1, "no output layout");
}

static void test_lt_matmul_interposed(void)
{
    fake_reset();
    struct fake_lt_desc desc = { CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N };
    struct fake_lt_layout a = { CUDA_R_16BF, 0, 256, 1024, 256, 1, 0 };   /* k x m stored */
    struct fake_lt_layout b = { CUDA_R_16BF, 0, 256, 7, 256, 1, 0 };      /* k x n */
    struct fake_lt_layout dl = { CUDA_R_16BF, 0, 1024, 7, 1024, 1, 0 };   /* m x n */
    float alpha = 2.0f, beta = 1.0f;
    cublasStatus_t st = cublasLtMatmul((cublasLtHandle_t)(uintptr_t)1, (cublasLtMatmulDesc_t)&desc,
                                       &alpha, (void *)0xA0, (cublasLtMatrixLayout_t)&a,
                                       (void *)0xB0, (cublasLtMatrixLayout_t)&b, &beta,
                                       (void *)0xC0, (cublasLtMatrixLayout_t)&dl, (void *)0xD0,
                                       (cublasLtMatrixLayout_t)&dl, NULL, NULL, 0,
                                       (cudaStream_t)(uintptr_t)0x77);
    MC_CHECK(st == CUBLAS_STATUS_SUCCESS, "status");
    struct mc_rec_gemm *g = fake_find(MC_REC_GEMM, 0);
    MC_CHECK(g != NULL && fake_count(MC_REC_GEMM) == 1, "one record");
    if (!g) return;
    MC_CHECK(g->api == MC_API_CUBLASLT_MATMUL, "api");
    MC_CHECK(g->m == 1024 && g->n == 7 && g->k == 256, "mnk %ld %ld %ld", (long)g->m, (long)g->n, (long)g->k);
    MC_CHECK(g->a == 0xA0 && g->b == 0xB0 && g->c == 0xD0, "operands (c = D)");
    MC_CHECK(g->stream == 0x77, "stream from argument");
    MC_CHECK(g->alpha == 2.0 && g->beta == 1.0, "scalars %g %g", g->alpha, g->beta);
    MC_CHECK(g->trans_a == MC_OP_T, "trans");
}

static void test_alloc_copy(void)
{
    fake_reset();
    void *p = NULL;
    MC_CHECK(cudaMalloc(&p, 4096) == cudaSuccess && p, "malloc");
    MC_CHECK(cudaFree(p) == cudaSuccess, "free");
    struct mc_rec_alloc *a0 = fake_find(MC_REC_ALLOC, 0), *a1 = fake_find(MC_REC_ALLOC, 1);
    MC_CHECK(a0 && a1, "two alloc records");
    if (a0 && a1) {
        MC_CHECK(a0->ptr == (uint64_t)(uintptr_t)p && a0->bytes == 4096 && !a0->is_free, "alloc fields");
        MC_CHECK(a0->device == FAKE_DEVICE, "device");
        MC_CHECK(a1->ptr == (uint64_t)(uintptr_t)p && a1->is_free == 1, "free fields");
    }
    char host[64];
    cudaMemcpy(p, host, sizeof host, cudaMemcpyHostToDevice);
    cudaMemcpyAsync(p, host, 32, cudaMemcpyDefault, (cudaStream_t)(uintptr_t)0x42);
    cudaMemcpy(host, p, 16, cudaMemcpyDefault);
    struct mc_rec_memcpy *c0 = fake_find(MC_REC_MEMCPY, 0), *c1 = fake_find(MC_REC_MEMCPY, 1),
                         *c2 = fake_find(MC_REC_MEMCPY, 2);
    MC_CHECK(c0 && c1 && c2, "three copies");
    if (!c0 || !c1 || !c2) return;
    MC_CHECK(c0->kind == MC_COPY_H2D && c0->bytes == 64 && c0->src == (uint64_t)(uintptr_t)host &&
             c0->dst == (uint64_t)(uintptr_t)p && !c0->async && c0->source == 1, "explicit H2D");
    MC_CHECK(c1->kind == MC_COPY_H2D && c1->async == 1 && c1->stream == 0x42, "default kind -> H2D: kind %u async %u stream %llx", c1->kind, c1->async, (unsigned long long)c1->stream);
    MC_CHECK(c2->kind == MC_COPY_D2H && c2->bytes == 16, "default kind -> D2H");
    /* Driver copy and allocation. */
    CUdeviceptr dp = 0;
    MC_CHECK(cuMemAlloc(&dp, 1 << 20) == CUDA_SUCCESS, "cuMemAlloc");
    cuMemcpyHtoD(dp, host, 8);
    struct mc_rec_alloc *a2 = fake_find(MC_REC_ALLOC, 2);
    struct mc_rec_memcpy *c3 = fake_find(MC_REC_MEMCPY, 3);
    MC_CHECK(a2 && a2->ptr == dp && a2->bytes == 1 << 20, "driver alloc");
    MC_CHECK(c3 && c3->kind == MC_COPY_H2D && c3->dst == dp && c3->bytes == 8, "driver H2D");
}

static void test_runtime_launch_once(void)
{
    fake_reset();
    int rt = fake_calls.rt_launch, drv = fake_calls.cu_launch;
    dim3 g = { 4, 1, 1 }, b = { 128, 1, 1 };
    MC_CHECK(cudaLaunchKernel((const void *)(uintptr_t)FAKE_KERNEL_A, g, b, NULL, 0,
                              (cudaStream_t)(uintptr_t)0x9) == cudaSuccess, "launch ok");
    MC_CHECK(fake_calls.rt_launch == rt + 1 && fake_calls.cu_launch == drv + 1, "reached driver once");
    MC_CHECK(fake_count(MC_REC_API) == 1, "recorded once, got %d", fake_count(MC_REC_API));
    struct mc_rec_api *a = fake_find(MC_REC_API, 0);
    if (!a) return;
    MC_CHECK(a->api == MC_API_CUDA_LAUNCH_KERNEL, "api %u", a->api);
    MC_CHECK(a->arg0 == FAKE_KERNEL_A && a->arg1 == 0x9, "func and stream");
    const char *name = fake_string(a->name_str);
    MC_CHECK(name && !strcmp(name, "kernel_A"), "name %s", name ? name : "(none)");
    /* Second launch of the same kernel reuses the cached name id. */
    cudaLaunchKernel((const void *)(uintptr_t)FAKE_KERNEL_A, g, b, NULL, 0, NULL);
    struct mc_rec_api *a2 = fake_find(MC_REC_API, 1);
    MC_CHECK(a2 && a2->name_str == a->name_str, "cached name");
}

static void test_get_proc_address(void)
{
    fake_reset();
    void *libh = dlopen("libfakecuda.so", RTLD_NOW | RTLD_NOLOAD);
    void *direct = libh ? dlsym(libh, "cuLaunchKernel") : NULL;
    void *pfn = NULL;
    CUdriverProcAddressQueryResult qr;
    MC_CHECK(cuGetProcAddress("cuLaunchKernel", &pfn, 12000, 0, &qr) == CUDA_SUCCESS, "query ok");
    MC_CHECK(pfn != NULL && pfn != direct, "got a wrapper, not the fake's export");
    int drv = fake_calls.cu_launch;
    CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                       unsigned, CUstream, void **, void **) =
        (CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                      unsigned, CUstream, void **, void **))pfn;
    if (pfn) launch((CUfunction)(uintptr_t)0xbeef, 1, 1, 1, 32, 1, 1, 0, (CUstream)(uintptr_t)0x5, NULL, NULL);
    MC_CHECK(fake_calls.cu_launch == drv + 1, "forwarded to the driver function once");
    MC_CHECK(fake_count(MC_REC_API) == 1, "one record, got %d", fake_count(MC_REC_API));
    struct mc_rec_api *a = fake_find(MC_REC_API, 0);
    if (a) {
        MC_CHECK(a->api == MC_API_CU_LAUNCH_KERNEL && a->arg0 == 0xbeef && a->arg1 == 0x5, "fields");
        const char *name = fake_string(a->name_str);
        MC_CHECK(name && !strcmp(name, "drv_kernel"), "driver name");
    }
    /* Version rules: the _v2 ABI of cuMemAlloc starts at 3020; unknown symbols pass through;
     * a second, different function for an owned symbol is not wrapped. */
    void *x = (void *)(uintptr_t)0x1234;
    MC_CHECK(mc_cuda_ep_substitute("cuMemAlloc", x, 3000) == x, "old ABI not wrapped");
    MC_CHECK(mc_cuda_ep_substitute("cuNoSuchThing", x, 12000) == x, "unknown passes");
    void *w = mc_cuda_ep_substitute("cuStreamSynchronize", x, 12000);
    MC_CHECK(w != x && w != NULL, "wrapped");
    MC_CHECK(mc_cuda_ep_substitute("cuStreamSynchronize", x, 12000) == w, "same fn same wrapper");
    void *y = (void *)(uintptr_t)0x5678;
    MC_CHECK(mc_cuda_ep_substitute("cuStreamSynchronize", y, 12000) == y, "different fn not wrapped");
}

static void test_router_tap_parsers(void)
{
    int64_t e[4], d[4];
    MC_CHECK(mc_router_tap_parse_spec("16:2048", e, d, 4) == 1 && e[0] == 16 && d[0] == 2048, "one pair");
    MC_CHECK(mc_router_tap_parse_spec("8:64,60:2048", e, d, 4) == 2 && e[1] == 60 && d[1] == 2048, "two pairs");
    MC_CHECK(mc_router_tap_parse_spec("16", e, d, 4) == -1, "missing d");
    MC_CHECK(mc_router_tap_parse_spec("16:x", e, d, 4) == -1, "bad d");
    MC_CHECK(mc_router_tap_parse_spec("0:64", e, d, 4) == -1, "zero experts");
    int64_t ex = 0, hid = 0;
    /* Excerpts shaped like real config.json files (Qwen1.5-MoE-A2.7B, Mixtral-8x7B, DeepSeek-V2-Lite). */
    MC_CHECK(mc_router_tap_parse_config("{\"hidden_size\": 2048, \"num_experts\": 60, \"num_experts_per_tok\": 4}", &ex, &hid) == 0 &&
             ex == 60 && hid == 2048, "qwen2_moe %lld %lld", (long long)ex, (long long)hid);
    MC_CHECK(mc_router_tap_parse_config("{\n  \"hidden_size\" : 4096,\n  \"num_local_experts\": 8\n}", &ex, &hid) == 0 &&
             ex == 8 && hid == 4096, "mixtral");
    MC_CHECK(mc_router_tap_parse_config("{\"hidden_size\": 2048, \"n_routed_experts\": 64}", &ex, &hid) == 0 && ex == 64, "deepseek");
    MC_CHECK(mc_router_tap_parse_config("{\"hidden_size\": 2048}", &ex, &hid) == -1, "dense model");
}

/* MOECAP_ROUTER_TAP=8:64 is set in main: a GEMM with m = 8 experts, k = 64 hidden is a router. */
static void test_router_tap(void)
{
    fake_reset();
    float logits[5 * 8];
    for (int i = 0; i < 40; i++) logits[i] = (float)i * 0.5f - 3.0f;
    float alpha = 1.0f, beta = 0.0f;
    cublasHandle_t h = (cublasHandle_t)(uintptr_t)2;
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 8, 5, 64, &alpha, (void *)0x1000, CUDA_R_32F, 64,
                 (void *)0x2000, CUDA_R_32F, 64, &beta, logits, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
    struct mc_rec_router_tap *t = fake_find(MC_REC_ROUTER_TAP, 0);
    struct mc_rec_gemm *g = fake_find(MC_REC_GEMM, 0);
    MC_CHECK(t && g, "tap and gemm records");
    if (!t || !g) return;
    MC_CHECK(t->tokens == 5 && t->experts == 8 && t->dtype == MC_DT_F32 && t->layout == MC_LAYOUT_ROW_MAJOR, "fields");
    MC_CHECK(t->h.size >= sizeof *t + sizeof logits, "payload size %u", t->h.size);
    MC_CHECK(memcmp(t + 1, logits, sizeof logits) == 0, "payload = the router output");
    MC_CHECK(t->t_ns == g->t_begin_ns && t->tid == g->tid, "joined to its GEMM by (tid, t_begin)");
    MC_CHECK(fake_count(MC_REC_MEMCPY) == 0, "the tap's own copy is not recorded as program traffic");
    /* Not routers: other shapes, batched calls, ldc != m. */
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 16, 5, 64, &alpha, (void *)0x1000, CUDA_R_32F, 64,
                 (void *)0x2000, CUDA_R_32F, 64, &beta, logits, CUDA_R_32F, 16, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 8, 5, 64, &alpha, (void *)0x1000, CUDA_R_32F, 64, 0,
                               (void *)0x2000, CUDA_R_32F, 64, 0, &beta, logits, CUDA_R_32F, 8, 0, 2,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 8, 4, 64, &alpha, (void *)0x1000, CUDA_R_32F, 64,
                 (void *)0x2000, CUDA_R_32F, 64, &beta, logits, CUDA_R_32F, 10, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    MC_CHECK(fake_count(MC_REC_ROUTER_TAP) == 1, "only the router tapped, got %d", fake_count(MC_REC_ROUTER_TAP));
    /* bf16 logits: 2 bytes each. */
    uint16_t lb[3 * 8];
    for (int i = 0; i < 24; i++) lb[i] = (uint16_t)(0x3F80 + i);
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 8, 3, 64, &alpha, (void *)0x1000, CUDA_R_16BF, 64,
                 (void *)0x2000, CUDA_R_16BF, 64, &beta, lb, CUDA_R_16BF, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    struct mc_rec_router_tap *t2 = fake_find(MC_REC_ROUTER_TAP, 1);
    MC_CHECK(t2 && t2->tokens == 3 && t2->dtype == MC_DT_BF16 && memcmp(t2 + 1, lb, sizeof lb) == 0, "bf16 payload");
}

/* Under graph capture each tap keeps its buffer (the graph replays into it): with 64
 * buffers, the 65th captured router GEMM is not tapped and says so once. */
static void test_router_tap_capture(void)
{
    fake_reset();
    float logits[2 * 8] = {0};
    float alpha = 1.0f, beta = 0.0f;
    fake_capturing = 1;
    for (int i = 0; i < 65; i++)
        cublasGemmEx((cublasHandle_t)(uintptr_t)2, CUBLAS_OP_T, CUBLAS_OP_N, 8, 2, 64, &alpha, (void *)0x1000,
                     CUDA_R_32F, 64, (void *)0x2000, CUDA_R_32F, 64, &beta, logits, CUDA_R_32F, 8,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    fake_capturing = 0;
    MC_CHECK(fake_count(MC_REC_ROUTER_TAP) == 64, "64 captured taps, got %d", fake_count(MC_REC_ROUTER_TAP));
    int noted = 0;
    for (int i = 0; i < fake_nnotes; i++) if (strstr(fake_notes[i], "buffers busy")) noted++;
    MC_CHECK(noted == 1, "one note about exhausted buffers, got %d", noted);
    MC_CHECK(mc_router_tap_dropped() >= 1, "drop counted");
}

/* A function the process lacks (the fake has no cudaMallocAsync): the wrapper fails
 * cleanly, records nothing, and does not rescan libraries on every call. */
static void test_missing_function(void)
{
    fake_reset();
    void *p = (void *)1;
    int before = fake_resolve_calls;
    int errs = 0;
    for (int i = 0; i < 100; i++) errs += cudaMallocAsync(&p, 64, NULL) != cudaSuccess;
    MC_CHECK(errs == 100, "every call fails, got %d", errs);
    MC_CHECK(fake_resolve_calls - before == 1, "one resolution attempt per 1024 calls, got %d",
             fake_resolve_calls - before);
    MC_CHECK(fake_count(MC_REC_ALLOC) == 0, "nothing recorded");
}

static int lookups;
static int count_lookup(const void *h, const char **name)
{
    (void)h;
    lookups++;
    *name = "cached_kernel";
    return 0;
}

static void test_name_cache(void)
{
    lookups = 0;
    uint32_t a = mc_kernel_name_id((void *)(uintptr_t)0x4000, count_lookup);
    uint32_t b = mc_kernel_name_id((void *)(uintptr_t)0x4000, count_lookup);
    uint32_t c = mc_kernel_name_id((void *)(uintptr_t)0x4010, count_lookup);
    MC_CHECK(a != 0 && a == b && c == a, "same text same id");
    MC_CHECK(lookups == 2, "one lookup per handle, got %d", lookups);
    MC_CHECK(mc_kernel_name_id(NULL, count_lookup) == 0, "null handle");
}

static double counter_value(const char *name, int nth, int *found)
{
    *found = 0;
    for (int i = 0; ; i++) {
        struct mc_rec_counter *r = fake_find(MC_REC_COUNTER, i);
        if (!r) return 0;
        const char *s = fake_string(r->name_str);
        if (s && !strcmp(s, name) && nth-- == 0) { *found = 1; return r->value; }
    }
}

static void test_nvml_fake(void)
{
    char lib[PATH_MAX + 32];
    snprintf(lib, sizeof lib, "%s/libfakenvml.so", test_dir);
    setenv("MOECAP_NVML_LIB", lib, 1);
    setenv("MOECAP_NVML_INTERVAL_MS", "0", 1);
    fake_reset();
    mc_nvml_start();
    int found = 0, ok_name = 0;
    for (int i = 0; i < fake_nnotes; i++)
        if (!strcmp(fake_notes[i], "nvml.device_name 0 Fake GPU H100")) ok_name = 1;
    MC_CHECK(ok_name, "device name note (notes: %d, first: %s)", fake_nnotes, fake_nnotes ? fake_notes[0] : "");
    /* The fake reports: energy starts at 1000 mJ and grows 500 mJ per read, power 312 W,
     * max memory clock 2619 MHz, bus width 5120 bit, 80 GiB total memory. */
    double e0 = counter_value("nvml.energy", 0, &found);
    MC_CHECK(found && e0 == 1000.0, "energy first %g", e0);
    MC_CHECK(counter_value("nvml.power", 0, &found) == 312000.0 && found, "power mW");
    MC_CHECK(counter_value("nvml.max_clock_mem", 0, &found) == 2619.0 && found, "max mem clock");
    MC_CHECK(counter_value("nvml.mem_bus_width", 0, &found) == 5120.0 && found, "bus width");
    MC_CHECK(counter_value("nvml.mem_total", 0, &found) == 80.0 * 1024 * 1024 * 1024 && found, "mem total");
    mc_nvml_sample();
    double e1 = counter_value("nvml.energy", 1, &found);
    MC_CHECK(found && e1 == 1500.0, "energy second %g", e1);
    struct mc_rec_counter *r = fake_find(MC_REC_COUNTER, 0);
    MC_CHECK(r && r->source == MC_CTR_NVML && r->device == 0, "source/device");
    /* Derived peak: 2619e6 * 2 * 5120 / 8 = 3.352 TB/s (H100 SXM spec bandwidth). */
    double bw = 2619e6 * 2 * 5120 / 8;
    MC_CHECK(bw > 3.35e12 && bw < 3.36e12, "derivable bandwidth");
}

static void test_nvml_missing(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MOECAP_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
        fake_reset();
        mc_nvml_start();
        mc_nvml_sample();   /* must be a no-op */
        int ok = fake_nnotes == 1 && strstr(fake_notes[0], "NVML not available") &&
                 fake_count(MC_REC_COUNTER) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    MC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "missing NVML gives one note, no counters");
}

/* The low-rate sampler: with a 10 ms period, 100 ms of sleep gives several more energy
 * samples (each one 500 mJ above the last in the fake), and stop() joins the thread. */
static void test_nvml_sampler(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        char lib[PATH_MAX + 32];
        snprintf(lib, sizeof lib, "%s/libfakenvml.so", test_dir);
        setenv("MOECAP_NVML_LIB", lib, 1);
        setenv("MOECAP_NVML_INTERVAL_MS", "10", 1);
        fake_reset();
        mc_nvml_start();
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
        mc_nvml_stop();
        int n = 0;
        double last = 0;
        int increasing = 1;
        for (int i = 0; ; i++) {
            struct mc_rec_counter *r = fake_find(MC_REC_COUNTER, i);
            if (!r) break;
            const char *nm = fake_string(r->name_str);
            if (!nm || strcmp(nm, "nvml.energy")) continue;
            if (n && r->value != last + 500) increasing = 0;
            last = r->value;
            n++;
        }
        _exit(n >= 4 && increasing ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    MC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sampler adds samples, 500 mJ apart");
}

int main(int argc, char **argv)
{
    (void)argc;
    setenv("MOECAP_CUPTI", "0", 1);
    setenv("MOECAP_NVML", "0", 1);
    setenv("MOECAP_ROUTER_TAP", "8:64", 1);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) { self[n] = 0; snprintf(test_dir, sizeof test_dir, "%s", dirname(self)); }
    else snprintf(test_dir, sizeof test_dir, "%s", dirname(argv[0]));
    MC_RUN(test_dtype_maps);
    MC_RUN(test_gemm_ex);
    MC_RUN(test_gemm_strided_batched);
    MC_RUN(test_lt_decode_pure);
    MC_RUN(test_lt_matmul_interposed);
    MC_RUN(test_alloc_copy);
    MC_RUN(test_runtime_launch_once);
    MC_RUN(test_get_proc_address);
    MC_RUN(test_name_cache);
    MC_RUN(test_missing_function);
    MC_RUN(test_router_tap_parsers);
    MC_RUN(test_router_tap);
    MC_RUN(test_router_tap_capture);
    MC_RUN(test_nvml_missing);
    MC_RUN(test_nvml_sampler);   /* in a child, before this process starts NVML itself */
    MC_RUN(test_nvml_fake);
    return MC_TEST_EXIT();
}
