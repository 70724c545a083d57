/* moe-ref CUDA engine: the CPU engine's forward pass (reference-engine/engine.c) on one GPU,
 * with the same ground-truth accounting, in a loop (cuBLAS per activated expert) or fused
 * (top-k kernel + grouped expert kernels) MoE style. See cuda_engine.h.
 *
 * Simple kernels on purpose (one block per row / head, warp dot products): this engine is a
 * yardstick for the profiler, not a fast server. Accounting mirrors engine.c: bytes per
 * weight read (elt = weight element size), KV bytes with the cache element size, GEMM FLOPs
 * 2*m*n*k of every weight product (fused experts included), gemm_calls = cuBLAS calls. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <stdexcept>
#include <unistd.h>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
#include "offload.h"
}
#include "cuda_engine.h"

/* Every kernel launch goes through one macro: `k<<<grid, block>>>(args)` under nvcc; the CPU
 * emulation used in CI (tests/cuda/emu/simt_emu.h, included first) defines it to call the
 * public cudaLaunchKernel, so the same kernels run there and a profiler sees each launch. */
#ifndef MR_LAUNCH
#define MR_LAUNCH(k, grid, block) k<<<grid, block>>>
#endif

namespace {

struct cuda_failure : std::runtime_error {
    explicit cuda_failure(const std::string &s) : std::runtime_error(s) {}
};

void ck(cudaError_t e, const char *what)
{
    if (e != cudaSuccess) throw cuda_failure(std::string(what) + ": " + cudaGetErrorString(e));
}

void ckb(cublasStatus_t s, const char *what)
{
    if (s != CUBLAS_STATUS_SUCCESS) throw cuda_failure(std::string(what) + ": cuBLAS status " + std::to_string((int)s));
}

__device__ __forceinline__ float ld(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float *p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, size_t i, float v) { p[i] = __float2bfloat16(v); }

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

template <typename W>
__global__ void k_embed(float *x, const W *emb, const int *tok, int T, int d)
{
    int t = blockIdx.x;
    if (t >= T) return;
    for (int i = threadIdx.x; i < d; i += blockDim.x) x[(size_t)t * d + i] = ld(emb, (size_t)tok[t] * d + i);
}

/* One block (256 threads) per row; sum of squares in double like the CPU engine. */
template <typename W>
__global__ void k_rmsnorm(float *out, const float *x, const int *rows, int n, const W *w, int d, float eps)
{
    __shared__ double part[256];
    int r = blockIdx.x;
    if (r >= n) return;
    const float *xr = x + (size_t)(rows ? rows[r] : r) * d;
    double ss = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += (double)xr[i] * xr[i];
    part[threadIdx.x] = ss;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    float inv = (float)(1.0 / sqrt(part[0] / d + (double)eps));
    for (int i = threadIdx.x; i < d; i += blockDim.x) out[(size_t)r * d + i] = (xr[i] * inv) * ld(w, i);
}

/* HF rotate_half RoPE: one thread per (token, head, i < hd/2). */
__global__ void k_rope(float *v, int T, int nh, int hd, const int *pos, float theta)
{
    int half = hd / 2;
    size_t id = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (size_t)T * nh * half) return;
    int i = (int)(id % half), h = (int)((id / half) % nh), t = (int)(id / half / nh);
    double inv = pow((double)theta, -2.0 * i / hd);
    double ang = pos[t] * inv, cs = cos(ang), sn = sin(ang);
    float *vh = v + ((size_t)t * nh + h) * hd;
    float a = vh[i], b = vh[i + half];
    vh[i] = (float)(a * cs - b * sn);
    vh[i + half] = (float)(b * cs + a * sn);
}

/* Cache layout: [seq][layer][max_len][kvd]. */
template <typename W>
__global__ void k_kv_store(W *kc, W *vc, const float *kk, const float *vv, const int *sidx, const int *pos,
                           int T, int kvd, int L, int l, int maxlen)
{
    int t = blockIdx.x;
    if (t >= T) return;
    size_t base = (((size_t)sidx[t] * L + l) * maxlen + pos[t]) * kvd;
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
        st(kc, base + i, kk[(size_t)t * kvd + i]);
        st(vc, base + i, vv[(size_t)t * kvd + i]);
    }
}

/* One block (128 threads) per (token, head): scores over keys 0..pos, softmax, values. */
template <typename W>
__global__ void k_attention(float *out, const float *q, const W *kc, const W *vc, const int *sidx,
                            const int *pos, int T, int H, int HK, int hd, int L, int l, int maxlen,
                            float *scores, int maxctx)
{
    __shared__ float red[128];
    int t = blockIdx.x / H, h = blockIdx.x % H;
    if (t >= T) return;
    int kvd = HK * hd, kh = h / (H / HK), p = pos[t];
    const float *qh = q + ((size_t)t * H + h) * hd;
    size_t base = (((size_t)sidx[t] * L + l) * maxlen) * kvd + (size_t)kh * hd;
    float *sc = scores + (size_t)blockIdx.x * maxctx;
    float scale = 1.0f / sqrtf((float)hd);
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= p; j += blockDim.x) {
        float dot = 0;
        for (int i = 0; i < hd; i++) dot += qh[i] * ld(kc, base + (size_t)j * kvd + i);
        sc[j] = dot * scale;
        mx = fmaxf(mx, sc[j]);
    }
    red[threadIdx.x] = mx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
        __syncthreads();
    }
    mx = red[0];
    __syncthreads();
    float sum = 0;
    for (int j = threadIdx.x; j <= p; j += blockDim.x) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
    red[threadIdx.x] = sum;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    float inv = 1.0f / red[0];
    float *oh = out + ((size_t)t * H + h) * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0;
        for (int j = 0; j <= p; j++) acc += sc[j] * inv * ld(vc, base + (size_t)j * kvd + i);
        oh[i] = acc;
    }
}

__global__ void k_silu_mul(float *g, const float *u, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { float x = g[i]; g[i] = x / (1.0f + expf(-x)) * u[i]; }
}

