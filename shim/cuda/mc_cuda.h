/* Internal helpers shared by the CUDA-side interposers of libmoecap.so (files in shim/cuda/):
 * type mappings (cudaDataType / cublasComputeType -> mc_dtype), the per-thread nesting
 * depth that keeps a runtime call and the driver call it makes from being recorded twice,
 * first-use activation of CUPTI and NVML, kernel-name caching and weight-file lookups.
 *
 * Nothing here links against a CUDA library: real entry points are found at run time with
 * mc_resolve_next(), so libmoecap.so loads in programs that never touch CUDA. */
#ifndef MOECAP_SHIM_CUDA_H
#define MOECAP_SHIM_CUDA_H

#include <stdint.h>
#include "moecap/trace_facts.h"
#include "shim_core.h"

/* CUDA API ids (MC_API_CUDA_*, MC_API_CU_*, MC_API_CUPTI_*) live in trace_format.h. */

/* MC_REC_ALLOC.api values written by the CUDA interposers (dump only). */
enum mc_cuda_alloc_api {
    MC_ALLOC_CUDA_MALLOC = 1, MC_ALLOC_CUDA_MALLOC_ASYNC, MC_ALLOC_CUDA_MALLOC_HOST,
    MC_ALLOC_CUDA_HOST_ALLOC, MC_ALLOC_CUDA_MALLOC_MANAGED, MC_ALLOC_CU_MEM_ALLOC,
    MC_ALLOC_CU_MEM_ALLOC_ASYNC, MC_ALLOC_CU_MEM_HOST_ALLOC
};

/* cudaDataType_t value -> enum mc_dtype (MC_DT_UNKNOWN for complex and exotic types). */
int mc_cuda_dtype(int cuda_data_type);
/* cublasComputeType_t value -> enum mc_dtype of the accumulation. */
int mc_cublas_compute_dtype(int compute_type);
/* cublasOperation_t -> enum mc_trans. */
int mc_cublas_op(int op);
/* Element size in bytes of an enum mc_dtype (0 = unknown). */
/* A host scalar of type `mc_dtype` as a double (0 for NULL or unknown types). */
double mc_read_host_scalar(const void *p, int mc_dtype);

/* Per-thread nesting depth of CUDA interposers: a wrapper records only at depth 0, so a
 * runtime launch that reaches the driver through one of our wrappers (returned by
 * cuGetProcAddress) is recorded once. */
int mc_cuda_enter(void);   /* returns the depth before entering */
void mc_cuda_leave(void);

/* Called by every runtime/driver wrapper: on the first call per process, starts the
 * CUPTI collector (unless MOECAP_CUPTI=0) and NVML sampling (unless MOECAP_NVML=0). */
void mc_cuda_first_use(void);
/* A real runtime/driver call made by a wrapper: the nesting depth before it (the wrapper
 * records only at depth 0) and its start and end times. */
struct mc_cuda_call {
    int depth;
    uint64_t t0, t1;
};
static inline void mc_cuda_call_begin(struct mc_cuda_call *c)
{
    mc_cuda_first_use();
    c->depth = mc_cuda_enter();
    c->t0 = mc_now_ns();
}
static inline int mc_cuda_call_end(struct mc_cuda_call *c, int result)
{
    c->t1 = mc_now_ns();
    mc_cuda_leave();
    return result;
}
/* Evaluates `real_call` (the real function applied to its arguments) between the two,
 * filling `c`; the value is the call's result as int. */
#define MC_CUDA_TIMED_CALL(c, real_call) (mc_cuda_call_begin(&(c)), mc_cuda_call_end(&(c), (int)(real_call)))
/* Start hooks of the CUDA side, run once (also from MOECAP_CUPTI=1 at shim start). */
void mc_cupti_load(void);
/* What the CUDA side of the shim offers the CUPTI collector (libmoecap-cupti.so): handed
 * to its one entry point, so the collector never looks the shim up by name. The collector
 * joins the core as a family of its own (flush, fork). mc_cuda_host is exported for a
 * collector that CUDA loaded itself (CUDA_INJECTION64_PATH). */
