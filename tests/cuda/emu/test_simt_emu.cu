/* Unit tests of the CUDA emulation itself (compiled like the engine: g++ -x c++ -include
 * simt_emu.h, linked against the emulated libcudart.so.13 / libcublas.so.13): GPU thread
 * indices, __syncthreads, warp shuffles and per-block shared memory against values known by
 * construction; copy-kind, free and launch-configuration checks; cuBLAS GEMMs (every
 * transpose, padded leading dimensions, alpha/beta, beta = 0 over NaN, bf16 inputs, device
 * pointer mode) against a double-precision reference written here from the BLAS definition;
 * and, in child processes, that misuse is caught with a message: divergent barriers, shuffles
 * naming exited lanes, host code reading device memory, a kernel writing past an allocation. */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>
#include "mc_test.h"

/* ---- kernels ---- */

/* Every thread writes its indices; block-level sum of linear thread ids via shared memory. */
__global__ void k_ids(unsigned *out, unsigned long long *sums)
{
    __shared__ unsigned long long part[1024];
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    unsigned *o = out + ((size_t)b * nt + t) * 6;
    o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
    o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
    part[t] = t;
    __syncthreads();
    if (t == 0) {
        unsigned long long s = 0;
        for (unsigned i = 0; i < nt; i++) s += part[i];
        sums[b] = s;
    }
}

/* Tree reduction with a barrier per level, then a warp-shuffle stage; and an xor butterfly
 * that leaves the warp total in every lane. */
__global__ void k_reduce(const float *x, float *tree, float *shfl, float *xor_all, int n)
{
    __shared__ float red[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) tree[blockIdx.x] = red[0];
    float w = v;
    for (int o = 16; o > 0; o >>= 1) w += __shfl_down_sync(0xffffffffu, w, o);
    if (threadIdx.x % 32 == 0) shfl[i / 32] = w;
    float a = v;
    for (int o = 1; o < 32; o <<= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
    xor_all[i] = a;
}

/* Shared memory is one instance per block: each block sees only its own writes. */
__global__ void k_shared_per_block(int *out)
{
    __shared__ int tag;
    if (threadIdx.x == 0) tag = (int)blockIdx.x * 7 + 3;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = tag;
}

__global__ void k_divergent_barrier(int *p)
{
    if (threadIdx.x < 16) __syncthreads();
    else { p[threadIdx.x] = 1; float v = __shfl_down_sync(0xffffffffu, 1.0f, 1); p[0] = (int)v; }
}

__global__ void k_shuffle_after_exit(float *p)
{
    if (threadIdx.x == 5) return;
    p[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1);
}

__global__ void k_write_past(float *p, int n)
{
    if (threadIdx.x == 0) p[n + 64] = 1.0f;   /* 256 bytes past the end: in the guard page */
}

/* ---- helpers ---- */

static std::string child_stderr(void (*fn)(), int *status)
{
    int fd[2];
    if (pipe(fd) != 0) return "";
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn();
        _exit(0);
    }
    close(fd[1]);
    std::string s;
    char buf[512];
    ssize_t k;
    while ((k = read(fd[0], buf, sizeof buf)) > 0) s.append(buf, (size_t)k);
    close(fd[0]);
    waitpid(pid, status, 0);
    return s;
}

static void expect_death(const char *what, void (*fn)(), const char *needle)
{
    int st = 0;
    std::string err = child_stderr(fn, &st);
    bool died = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    MC_CHECK(died && err.find(needle) != std::string::npos, "%s: status 0x%x, stderr: %s", what, st, err.c_str());
}

template <typename T> static T *dmalloc(size_t n)
{
    void *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) { printf("# cudaMalloc failed\n"); exit(1); }
    return (T *)p;
}

/* ---- cases ---- */