__global__ void k_add(float *x, const float *y, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

__global__ void k_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16(src[i]);
}

__global__ void k_gather_rows(float *dst, const float *src, const int *rows, int n, int d)
{
    int r = blockIdx.x;
    if (r >= n) return;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dst[(size_t)r * d + i] = src[(size_t)rows[r] * d + i];
}

/* out[rows[r]] += w[r] * src[r]; rows distinct within one launch (one expert). */
__global__ void k_scatter_add(float *out, const float *src, const int *rows, const float *w, int n, int d)
{
    int r = blockIdx.x;
    if (r >= n) return;
    for (int i = threadIdx.x; i < d; i += blockDim.x) out[(size_t)rows[r] * d + i] += w[r] * src[(size_t)r * d + i];
}

__global__ void k_shared_combine(float *out, const float *dn, const float *sgl, int T, int d)
{
    int t = blockIdx.x;
    if (t >= T) return;
    float g = sgl ? 1.0f / (1.0f + expf(-sgl[t])) : 1.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) out[(size_t)t * d + i] += g * dn[(size_t)t * d + i];
}

} // namespace

#define MR_MAX_FUSED_E 256

/* The fused style's router kernel, one thread per token: softmax over E logits, optional
 * DeepSeek group limit, top-k (ties to the lower index), weights renormalised or scaled:
 * the same rule as routing.c's mr_route_token (its host twin). Unmangled name and a fixed parameter order so
 * data/taps/moe-ref.json can tap `ids` (parameter 4: T x K int32). */
extern "C" __global__ void mr_fused_topk(const float *logits, int T, int E, int K, int *ids, float *w,
                                         int n_group, int topk_group, int norm, int deepseek, float scaling)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T || E > MR_MAX_FUSED_E) return;
    double pr[MR_MAX_FUSED_E];
    char allowed[MR_MAX_FUSED_E], taken[MR_MAX_FUSED_E];
    const float *lg = logits + (size_t)t * E;
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < E; i++) if (lg[i] > mx) mx = lg[i];
    for (int i = 0; i < E; i++) { pr[i] = exp((double)lg[i] - mx); sum += pr[i]; }
    for (int i = 0; i < E; i++) { pr[i] /= sum; allowed[i] = 1; taken[i] = 0; }
    if (n_group > 0 && topk_group < n_group && n_group <= 64) {
        int gs = E / n_group;
        double gmax[64];
        char gsel[64];
        for (int g = 0; g < n_group; g++) {
            gmax[g] = -1; gsel[g] = 0;
            for (int i = g * gs; i < (g + 1) * gs; i++) if (pr[i] > gmax[g]) gmax[g] = pr[i];
        }
        for (int r = 0; r < topk_group; r++) {
            int best = -1;
            for (int g = 0; g < n_group; g++) if (!gsel[g] && (best < 0 || gmax[g] > gmax[best])) best = g;
            gsel[best] = 1;
        }
        for (int i = 0; i < E; i++) allowed[i] = gsel[i / gs];
    }
    double tot = 0;
    for (int r = 0; r < K; r++) {
        int best = -1;
        for (int i = 0; i < E; i++) if (allowed[i] && !taken[i] && (best < 0 || pr[i] > pr[best])) best = i;
        if (best < 0) {
            for (int i = 0; i < E; i++) if (!taken[i]) { best = i; break; }
            pr[best] = 0;
        }
        taken[best] = 1;
        ids[(size_t)t * K + r] = best;
        w[(size_t)t * K + r] = (float)pr[best];
        tot += pr[best];
    }
    if (norm) {
        double den = tot + (deepseek ? 1e-20 : 0.0);
        for (int r = 0; r < K; r++) w[(size_t)t * K + r] = (float)(w[(size_t)t * K + r] / den);
    } else if (deepseek) {
        for (int r = 0; r < K; r++) w[(size_t)t * K + r] *= scaling;
    }
}

namespace {

/* Grouped gate/up for all (token, slot) pairs: one warp per output j of pair (t, r):
 * h[t, r, j] = silu(x_t . Wg[e][j]) * (x_t . Wu[e][j]), e = ids[t, r]. */
template <typename W>
__global__ void k_fused_gate_up(float *h, const float *xn, const int *ids, const W *eg, const W *eu,
                                int T, int K, int d, int f)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int j = blockIdx.x * (blockDim.x / 32) + warp;
    int pr = blockIdx.y;   /* t * K + r */
    if (j >= f || pr >= T * K) return;
    int t = pr / K, e = ids[pr];
    const float *x = xn + (size_t)t * d;
    size_t row = ((size_t)e * f + j) * d;
    float a = 0, b = 0;
    for (int i = lane; i < d; i += 32) { a += x[i] * ld(eg, row + i); b += x[i] * ld(eu, row + i); }
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0) h[(size_t)pr * f + j] = a / (1.0f + expf(-a)) * b;
}

/* Grouped down projection and weighted combine: out[t, i] = sum_r w[t, r] * (h[t, r] . Wd[e_r][i]). */
template <typename W>
__global__ void k_fused_down(float *out, const float *h, const int *ids, const float *w, const W *ed,
                             int T, int K, int d, int f)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int i = blockIdx.x * (blockDim.x / 32) + warp;
    int t = blockIdx.y;
    if (i >= d || t >= T) return;
    float acc = 0;
    for (int r = 0; r < K; r++) {
        int e = ids[(size_t)t * K + r];
        const float *hr = h + ((size_t)t * K + r) * f;
        size_t row = ((size_t)e * d + i) * f;
        float s = 0;
        for (int j = lane; j < f; j += 32) s += hr[j] * ld(ed, row + j);
        s = warp_sum(s);
        acc += w[(size_t)t * K + r] * s;
    }
    if (lane == 0) out[(size_t)t * d + i] = acc;
}