struct mc_cuda_host {
    uint64_t (*launch_count)(void);   /* kernel and graph launches seen by the interposers */
    void (*nvml_start)(void);
};
extern const struct mc_cuda_host mc_cuda_host;
/* The collector's entry point (0 = running). */
int mc_cupti_start(const struct mc_cuda_host *shim_cuda);
void mc_nvml_start(void);
void mc_nvml_sample(void);   /* one sample of every device (flush points) */
void mc_nvml_stop(void);

/* Current device of the calling thread per cudaGetDevice (-1 when unknown). */
int mc_cuda_current_device(void);

/* Interned kernel name for a function handle, cached; `lookup` fills *name (NULL when the
 * name cannot be read). Returns 0 when unknown. Lock-free on hits. */
typedef int (*mc_name_lookup_fn)(const void *handle, const char **name);
uint32_t mc_kernel_name_id(const void *handle, mc_name_lookup_fn lookup);

/* Offered by the shim core (shim/filemap.h; weak here, so these objects also link into
 * unit tests without it): the stretches of [addr, addr+len) that hold weight-file bytes,
 * each with its path id and file offset. */
#include "filemap.h"
#pragma weak mc_filemap_lookup
#pragma weak mc_filemap_unverifiable

/* Emit MC_REC_FILE_MAP (how = 3, device copy) when a host->device copy's source lies in
 * a recorded weight-file range. */
void mc_cuda_note_h2d(uint64_t host_src, uint64_t dev_dst, uint64_t bytes, int device);

/* Record helpers shared by cudart.c and cudrv.c (cudart.c). */
void mc_cuda_record_alloc(uint64_t ptr, uint64_t bytes, int device, int is_free, int api);
void mc_cuda_record_copy(uint64_t t0, uint64_t t1, int kind, uint64_t bytes, uint64_t src,
                         uint64_t dst, uint64_t stream, int async, int device);
void mc_cuda_record_api(uint16_t api, uint64_t t0, uint64_t t1, uint64_t arg0, uint64_t arg1,
                        uint32_t name, int result);
/* Kernel and graph launches recorded so far (exported for the CUPTI collector). */
uint64_t mc_cuda_launch_count(void);
/* cudaMemcpyKind -> enum mc_copy_kind (cudaMemcpyDefault classified by pointer attributes). */
int mc_cuda_copy_kind(int cuda_kind, const void *dst, const void *src);
/* cudrv.c: our wrapper for a driver entry point named `symbol` asked for at
 * `cuda_version`, remembering `pfn` as the function it forwards to; `pfn` itself when we
 * do not wrap that symbol (or already forward to a different function for it). */
void *mc_cuda_ep_substitute(const char *symbol, void *pfn, int cuda_version);

/* Router-logit tap (router_tap.c): called after every successful non-batched cuBLAS GEMM
 * with its shape, output and stream; taps it when (m, k) is a configured (experts, hidden).
 * t_begin_ns = the GEMM record's t_begin_ns (joins the two records). */
void mc_router_tap_after_gemm(int64_t m, int64_t n, int64_t k, int64_t ldc, const void *c,
                              int dtype_c, uint64_t stream, uint64_t t_begin_ns);
uint64_t mc_router_tap_dropped(void);
/* Pure parsers (tested): "E:d[,E:d]" -> pairs (count, -1 on error); config.json text ->
 * experts, hidden (0 on success). */
int mc_router_tap_parse_spec(const char *spec, int64_t *e, int64_t *d, int max);
int mc_router_tap_parse_config(const char *text, int64_t *experts, int64_t *hidden);

/* Shortcut: `type var` = the real `sym` (mc_real, shim_core.h), one resolution state per
 * call site. */
#define MC_REAL(type, var, sym) \
    static struct mc_real var##_real_ = MC_REAL_INIT(sym); \
    type var = (type)mc_real(&var##_real_)

#endif