static void thread_indices_and_barrier()
{
    dim3 grid(3, 2, 2), block(8, 4, 2);
    unsigned nb = 12, nt = 64;
    unsigned *out = dmalloc<unsigned>(nb * nt * 6);
    unsigned long long *sums = dmalloc<unsigned long long>(nb);
    MR_LAUNCH(k_ids, grid, block)(out, sums);
    MC_CHECK(cudaGetLastError() == cudaSuccess, "launch");
    std::vector<unsigned> h(nb * nt * 6);
    std::vector<unsigned long long> hs(nb);
    cudaMemcpy(h.data(), out, h.size() * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(hs.data(), sums, nb * 8, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (unsigned bz = 0; bz < 2; bz++) for (unsigned by = 0; by < 2; by++) for (unsigned bx = 0; bx < 3; bx++)
        for (unsigned tz = 0; tz < 2; tz++) for (unsigned ty = 0; ty < 4; ty++) for (unsigned tx = 0; tx < 8; tx++) {
            unsigned b = bx + 3 * (by + 2 * bz), t = tx + 8 * (ty + 4 * tz);
            const unsigned *o = &h[((size_t)b * nt + t) * 6];
            bad += o[0] != tx || o[1] != ty || o[2] != tz || o[3] != bx || o[4] != by || o[5] != bz;
        }
    MC_CHECK(bad == 0, "%d threads saw wrong indices", bad);
    for (unsigned b = 0; b < nb; b++) MC_CHECK(hs[b] == nt * (nt - 1) / 2, "block %u sum %llu", b, hs[b]);
    cudaFree(out);
    cudaFree(sums);
}

static void reductions_and_shuffles()
{
    const int n = 1000, nb = 4;   /* last block partly out of range */
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = (float)(i % 13) - 6.0f;
    float *dx = dmalloc<float>(n), *tree = dmalloc<float>(nb), *shfl = dmalloc<float>(nb * 8),
          *xa = dmalloc<float>(nb * 256);
    cudaMemcpy(dx, x.data(), n * 4, cudaMemcpyHostToDevice);
    MR_LAUNCH(k_reduce, nb, 256)(dx, tree, shfl, xa, n);
    std::vector<float> ht(nb), hs(nb * 8), hx(nb * 256);
    cudaMemcpy(ht.data(), tree, nb * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(hs.data(), shfl, hs.size() * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(hx.data(), xa, hx.size() * 4, cudaMemcpyDeviceToHost);
    for (int b = 0; b < nb; b++) {
        double want = 0;
        for (int i = b * 256; i < (b + 1) * 256 && i < n; i++) want += x[i];
        MC_CHECK(ht[b] == (float)want, "block %d tree sum %g want %g", b, ht[b], want);
    }
    for (int w = 0; w < nb * 8; w++) {
        double want = 0;
        for (int i = w * 32; i < (w + 1) * 32 && i < n; i++) want += x[i];
        MC_CHECK(hs[w] == (float)want, "warp %d shuffle sum %g want %g", w, hs[w], want);
        for (int l = 0; l < 32; l++)
            MC_CHECK(hx[w * 32 + l] == (float)want, "warp %d lane %d xor sum %g want %g", w, l, hx[w * 32 + l], want);
    }
    cudaFree(dx); cudaFree(tree); cudaFree(shfl); cudaFree(xa);
}

static void shared_memory_per_block()
{
    int *d = dmalloc<int>(5 * 64);
    MR_LAUNCH(k_shared_per_block, 5, 64)(d);
    std::vector<int> h(5 * 64);
    cudaMemcpy(h.data(), d, h.size() * 4, cudaMemcpyDeviceToHost);
    for (int i = 0; i < 5 * 64; i++) MC_CHECK(h[i] == (i / 64) * 7 + 3, "thread %d saw %d", i, h[i]);
    cudaFree(d);
}

static void memory_checks()
{
    float *d = dmalloc<float>(64);
    std::vector<unsigned char> raw(256, 0);
    MC_CHECK(cudaMemcpy(raw.data(), d, 256, cudaMemcpyDeviceToHost) == cudaSuccess, "D2H");
    bool all_ff = true;
    for (unsigned char c : raw) all_ff &= c == 0xFF;
    MC_CHECK(all_ff, "new device memory is not 0xFF");
    float host[64] = {0};
    MC_CHECK(cudaMemcpy(host, host + 1, 16, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "H2D into host memory");
    MC_CHECK(cudaGetLastError() == cudaErrorInvalidValue, "last error after a failed copy");
    MC_CHECK(cudaGetLastError() == cudaSuccess, "last error is cleared by reading it");
    MC_CHECK(cudaMemcpy(host, d, 16, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "H2D from device memory");
    MC_CHECK(cudaMemcpy(d, host, 16, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue, "D2H from host memory");
    MC_CHECK(cudaMemcpy(d + 60, host, 32, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "H2D past the end");
    MC_CHECK(cudaMemcpy(d, host, 256, cudaMemcpyHostToDevice) == cudaSuccess, "H2D exact size");
    MC_CHECK(cudaMemcpy(host, d, 256, cudaMemcpyDefault) == cudaSuccess, "Default kind");
    MC_CHECK(cudaMemset(host, 0, 16) == cudaErrorInvalidValue, "memset of host memory");
    MC_CHECK(cudaMemset(d, 0, 257) == cudaErrorInvalidValue, "memset past the end");
    MC_CHECK(cudaFree(d + 1) == cudaErrorInvalidValue, "free of an interior pointer");
    cudaPointerAttributes a;
    cudaPointerGetAttributes(&a, d + 3);
    MC_CHECK(a.type == cudaMemoryTypeDevice, "device pointer type %d", (int)a.type);
    cudaPointerGetAttributes(&a, host);
    MC_CHECK(a.type == cudaMemoryTypeUnregistered, "host pointer type %d", (int)a.type);
    void *pinned = nullptr;
    MC_CHECK(cudaHostAlloc(&pinned, 100, 0) == cudaSuccess, "cudaHostAlloc");
    cudaPointerGetAttributes(&a, pinned);
    MC_CHECK(a.type == cudaMemoryTypeHost, "pinned pointer type %d", (int)a.type);
    MC_CHECK(cudaMemcpy(pinned, d, 100, cudaMemcpyDeviceToHost) == cudaSuccess, "D2H into pinned memory");
    MC_CHECK(cudaFreeHost(pinned) == cudaSuccess && cudaFreeHost(pinned) == cudaErrorInvalidValue, "double free");
    MC_CHECK(cudaFree(d) == cudaSuccess && cudaFree(d) == cudaErrorInvalidValue, "double cudaFree");
    cudaGetLastError();
}

static void launch_checks()
{
    int *d = dmalloc<int>(64);
    MR_LAUNCH(k_shared_per_block, 1, 2048)(d);
    MC_CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "block of 2048 threads");
    MR_LAUNCH(k_shared_per_block, dim3(1, 70000), 32)(d);
    MC_CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "grid.y 70000");
    const char *name = nullptr;
    MC_CHECK(cudaFuncGetName(&name, (const void *)&k_shared_per_block) == cudaSuccess && name &&
             !strcmp(name, "k_shared_per_block"), "name %s", name ? name : "(null)");
    MC_CHECK(cudaFuncGetName(&name, (const void *)&launch_checks) == cudaErrorInvalidDeviceFunction, "not a kernel");
    cudaGetLastError();
    cudaFree(d);
}

/* ---- cuBLAS ---- */

static float bf16_round(float v) { return __bfloat162float(__float2bfloat16(v)); }

/* C = alpha op(A) op(B) + beta C in double, straight from the column-major definition. */
static std::vector<double> ref_gemm(bool ta, bool tb, int m, int n, int k, double al, const std::vector<float> &A,
                                    int lda, const std::vector<float> &B, int ldb, double be,
                                    const std::vector<float> &C, int ldc)
{
    std::vector<double> out(C.begin(), C.end());
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (double)(ta ? A[p + (size_t)i * lda] : A[i + (size_t)p * lda]) *
                     (double)(tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb]);
            out[i + (size_t)j * ldc] = al * s + (be != 0 ? be * C[i + (size_t)j * ldc] : 0.0);
        }
    return out;
}

static void cublas_gemms()
{
    cublasHandle_t h;
    MC_CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "create");
    const int m = 7, n = 5, k = 6;
    for (int bf = 0; bf < 2; bf++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int lda = (ta ? k : m) + 3, ldb = (tb ? n : k) + 2, ldc = m + 1;
                std::vector<float> A((size_t)lda * (ta ? m : k)), B((size_t)ldb * (tb ? k : n)), C((size_t)ldc * n);
                for (size_t i = 0; i < A.size(); i++) A[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
                for (size_t i = 0; i < B.size(); i++) B[i] = (float)((i * 11) % 19) / 9.0f - 1.0f;
                for (size_t i = 0; i < C.size(); i++) C[i] = (float)i / 10.0f;
                if (bf) { for (float &v : A) v = bf16_round(v); for (float &v : B) v = bf16_round(v); }
                float al = 1.5f, be = bf ? 0.0f : 0.5f;
                std::vector<float> C0 = C;
                if (be == 0) for (float &v : C0) v = NAN;   /* beta = 0: C must not be read */
                void *dA, *dB, *dC;
                size_t ea = bf ? 2 : 4;
                cudaMalloc(&dA, A.size() * ea); cudaMalloc(&dB, B.size() * ea); cudaMalloc(&dC, C.size() * 4);
                if (bf) {
                    std::vector<__nv_bfloat16> a16(A.size()), b16(B.size());
                    for (size_t i = 0; i < A.size(); i++) a16[i] = __float2bfloat16(A[i]);
                    for (size_t i = 0; i < B.size(); i++) b16[i] = __float2bfloat16(B[i]);
                    cudaMemcpy(dA, a16.data(), A.size() * 2, cudaMemcpyHostToDevice);
                    cudaMemcpy(dB, b16.data(), B.size() * 2, cudaMemcpyHostToDevice);
                } else {
                    cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice);
                    cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice);
                }
                cudaMemcpy(dC, C0.data(), C.size() * 4, cudaMemcpyHostToDevice);
                cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
                cublasStatus_t st = bf
                    ? cublasGemmEx(h, oa, ob, m, n, k, &al, dA, CUDA_R_16BF, lda, dB, CUDA_R_16BF, ldb, &be, dC,
                                   CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)
                    : cublasSgemm(h, oa, ob, m, n, k, &al, (float *)dA, lda, (float *)dB, ldb, &be, (float *)dC, ldc);
                MC_CHECK(st == CUBLAS_STATUS_SUCCESS, "status %d", (int)st);
                std::vector<float> got(C.size());
                cudaMemcpy(got.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost);
                std::vector<double> want = ref_gemm(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc);
                double worst = 0;
                int untouched = 0;
                for (int j = 0; j < n; j++)
                    for (int i = 0; i < ldc; i++) {
                        size_t c = i + (size_t)j * ldc;
                        if (i < m) worst = std::max(worst, std::fabs(got[c] - want[c]));
                        else untouched += !(std::isnan(C0[c]) ? std::isnan(got[c]) : got[c] == C0[c]);
                    }
                MC_CHECK(worst < 1e-5, "%s ta %d tb %d: max error %g", bf ? "bf16" : "f32", ta, tb, worst);
                MC_CHECK(untouched == 0, "%d padding elements of C changed", untouched);
                cudaFree(dA); cudaFree(dB); cudaFree(dC);
            }
    /* device pointer mode, and an operand in host memory */
    float *d = dmalloc<float>(16), *ab = dmalloc<float>(2);
    float hab[2] = {2.0f, 0.0f}, ones[16];
    for (float &v : ones) v = 1.0f;
    cudaMemcpy(ab, hab, 8, cudaMemcpyHostToDevice);
    cudaMemcpy(d, ones, 64, cudaMemcpyHostToDevice);
    cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE);
    float *c = dmalloc<float>(4);
    MC_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 4, ab, d, 2, d + 8, 4, ab + 1, c, 2) ==
             CUBLAS_STATUS_SUCCESS, "device pointer mode");
    float hc[4];
    cudaMemcpy(hc, c, 16, cudaMemcpyDeviceToHost);
    MC_CHECK(hc[0] == 8.0f && hc[3] == 8.0f, "device alpha: %g %g", hc[0], hc[3]);
    cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
    float al = 1, be = 0;
    MC_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 4, &al, ones, 2, d, 4, &be, c, 2) ==
             CUBLAS_STATUS_EXECUTION_FAILED, "host A operand");
    MC_CHECK(cudaGetLastError() == cudaErrorIllegalAddress, "illegal address after a host operand");
    MC_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 4, &al, d, 1, d, 4, &be, c, 2) ==
             CUBLAS_STATUS_INVALID_VALUE, "lda < m");
    cudaFree(d); cudaFree(ab); cudaFree(c);
    cublasDestroy(h);
}