unsigned blocks(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

enum wclass { W_DENSE, W_ROUTED, W_SHARED };

struct acct {
    uint64_t bytes[3];
    uint64_t kv_read, kv_written, flops_gemm, flops_att, calls;
};

template <typename W>
struct dev_layer {
    W *attn_norm = nullptr, *ffn_norm = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
    int dense = 0;
    W *gate = nullptr, *up = nullptr, *down = nullptr;
    W *router = nullptr, *eg = nullptr, *eu = nullptr, *ed = nullptr;
    W *sg = nullptr, *su = nullptr, *sd = nullptr, *sgate = nullptr;
};

/* Expert offloading's loader (offload.h): every routed expert in pinned host memory, laid
 * out [layer][expert][gate, up, down], and a budget of device slots of the same layout;
 * a load is one asynchronous host->device copy on the default stream, which orders it
 * before the GEMMs that read the slot and after those that read its previous expert. */
template <typename W>
struct pinned_experts {
    W *host = nullptr;       /* cudaHostAlloc'ed, layers x E x per */
    W *slots = nullptr;      /* device, nslots x per (freed with the engine's allocations) */
    size_t per = 0;          /* 3 x f x d elements */
    int E = 0;
};

template <typename W>
int pinned_load(void *ctx, int slot, int layer, int x, char *err, size_t errlen)
{
    auto *p = static_cast<pinned_experts<W> *>(ctx);
    size_t key = (size_t)layer * p->E + x;
    cudaError_t e = cudaMemcpyAsync(p->slots + (size_t)slot * p->per, p->host + key * p->per, p->per * sizeof(W),
                                    cudaMemcpyHostToDevice, 0);
    if (e != cudaSuccess) { snprintf(err, errlen, "loading expert %d of layer %d: %s", x, layer, cudaGetErrorString(e)); return -1; }
    return 0;
}

int pinned_sync(void *, char *err, size_t errlen)
{
    cudaError_t e = cudaStreamSynchronize(0);
    if (e != cudaSuccess) { snprintf(err, errlen, "expert loads: %s", cudaGetErrorString(e)); return -1; }
    return 0;
}

template <typename W>
void pinned_release(void *ctx)
{
    auto *p = static_cast<pinned_experts<W> *>(ctx);
    if (p->host) cudaFreeHost(p->host);
    delete p;
}

/* Offloading with bf16 weights from an F32 checkpoint: the weights converted once into a
 * BF16 safetensors file (same tensor names and shapes, in $TMPDIR; unlinked as soon as it is
 * open for reading, so nothing is left behind even if the process is killed) that
 * every upload and every expert read then preads, as an engine serving a bf16 checkpoint
 * reads its file. The bytes that reach the device are then file bytes of the dtype the GEMMs
 * read, which a profiler names through the read and the copy; converting on the host between
 * the read and the copy would leave the copied bytes without a name (and the loads uncounted). */
class bf16_file {
public:
    explicit bf16_file(const mr_model *m)
    {
        const char *dir = getenv("TMPDIR");
        std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/moe-ref-bf16-XXXXXX.safetensors";
        std::vector<char> path(tmpl.begin(), tmpl.end());
        path.push_back(0);
        int wfd = mkstemps(path.data(), (int)strlen(".safetensors"));
        if (wfd < 0) throw cuda_failure(tmpl + ": cannot create the bf16 weights file: " + strerror(errno));
        path_ = path.data();
        std::string hdr = "{";
        uint64_t off = 0;
        for (int i = 0; i < m->ntensors; i++) {
            const mr_tensor &t = m->tensors[i];
            uint64_t bytes = t.nbytes / sizeof(float) * sizeof(__nv_bfloat16);
            hdr += std::string(i ? "," : "") + "\"" + json_escaped(t.name) + "\":{\"dtype\":\"BF16\",\"shape\":[";
            for (int k = 0; k < t.ndim; k++) hdr += (k ? "," : "") + std::to_string(t.shape[k]);
            hdr += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + bytes) + "]}";
            ents_.push_back({t.ptr, off, bytes});
            off += bytes;
        }
        hdr += "}";
        while (hdr.size() % 8) hdr += ' ';
        base_ = 8 + hdr.size();
        FILE *f = fdopen(wfd, "wb");
        uint64_t hl = hdr.size();
        unsigned char le[8];
        for (int k = 0; k < 8; k++) le[k] = (unsigned char)(hl >> (8 * k));
        bool ok = f && fwrite(le, 1, 8, f) == 8 && fwrite(hdr.data(), 1, hdr.size(), f) == hdr.size();
        std::vector<__nv_bfloat16> buf;
        for (int i = 0; i < m->ntensors && ok; i++) {
            const float *src = static_cast<const float *>(m->tensors[i].ptr);
            buf.resize(m->tensors[i].nbytes / sizeof(float));
            for (size_t k = 0; k < buf.size(); k++) buf[k] = __float2bfloat16(src[k]);
            ok = fwrite(buf.data(), sizeof(__nv_bfloat16), buf.size(), f) == buf.size();
        }
        if (f ? fclose(f) != 0 : (close(wfd), true)) ok = false;
        /* opened again for reading, by name: a profiler sees a weights file opened and read */
        if (ok) fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        int saved = errno;
        unlink(path_.c_str());
        if (!ok || fd_ < 0) throw cuda_failure(path_ + ": cannot write the bf16 weights file: " + strerror(saved));
    }
    ~bf16_file()
    {
        if (fd_ >= 0) close(fd_);
    }
    bf16_file(const bf16_file &) = delete;
    bf16_file &operator=(const bf16_file &) = delete;

    /* The bf16 bytes of the model tensor mapped at f32 (n elements) into dst, by pread. */
    void read(const void *f32, void *dst, size_t n) const
    {
        for (const ent &e : ents_) {
            if (e.ptr != f32) continue;
            if (e.bytes != n * sizeof(__nv_bfloat16)) break;
            char *p = static_cast<char *>(dst);
            uint64_t off = base_ + e.off, left = e.bytes;
            while (left) {
                ssize_t r = pread(fd_, p, left, (off_t)off);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) throw cuda_failure(path_ + ": read failed: " + (r < 0 ? strerror(errno) : "end of file"));
                p += r; off += (uint64_t)r; left -= (uint64_t)r;
            }
            return;
        }
        throw cuda_failure("bf16 weights file: no tensor of " + std::to_string(n) + " elements at that address");
    }

private:
    struct ent { const void *ptr; uint64_t off, bytes; };
    std::string path_;
    int fd_ = -1;
    uint64_t base_ = 0;   /* 8 + header length: where the data section starts */
    std::vector<ent> ents_;

    static std::string json_escaped(const char *s)
    {
        std::string o;
        for (; *s; s++) {
            if (*s == '"' || *s == '\\') o += '\\';
            o += *s;
        }
        return o;
    }
};

template <typename W>
class engine {
public:
    engine(mr_model *m, const mr_cuda_opts *o)
        : m_(m), c_(m->cfg), fused_(o->fused), policy_((mr_offload_policy)o->offload), budget_(o->expert_budget) {}
    ~engine()
    {
        mr_offload_free(off_);   /* joins the swap thread before the memory goes */
        for (void *p : allocs_) cudaFree(p);
        if (blas_) cublasDestroy(blas_);
    }

    void run(int nseq, int32_t *const *prompts, const int *plen, int gen, FILE *gt, FILE *lf, int32_t **out_ids);

private:
    mr_model *m_;
    mr_config c_;
    int fused_;
    mr_offload_policy policy_;
    uint64_t budget_;
    mr_offload *off_ = nullptr;
    W *slots_ = nullptr;          /* offload: the device expert slots */
    std::unique_ptr<bf16_file> bf16_file_;   /* offload in bf16: where uploads and loads read */
    char oerr_[512] = "";
    cublasHandle_t blas_ = nullptr;
    std::vector<void *> allocs_;
    W *embed_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
    std::vector<dev_layer<W>> lw_;
    acct a_{};
    /* scratch */
    float *x_, *xn_, *q_, *kk_, *vv_, *att_, *tmp_, *moe_, *rl_, *xe_, *g_, *u_, *dn_, *sgl_, *scores_, *logits_, *ew_, *fw_, *fh_;
    __nv_bfloat16 *xb_ = nullptr;
    int *tok_, *pos_, *sidx_, *etok_, *fids_, *last_rows_;
    W *kc_, *vc_;
    int maxlen_ = 0, maxctx_ = 0;