/* ---- misuse, each in a child process ---- */

static void run_divergent() { int *p = dmalloc<int>(32); MR_LAUNCH(k_divergent_barrier, 1, 32)(p); }
static void run_shuffle_exit() { float *p = dmalloc<float>(32); MR_LAUNCH(k_shuffle_after_exit, 1, 32)(p); }
static void run_host_read() { float *p = dmalloc<float>(8); volatile float v = p[1]; (void)v; }
static void run_write_past() { float *p = dmalloc<float>(100); MR_LAUNCH(k_write_past, 1, 32)(p, 100); }

__global__ void k_read_one_past(const float *p, float *out, int n)
{
    if (threadIdx.x == 0) out[0] = p[n];   /* 4 bytes past a 100-float allocation */
}

static void run_read_one_past()
{
    float *p = dmalloc<float>(100), *o = dmalloc<float>(1);
    MR_LAUNCH(k_read_one_past, 1, 32)(p, o, 100);
}

static void misuse_is_caught()
{
#if defined(__SANITIZE_ADDRESS__)
    /* under ASan the slack between an allocation's end and its guard page is poisoned */
    expect_death("kernel reading one element past an allocation (ASan)", run_read_one_past, "AddressSanitizer");
#endif
    expect_death("divergent barriers", run_divergent, "deadlock");
    expect_death("shuffle naming an exited lane", run_shuffle_exit, "has exited");
    expect_death("host code reading device memory", run_host_read, "host code touched device memory");
    expect_death("kernel writing past an allocation", run_write_past, "past the end of device allocation");
}

int main()
{
    MC_RUN(thread_indices_and_barrier);
    MC_RUN(reductions_and_shuffles);
    MC_RUN(shared_memory_per_block);
    MC_RUN(memory_checks);
    MC_RUN(launch_checks);
    MC_RUN(cublas_gemms);
    MC_RUN(misuse_is_caught);
    return MC_TEST_EXIT();
}