    template <typename T> T *dalloc(size_t n)
    {
        void *p = nullptr;
        ck(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
        allocs_.push_back(p);
        return static_cast<T *>(p);
    }

    /* Upload n floats from the mmap'ed file (f32: straight copy, so a profiler sees a
     * host->device copy of the weight-file range; bf16: converted on the host first). */
    void upload_into(W *dst, const float *src, size_t n)
    {
        if (sizeof(W) == sizeof(float)) {
            ck(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy weights");
        } else if (bf16_file_) {
            std::vector<__nv_bfloat16> tmp(n);
            bf16_file_->read(src, tmp.data(), n);
            ck(cudaMemcpy(dst, tmp.data(), n * sizeof(W), cudaMemcpyHostToDevice), "cudaMemcpy weights");
        } else {
            std::vector<__nv_bfloat16> tmp(n);
            for (size_t i = 0; i < n; i++) tmp[i] = __float2bfloat16(src[i]);
            ck(cudaMemcpy(dst, tmp.data(), n * sizeof(W), cudaMemcpyHostToDevice), "cudaMemcpy weights");
        }
    }
    W *upload(const float *src, size_t n)
    {
        if (!src) return nullptr;
        W *d = dalloc<W>(n);
        upload_into(d, src, n);
        return d;
    }
    W *upload_experts(const float *const *src, int E, size_t per)
    {
        W *d = dalloc<W>((size_t)E * per);
        for (int e = 0; e < E; e++) upload_into(d + (size_t)e * per, src[e], per);
        return d;
    }

    void load_weights()
    {
        size_t d = c_.hidden, qd = (size_t)c_.heads * c_.head_dim, kvd = (size_t)c_.kv_heads * c_.head_dim;
        size_t f = c_.moe_inter, fd = c_.dense_inter, fs = c_.shared_inter, E = c_.experts;
        embed_ = upload(m_->embed, (size_t)c_.vocab * d);
        final_norm_ = upload(m_->final_norm, d);
        lm_head_ = upload(m_->lm_head, (size_t)c_.vocab * d);
        lw_.resize(c_.layers);
        for (int l = 0; l < c_.layers; l++) {
            const mr_layer_w &w = m_->lw[l];
            dev_layer<W> &D = lw_[l];
            D.attn_norm = upload(w.attn_norm, d);
            D.ffn_norm = upload(w.ffn_norm, d);
            D.q = upload(w.q, qd * d);
            D.k = upload(w.k, kvd * d);
            D.v = upload(w.v, kvd * d);
            D.o = upload(w.o, d * qd);
            D.dense = w.dense;
            if (w.dense) {
                D.gate = upload(w.gate, fd * d);
                D.up = upload(w.up, fd * d);
                D.down = upload(w.down, d * fd);
                continue;
            }
            D.router = upload(w.router, E * d);
            if (policy_ == MR_OFFLOAD_NONE) {   /* else experts come through the slots (setup_offload) */
                D.eg = upload_experts(w.eg, (int)E, f * d);
                D.eu = upload_experts(w.eu, (int)E, f * d);
                D.ed = upload_experts(w.ed, (int)E, d * f);
            }
            if (fs > 0) {
                D.sg = upload(w.sg, fs * d);
                D.su = upload(w.su, fs * d);
                D.sd = upload(w.sd, d * fs);
                D.sgate = upload(w.sgate, d);
            }
        }
    }

    /* Offloading: every routed expert read from the weights file into pinned host memory
     * (f32: pread straight into it, so a profiler names the bytes; bf16: converted), device
     * slots under the budget, and the policy core (offload.c) over them. */
    void setup_offload()
    {
        size_t d = c_.hidden, f = c_.moe_inter, per = 3 * f * d;
        int nslots;
        if (mr_offload_plan(m_, policy_, budget_, per * sizeof(W), &nslots, oerr_, sizeof oerr_))
            throw cuda_failure(oerr_);
        auto *p = new pinned_experts<W>();
        p->per = per;
        p->E = c_.experts;
        size_t n = (size_t)c_.layers * c_.experts * per;
        if (cudaHostAlloc((void **)&p->host, n * sizeof(W), cudaHostAllocDefault) != cudaSuccess) {
            delete p;
            throw cuda_failure("cudaHostAlloc of the experts' pinned memory failed");
        }
        /* f32: the checkpoint's own ranges; bf16: the converted file's (bf16_file) */
        int *fds = sizeof(W) == sizeof(float) ? mr_offload_open_files(m_, oerr_, sizeof oerr_) : nullptr;
        int bad = sizeof(W) == sizeof(float) && !fds;
        for (int l = 0; l < c_.layers && !bad; l++) {
            if (m_->lw[l].dense) continue;
            for (int x = 0; x < c_.experts && !bad; x++) {
                W *dst = p->host + ((size_t)l * c_.experts + x) * per;
                if (sizeof(W) == sizeof(float)) {
                    bad = mr_offload_read_expert(m_, fds, l, x, (float *)(void *)dst, oerr_, sizeof oerr_) != 0;
                    continue;
                }
                const mr_layer_w &w = m_->lw[l];
                try {
                    bf16_file_->read(w.eg[x], dst, f * d);
                    bf16_file_->read(w.eu[x], dst + f * d, f * d);
                    bf16_file_->read(w.ed[x], dst + 2 * f * d, d * f);
                } catch (const cuda_failure &ex) {
                    snprintf(oerr_, sizeof oerr_, "expert %d of layer %d: %s", x, l, ex.what());
                    bad = 1;
                }
            }
        }
        mr_offload_close_files(m_, fds);
        if (bad) { pinned_release<W>(p); throw cuda_failure(oerr_); }
        slots_ = dalloc<W>((size_t)nslots * per);
        p->slots = slots_;
        mr_offload_loader ld = {p, pinned_load<W>, pinned_sync, pinned_release<W>, "pinned_host"};
        int usage = 0;
        off_ = mr_offload_new_with(m_, policy_, budget_, per * sizeof(W), &ld, oerr_, sizeof oerr_, &usage);
        if (!off_) throw cuda_failure(oerr_);
    }

    void alloc_scratch(int Tmax, int nseq)
    {
        size_t d = c_.hidden, qd = (size_t)c_.heads * c_.head_dim, kvd = (size_t)c_.kv_heads * c_.head_dim;
        size_t E = std::max(c_.experts, 1), K = std::max(c_.top_k, 1);
        size_t fmax = std::max({(size_t)c_.moe_inter, (size_t)c_.dense_inter, (size_t)c_.shared_inter, (size_t)1});
        size_t T = Tmax;
        x_ = dalloc<float>(T * d); xn_ = dalloc<float>(T * d); q_ = dalloc<float>(T * qd);
        kk_ = dalloc<float>(T * kvd); vv_ = dalloc<float>(T * kvd); att_ = dalloc<float>(T * qd);
        tmp_ = dalloc<float>(T * d); moe_ = dalloc<float>(T * d); rl_ = dalloc<float>(T * E);
        xe_ = dalloc<float>(T * d); g_ = dalloc<float>(T * fmax); u_ = dalloc<float>(T * fmax);
        dn_ = dalloc<float>(T * d); sgl_ = dalloc<float>(T);
        scores_ = dalloc<float>(T * c_.heads * (size_t)maxctx_);
        logits_ = dalloc<float>((size_t)nseq * c_.vocab);
        ew_ = dalloc<float>(T * K); etok_ = dalloc<int>(T * K);
        fids_ = dalloc<int>((size_t)c_.layers * T * K); fw_ = dalloc<float>(T * K);
        fh_ = dalloc<float>(T * K * (size_t)std::max(c_.moe_inter, 1));
        if (sizeof(W) != sizeof(float)) xb_ = dalloc<__nv_bfloat16>(T * std::max(fmax, std::max(d, qd)));
        tok_ = dalloc<int>(T); pos_ = dalloc<int>(T); sidx_ = dalloc<int>(T); last_rows_ = dalloc<int>(nseq);
        size_t cache = (size_t)nseq * c_.layers * maxlen_ * kvd;
        kc_ = dalloc<W>(cache);
        vc_ = dalloc<W>(cache);
    }

    /* Y[m x out] = X[m x in] . W^T with W the [out, in] weight: cuBLAS column-major
     * C(out x m) = op_T(W) op_N(X), one call per weight product. */
    void gemm(const float *X, int m, const W *Wt, int out, int in, float *Y, wclass cls)
    {
        if (m <= 0) return;
        float one = 1.0f, zero = 0.0f;
        if (sizeof(W) == sizeof(float)) {
            ckb(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, out, m, in, &one, (const float *)Wt, in, X, in,
                            &zero, Y, out), "cublasSgemm");
        } else {
            size_t n = (size_t)m * in;
            MR_LAUNCH(k_to_bf16, blocks(n, 256), 256)(xb_, X, n);
            ckb(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, out, m, in, &one, Wt, CUDA_R_16BF, in, xb_,
                             CUDA_R_16BF, in, &zero, Y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "cublasGemmEx");
        }
        a_.calls++;
        count_gemm(m, out, in, cls);
    }
    void count_gemm(uint64_t m, uint64_t out, uint64_t in, wclass cls)
    {
        a_.flops_gemm += 2ull * m * out * in;
        a_.bytes[cls] += out * in * sizeof(W);
    }
    void rmsnorm(float *out, const float *x, const int *rows, int n, const W *w)
    {
        MR_LAUNCH(k_rmsnorm<W>, n, 256)(out, x, rows, n, w, c_.hidden, c_.rms_eps);
        a_.bytes[W_DENSE] += (uint64_t)c_.hidden * sizeof(W);
    }

    void ffn_dense(const dev_layer<W> &w, int T)
    {
        int d = c_.hidden, f = c_.dense_inter;
        gemm(xn_, T, w.gate, f, d, g_, W_DENSE);
        gemm(xn_, T, w.up, f, d, u_, W_DENSE);
        MR_LAUNCH(k_silu_mul, blocks((size_t)T * f, 256), 256)(g_, u_, (size_t)T * f);
        gemm(g_, T, w.down, d, f, moe_, W_DENSE);
    }

    void ffn_moe(const dev_layer<W> &w, int l, int T, std::vector<int> &layer_cnt)
    {
        int d = c_.hidden, f = c_.moe_inter, E = c_.experts, K = c_.top_k;
        gemm(xn_, T, w.router, E, d, rl_, W_DENSE);
        int *cnt = layer_cnt.data() + (size_t)l * E;
        if (fused_) {
            int *ids = fids_ + (size_t)l * T * K;
            MR_LAUNCH(mr_fused_topk, blocks(T, 64), 64)(rl_, T, E, K, ids, fw_, c_.n_group, c_.topk_group,
                                                  c_.norm_topk_prob, c_.arch == MR_ARCH_DEEPSEEK_V2,
                                                  c_.routed_scaling_factor);
            dim3 gu(blocks(f, 4), T * K), dn(blocks(d, 4), T);
            MR_LAUNCH(k_fused_gate_up<W>, gu, 128)(fh_, xn_, ids, w.eg, w.eu, T, K, d, f);
            MR_LAUNCH(k_fused_down<W>, dn, 128)(moe_, fh_, ids, fw_, w.ed, T, K, d, f);
            ck(cudaGetLastError(), "fused MoE kernels");
            /* tokens per expert for the ground truth: read the ids the kernel chose */
            std::vector<int> h((size_t)T * K);
            ck(cudaMemcpy(h.data(), ids, h.size() * sizeof(int), cudaMemcpyDeviceToHost), "copy ids");
            std::fill(cnt, cnt + E, 0);
            for (int v : h) cnt[v]++;
            for (int x = 0; x < E; x++)
                if (cnt[x]) { count_gemm(cnt[x], f, d, W_ROUTED); count_gemm(cnt[x], f, d, W_ROUTED); count_gemm(cnt[x], d, f, W_ROUTED); }
        } else {
            std::vector<float> lg((size_t)T * E), selw((size_t)T * K), ew((size_t)T * K);
            std::vector<int> sel((size_t)T * K), eoff(E + 1), etok((size_t)T * K), fill(E, 0);
            ck(cudaMemcpy(lg.data(), rl_, lg.size() * sizeof(float), cudaMemcpyDeviceToHost), "copy router logits");
            for (int t = 0; t < T; t++) mr_route_token(&c_, &lg[(size_t)t * E], &sel[(size_t)t * K], &selw[(size_t)t * K]);
            if (off_) mr_offload_route(off_, l, lg.data(), T, sel.data(), selw.data());
            std::fill(cnt, cnt + E, 0);
            for (int i = 0; i < T * K; i++) cnt[sel[i]]++;
            eoff[0] = 0;
            for (int x = 0; x < E; x++) eoff[x + 1] = eoff[x] + cnt[x];
            for (int t = 0; t < T; t++)
                for (int r = 0; r < K; r++) {
                    int x = sel[(size_t)t * K + r], at = eoff[x] + fill[x]++;
                    etok[at] = t;
                    ew[at] = selw[(size_t)t * K + r];
                }
            ck(cudaMemcpy(etok_, etok.data(), etok.size() * sizeof(int), cudaMemcpyHostToDevice), "upload routing");
            ck(cudaMemcpy(ew_, ew.data(), ew.size() * sizeof(float), cudaMemcpyHostToDevice), "upload weights");
            ck(cudaMemset(moe_, 0, (size_t)T * d * sizeof(float)), "memset");
            for (int x = 0; x < E; x++) {
                int mx = cnt[x];
                if (!mx) continue;
                const W *eg = w.eg + (size_t)x * f * d, *eu = w.eu + (size_t)x * f * d, *ed = w.ed + (size_t)x * d * f;
                if (off_) {   /* the expert's slot: gate, up, down back to back */
                    int s = mr_offload_slot(off_, l, x, oerr_, sizeof oerr_);
                    if (s < 0) throw cuda_failure(oerr_);
                    eg = slots_ + (size_t)s * 3 * f * d;
                    eu = eg + (size_t)f * d;
                    ed = eu + (size_t)f * d;
                }
                MR_LAUNCH(k_gather_rows, mx, 256)(xe_, xn_, etok_ + eoff[x], mx, d);
                gemm(xe_, mx, eg, f, d, g_, W_ROUTED);
                gemm(xe_, mx, eu, f, d, u_, W_ROUTED);
                MR_LAUNCH(k_silu_mul, blocks((size_t)mx * f, 256), 256)(g_, u_, (size_t)mx * f);
                gemm(g_, mx, ed, d, f, dn_, W_ROUTED);
                MR_LAUNCH(k_scatter_add, mx, 256)(moe_, dn_, etok_ + eoff[x], ew_ + eoff[x], mx, d);
            }
        }
        if (c_.shared_inter > 0) {
            int fs = c_.shared_inter;
            gemm(xn_, T, w.sg, fs, d, g_, W_SHARED);
            gemm(xn_, T, w.su, fs, d, u_, W_SHARED);
            MR_LAUNCH(k_silu_mul, blocks((size_t)T * fs, 256), 256)(g_, u_, (size_t)T * fs);
            gemm(g_, T, w.sd, d, fs, dn_, W_SHARED);
            if (w.sgate) gemm(xn_, T, w.sgate, 1, d, sgl_, W_DENSE);
            MR_LAUNCH(k_shared_combine, T, 256)(moe_, dn_, w.sgate ? sgl_ : nullptr, T, d);
        }
    }
};

template <typename W>
void engine<W>::run(int nseq, int32_t *const *prompts, const int *plen, int gen, FILE *gt, FILE *lf,
                    int32_t **out_ids)
{
    int Tmax = 0, maxp = 0;
    for (int i = 0; i < nseq; i++) { Tmax += plen[i]; maxp = std::max(maxp, plen[i]); }
    Tmax = std::max(Tmax, nseq);
    maxlen_ = maxp + gen;
    maxctx_ = maxlen_;
    if (fused_ && c_.experts > MR_MAX_FUSED_E)
        throw cuda_failure("--moe fused supports at most " + std::to_string(MR_MAX_FUSED_E) + " experts");
    /* grid.y of the grouped kernels is tokens x k (gate/up) and tokens (down) */
    if (fused_ && (long long)Tmax * std::max(c_.top_k, 1) > 65535)
        throw cuda_failure("--moe fused supports at most 65535 (token, expert) pairs per step; "
                           "use fewer or shorter prompts");
    ckb(cublasCreate(&blas_), "cublasCreate");
    if (policy_ != MR_OFFLOAD_NONE && fused_) throw cuda_failure("expert offloading needs --moe loop");
    if (policy_ != MR_OFFLOAD_NONE && sizeof(W) != sizeof(float)) bf16_file_.reset(new bf16_file(m_));
    load_weights();
    alloc_scratch(Tmax, nseq);
    if (policy_ != MR_OFFLOAD_NONE) setup_offload();
    const int d = c_.hidden, hd = c_.head_dim, H = c_.heads, HK = c_.kv_heads, qd = H * hd, kvd = HK * hd;
    const int L = c_.layers, E = std::max(c_.experts, 1), V = c_.vocab;
    std::vector<int> len(nseq, 0), last(nseq, 0), layer_cnt((size_t)L * E, 0);
    std::vector<float> logits((size_t)nseq * V);
    for (int step = 0; step < gen; step++) {
        std::vector<int> counts(nseq), tok, pos, sidx;
        for (int i = 0; i < nseq; i++) {
            counts[i] = step == 0 ? plen[i] : 1;
            for (int j = 0; j < counts[i]; j++) {
                tok.push_back(step == 0 ? prompts[i][j] : last[i]);
                pos.push_back(len[i] + j);
                sidx.push_back(i);
            }
        }
        int T = (int)tok.size();
        int all_empty = 1, any_multi = 0, all_one = 1;
        for (int i = 0; i < nseq; i++) {
            if (len[i] != 0) all_empty = 0;
            if (counts[i] > 1) { any_multi = 1; all_one = 0; }
        }
        const char *kind = all_empty && any_multi ? "prefill" : all_one ? "decode" : "mixed";
        if (off_ && mr_offload_step_begin(off_, oerr_, sizeof oerr_)) throw cuda_failure(oerr_);
        a_ = acct{};
        ck(cudaDeviceSynchronize(), "sync");
        uint64_t t0 = mr_now_ns();
        ck(cudaMemcpy(tok_, tok.data(), T * sizeof(int), cudaMemcpyHostToDevice), "upload tokens");
        ck(cudaMemcpy(pos_, pos.data(), T * sizeof(int), cudaMemcpyHostToDevice), "upload positions");
        ck(cudaMemcpy(sidx_, sidx.data(), T * sizeof(int), cudaMemcpyHostToDevice), "upload seq index");
        MR_LAUNCH(k_embed<W>, T, 256)(x_, embed_, tok_, T, d);
        a_.bytes[W_DENSE] += (uint64_t)T * d * sizeof(W);
        for (int l = 0; l < L; l++) {
            const dev_layer<W> &w = lw_[l];
            rmsnorm(xn_, x_, nullptr, T, w.attn_norm);
            gemm(xn_, T, w.q, qd, d, q_, W_DENSE);
            gemm(xn_, T, w.k, kvd, d, kk_, W_DENSE);
            gemm(xn_, T, w.v, kvd, d, vv_, W_DENSE);
            MR_LAUNCH(k_rope, blocks((size_t)T * H * (hd / 2), 256), 256)(q_, T, H, hd, pos_, c_.rope_theta);
            MR_LAUNCH(k_rope, blocks((size_t)T * HK * (hd / 2), 256), 256)(kk_, T, HK, hd, pos_, c_.rope_theta);
            MR_LAUNCH(k_kv_store<W>, T, 256)(kc_, vc_, kk_, vv_, sidx_, pos_, T, kvd, L, l, maxlen_);
            for (int t = 0; t < T; t++) {
                a_.kv_written += 2ull * kvd * sizeof(W);
                a_.flops_att += 4ull * H * hd * (uint64_t)(pos[t] + 1);
            }
            for (int i = 0; i < nseq; i++) a_.kv_read += 2ull * (uint64_t)(len[i] + counts[i]) * kvd * sizeof(W);
            MR_LAUNCH(k_attention<W>, T * H, 128)(att_, q_, kc_, vc_, sidx_, pos_, T, H, HK, hd, L, l, maxlen_, scores_, maxctx_);
            gemm(att_, T, w.o, d, qd, tmp_, W_DENSE);
            MR_LAUNCH(k_add, blocks((size_t)T * d, 256), 256)(x_, tmp_, (size_t)T * d);
            rmsnorm(xn_, x_, nullptr, T, w.ffn_norm);
            if (w.dense) ffn_dense(w, T);
            else ffn_moe(w, l, T, layer_cnt);
            MR_LAUNCH(k_add, blocks((size_t)T * d, 256), 256)(x_, moe_, (size_t)T * d);
            ck(cudaGetLastError(), "layer kernels");
        }
        std::vector<int> rows(nseq);
        for (int i = 0, t = 0; i < nseq; i++) { t += counts[i]; rows[i] = t - 1; }
        ck(cudaMemcpy(last_rows_, rows.data(), nseq * sizeof(int), cudaMemcpyHostToDevice), "upload rows");
        rmsnorm(xn_, x_, last_rows_, nseq, final_norm_);
        gemm(xn_, nseq, lm_head_, V, d, logits_, W_DENSE);
        ck(cudaMemcpy(logits.data(), logits_, logits.size() * sizeof(float), cudaMemcpyDeviceToHost), "copy logits");
        std::vector<int> next(nseq);
        for (int i = 0; i < nseq; i++) {
            const float *lg = &logits[(size_t)i * V];
            int best = 0;
            for (int v = 1; v < V; v++) if (lg[v] > lg[best]) best = v;
            next[i] = best;
            len[i] += counts[i];
            last[i] = best;
            out_ids[i][step] = best;
        }
        uint64_t t1 = mr_now_ns();
        if (off_) mr_offload_step_end(off_);
        if (gt) {
            fprintf(gt, "{\"step\": %d, \"kind\": \"%s\", \"sequences\": %d, \"tokens\": %d, \"seq_tokens\": [",
                    step, kind, nseq, T);
            for (int i = 0; i < nseq; i++) fprintf(gt, "%s%d", i ? ", " : "", counts[i]);
            fprintf(gt, "], \"context\": [");
            for (int i = 0; i < nseq; i++) fprintf(gt, "%s%d", i ? ", " : "", len[i]);
            fprintf(gt, "], \"t_begin_ns\": %llu, \"t_end_ns\": %llu, \"wall_ns\": %llu, \"layers\": [",
                    (unsigned long long)t0, (unsigned long long)t1, (unsigned long long)(t1 - t0));
            for (int l = 0; l < L; l++) {
                if (lw_[l].dense) { fprintf(gt, "%s{\"layer\": %d, \"dense\": true}", l ? ", " : "", l); continue; }
                const int *cnt = layer_cnt.data() + (size_t)l * E;
                fprintf(gt, "%s{\"layer\": %d, \"experts\": [", l ? ", " : "", l);
                int first = 1;
                for (int x = 0; x < E; x++) if (cnt[x]) { fprintf(gt, "%s%d", first ? "" : ", ", x); first = 0; }
                fprintf(gt, "], \"tokens_per_expert\": [");
                first = 1;
                for (int x = 0; x < E; x++) if (cnt[x]) { fprintf(gt, "%s%d", first ? "" : ", ", cnt[x]); first = 0; }
                fputc(']', gt);
                if (off_) mr_offload_gt_layer(off_, gt, l);
                fputc('}', gt);
            }
            uint64_t btot = a_.bytes[0] + a_.bytes[1] + a_.bytes[2] + a_.kv_read + a_.kv_written;
            fprintf(gt, "], \"bytes\": {\"dense_weights\": %llu, \"routed_expert_weights\": %llu, "
                    "\"shared_expert_weights\": %llu, \"kv_read\": %llu, \"kv_written\": %llu, \"total\": %llu}, "
                    "\"flops\": {\"gemm\": %llu, \"attention\": %llu, \"total\": %llu}, \"gemm_calls\": %llu, "
                    "\"device\": \"cuda\", \"moe\": \"%s\", \"dtype\": \"%s\", \"sampled\": [",
                    (unsigned long long)a_.bytes[0], (unsigned long long)a_.bytes[1], (unsigned long long)a_.bytes[2],
                    (unsigned long long)a_.kv_read, (unsigned long long)a_.kv_written, (unsigned long long)btot,
                    (unsigned long long)a_.flops_gemm, (unsigned long long)a_.flops_att,
                    (unsigned long long)(a_.flops_gemm + a_.flops_att), (unsigned long long)a_.calls,
                    fused_ ? "fused" : "loop", sizeof(W) == 4 ? "f32" : "bf16");
            for (int i = 0; i < nseq; i++) fprintf(gt, "%s%d", i ? ", " : "", next[i]);
            fputc(']', gt);
            if (off_) mr_offload_gt_step(off_, gt);
            fprintf(gt, "}\n");
            fflush(gt);
        }
        if (off_) mr_offload_swap_start(off_);   /* swapmoe: the next step's set, in the background */
        if (lf) {
            fprintf(lf, "{\"step\": %d, \"seqs\": [", step);
            for (int i = 0; i < nseq; i++) fprintf(lf, "%s%d", i ? ", " : "", i);
            fprintf(lf, "], \"logits\": [");
            for (int i = 0; i < nseq; i++) {
                fprintf(lf, "%s[", i ? ", " : "");
                for (int v = 0; v < V; v++) fprintf(lf, "%s%.9g", v ? ", " : "", logits[(size_t)i * V + v]);
                fprintf(lf, "]");
            }
            fprintf(lf, "]}\n");
        }
    }
}

} // namespace

/* The loop style's host routing, exported for unit tests (no GPU needed). */
extern "C" void mr_cuda_route_token(const struct mr_config *c, const float *logit, int *sel, float *w)
{
    mr_route_token(c, logit, sel, w);
}

extern "C" int mr_cuda_run(struct mr_model *m, int nseq, int32_t *const *prompts, const int *plen, int gen,
                           const struct mr_cuda_opts *opts, FILE *gt, FILE *logits_out, int32_t **out_ids,
                           char *err, size_t errlen)
{
    try {
        if (!m || nseq <= 0 || gen <= 0 || !opts) throw cuda_failure("bad arguments");
        int ndev = 0;
        cudaError_t de = cudaGetDeviceCount(&ndev);
        if (de != cudaSuccess || ndev <= 0) {
            snprintf(err, errlen, "CUDA engine: no usable CUDA device (%s)",
                     de != cudaSuccess ? cudaGetErrorString(de) : "none found");
            return -2;
        }
        if (opts->bf16) {
            engine<__nv_bfloat16> e(m, opts);
            e.run(nseq, prompts, plen, gen, gt, logits_out, out_ids);
        } else {
            engine<float> e(m, opts);
            e.run(nseq, prompts, plen, gen, gt, logits_out, out_ids);
        }
        return 0;
    } catch (const std::exception &ex) {
        snprintf(err, errlen, "CUDA engine: %s", ex.what());
        return -1;
    }
}
