/* moecap trace format (.mct): the on-disk contract between the shim (writer) and the
 * post-processor / `moecap dump` (readers). Documented in docs/trace-format.md.
 *
 * File  = mc_file_header, then records back to back until end of file. Since 1.2 the shim
 *         writes a plain stream (appended with write) plus, per recording thread, a
 *         MC_REC_RING: the thread's record ring, kept in the file and written through a
 *         shared mapping, so a process killed at any instant leaves every record it
 *         committed in the file; the reader returns the ring records the stream lacks
 *         after the stream's end (struct mc_rec_ring). 1.1 files (MC_FILE_SEGMENTED) were
 *         written in place in segments of mc_file_segment_bytes() bytes that one writer
 *         filled: there a record header whose size is 0 is space not (yet) written, and
 *         the reader goes on at the next segment boundary.
 * Record = mc_rec_header (type, size) + payload; `size` counts header + payload and is a
 *          multiple of 8, so a reader can skip record types it does not know and stop
 *          cleanly at a truncated last record (process killed mid-write).
 * All integers little-endian; all times are CLOCK_MONOTONIC nanoseconds of the writing
 * process (MC_REC_PROCESS carries a monotonic/realtime pair for merging processes).
 * Strings are interned: MC_REC_STRING defines id -> text once; other records refer to ids
 * (0 = no string).
 *
 * Records with a variable part (MC_VAR_PART in MC_RECORD_LIST) never grow their fixed
 * struct within a major version: the variable part starts right after it.
 * Compatibility rule: records only grow at the end (readers take min(size, sizeof) and
 * zero the rest); new record types get new numbers; MC_TRACE_VERSION_MAJOR changes only
 * for incompatible layouts.
 */
#ifndef MOECAP_TRACE_FORMAT_H
#define MOECAP_TRACE_FORMAT_H

#include <stdint.h>

#define MC_TRACE_MAGIC "MOECAPT\0" /* 8 bytes incl. the trailing NUL */
#define MC_TRACE_VERSION_MAJOR 1
#define MC_TRACE_VERSION_MINOR 2

struct mc_file_header {
    char magic[8];          /* MC_TRACE_MAGIC */
    uint16_t version_major;
    uint16_t version_minor;
    uint32_t header_size;   /* sizeof(struct mc_file_header) as written */
    uint64_t flags;         /* MC_FILE_SEGMENTED | segment size as log2 << 8 (1.1), or
                               MC_FILE_RINGS (1.2); 0 = plain */
};

#define MC_FILE_SEGMENTED 1u
/* 1.2: a plain record stream that may hold MC_REC_RING records; the reader returns their
 * records not yet copied to the stream (a killed process's) after the stream's end. */
#define MC_FILE_RINGS 2u
/* Segment size of a segmented file (0 for a plain one). */
static inline uint64_t mc_file_segment_bytes(uint64_t flags)
{
    unsigned shift = (unsigned)(flags >> 8) & 0xffu;
    return (flags & MC_FILE_SEGMENTED) && shift >= 12 && shift <= 30 ? (uint64_t)1 << shift : 0;
}

/* The file header a writer of this version writes (flags: MC_FILE_*). */
static inline struct mc_file_header mc_file_header_make(uint64_t flags)
{
    struct mc_file_header fh = {{0}, MC_TRACE_VERSION_MAJOR, MC_TRACE_VERSION_MINOR,
                                (uint32_t)sizeof(struct mc_file_header), flags};
    for (int i = 0; i < 8; i++) fh.magic[i] = MC_TRACE_MAGIC[i];
    return fh;
}

/* mc_rec_header.flags bit: the record's times are TSC ticks, converted by the reader with
 * the file's MC_REC_CLOCK (only MC_REC_GEMM_CPU uses it). */
#define MC_RECF_TICKS 0x8000u

struct mc_rec_header {
    uint16_t type;          /* enum mc_rec_type */
    uint16_t flags;         /* reserved, 0 */
    uint32_t size;          /* header + payload, multiple of 8 */
};

/* Every record type, once. Columns: enum suffix (MC_REC_<NAME>), number on disk, struct
 * tag, name (the reader union's member, `moecap dump`'s "type" and --summary key), and
 * whether a variable part follows the fixed struct (MC_VAR_*). The enum below, the reader's
 * fixed sizes, names, record union and `moecap dump`'s dispatch are all generated from it.
 * Adding a record type: a line here + its struct below + a dump_<name> in
 * postproc/trace/cmd_dump.c (docs/architecture.md, "Add a record type"). */
#define MC_VAR_NONE 0   /* fixed struct only (it may still grow at the end) */
#define MC_VAR_PART 1   /* a variable part follows the fixed struct */
#define MC_RECORD_LIST(X) \
    /* filler (no payload meaning); readers skip it silently */ \
    X(PAD,        0,  mc_rec_header,     pad,        MC_VAR_NONE) \
    /* mc_rec_process + argv strings (NUL-separated) */ \
    X(PROCESS,    1,  mc_rec_process,    process,    MC_VAR_PART) \
    /* mc_rec_string + text (NUL-terminated, padded) */ \
    X(STRING,     2,  mc_rec_string,     string,     MC_VAR_PART) \
    X(THREAD,     3,  mc_rec_thread,     thread,     MC_VAR_NONE) \
    /* CPU BLAS, cuBLAS, cuBLASLt GEMM and GEMV */ \
    X(GEMM,       4,  mc_rec_gemm,       gemm,       MC_VAR_NONE) \
    /* GPU kernel (CUPTI activity or launch API) */ \
    X(KERNEL,     5,  mc_rec_kernel,     kernel,     MC_VAR_NONE) \
    /* copies and memsets */ \
    X(MEMCPY,     6,  mc_rec_memcpy,     memcpy,     MC_VAR_NONE) \
    /* device/host allocations and frees */ \
    X(ALLOC,      7,  mc_rec_alloc,      alloc,      MC_VAR_NONE) \
    /* weight-file bytes -> address range */ \
    X(FILE_MAP,   8,  mc_rec_file_map,   file_map,   MC_VAR_NONE) \
    /* one entry of a weight file's tensor table */ \
    X(TENSOR,     9,  mc_rec_tensor,     tensor,     MC_VAR_NONE) \
    /* forward-step boundaries from adapters */ \
    X(STEP_MARK,  10, mc_rec_step_mark,  step_mark,  MC_VAR_NONE) \
    /* PAPI / RAPL / NVML / proc samples */ \
    X(COUNTER,    11, mc_rec_counter,    counter,    MC_VAR_NONE) \
    /* events lost and why */ \
    X(DROPPED,    12, mc_rec_dropped,    dropped,    MC_VAR_NONE) \
    /* mc_rec_callsite + pcs[depth] */ \
    X(CALLSITE,   13, mc_rec_callsite,   callsite,   MC_VAR_PART) \
    /* one executable mapping of /proc/self/maps */ \
    X(MAPPING,    14, mc_rec_mapping,    mapping,    MC_VAR_NONE) \
    /* other intercepted API calls (sync, launch, ...) */ \
    X(API,        15, mc_rec_api,        api,        MC_VAR_NONE) \
    /* mc_rec_router_tap + logits payload (GPU router-logit tap) */ \
    X(ROUTER_TAP, 16, mc_rec_router_tap, router_tap, MC_VAR_PART) \
    /* a diagnostic the shim wants in the report */ \
    X(NOTE,       17, mc_rec_note,       note,       MC_VAR_NONE) \
    /* compact CPU BLAS GEMM/GEMV; the reader library returns it as a MC_REC_GEMM */ \
    X(GEMM_CPU,   18, mc_rec_gemm_cpu,   gemm_cpu,   MC_VAR_NONE) \
    /* TSC calibration of MC_RECF_TICKS records (after PROCESS, updated in place) */ \
    X(CLOCK,      19, mc_rec_clock,      clock,      MC_VAR_NONE) \
    /* mc_rec_ring + ring bytes: a thread's record ring, kept in the file (1.2) */ \
    X(RING,       20, mc_rec_ring,       ring,       MC_VAR_PART) \
    /* the records that follow are bytes [pos, pos + len) of a ring (1.2) */ \
    X(RING_COPY,  21, mc_rec_ring_copy,  ring_copy,  MC_VAR_NONE) \
    /* mc_rec_topk_tap + counts (kernel-parameter taps, cupti/) */ \
    X(TOPK_TAP,   40, mc_rec_topk_tap,   topk_tap,   MC_VAR_PART) \
    /* mc_rec_llama_batch + mc_llama_seq[]: one llama_decode call (llama.cpp adapter) */ \
    X(LLAMA_BATCH, 41, mc_rec_llama_batch, llama_batch, MC_VAR_PART) \
    /* mc_rec_ggml_route + counts: one MoE layer's routing in a computed ggml graph */ \
    X(GGML_ROUTE, 42, mc_rec_ggml_route, ggml_route, MC_VAR_PART) \
    /* one weight matrix product (MUL_MAT / MUL_MAT_ID) of a computed ggml graph */ \
    X(GGML_MATMUL, 43, mc_rec_ggml_matmul, ggml_matmul, MC_VAR_NONE)

enum mc_rec_type {
#define MC_REC_ENUM_(NAME, num, tag, name, var) MC_REC_##NAME = num,
    MC_RECORD_LIST(MC_REC_ENUM_)
#undef MC_REC_ENUM_
    MC_REC_TYPE_MAX /* one past the highest number in the list */
};

struct mc_rec_process {
    struct mc_rec_header h;
    int32_t pid, ppid;
    uint64_t monotonic_ns;  /* taken back to back with realtime_ns */
    uint64_t realtime_ns;
    uint32_t host_str, exe_str;
    uint32_t argc;
    uint32_t argv_bytes;    /* bytes of NUL-separated argv that follow this struct */
};

struct mc_rec_string {
    struct mc_rec_header h;
    uint32_t id;
    uint32_t len;           /* bytes of text, excluding the NUL */
    /* char text[len + 1], then zero padding to a multiple of 8 */
};

struct mc_rec_thread {
    struct mc_rec_header h;
    int32_t tid;
    uint32_t name_str;
    uint64_t start_ns;
};

/* Every intercepted API, once. Columns: enum suffix (MC_API_<NAME>), number on disk, the
 * API's own spelling (`moecap dump`, report), and its class (MC_APICLASS_*: what the
 * post-processor and the shim do with its records). mc_api_name and the class tests in
 * moecap/trace_facts.h are generated from it. */
enum mc_api_class {
    MC_APICLASS_NONE = 0,
    MC_APICLASS_GEMM,      /* a GEMM (CPU BLAS, cuBLAS, cuBLASLt): MC_REC_GEMM */
    MC_APICLASS_GEMV,      /* a CPU BLAS GEMV, recorded as a one-column MC_REC_GEMM */
    MC_APICLASS_LAUNCH,    /* a kernel or graph launch: opens GPU work of a step */
    MC_APICLASS_SYNC,      /* the host waits for the device: can close a GPU step */
    MC_APICLASS_CUPTI,     /* CUPTI's own activity records (arrive late, after the kernels ran) */
};
#define MC_API_LIST(X) \
    X(UNKNOWN,                        0,  "unknown",                    MC_APICLASS_NONE) \
    /* CPU BLAS */ \
    X(SGEMM_F77,                      1,  "sgemm_",                     MC_APICLASS_GEMM) \
    X(DGEMM_F77,                      2,  "dgemm_",                     MC_APICLASS_GEMM) \
    X(CBLAS_SGEMM,                    3,  "cblas_sgemm",                MC_APICLASS_GEMM) \
    X(CBLAS_DGEMM,                    4,  "cblas_dgemm",                MC_APICLASS_GEMM) \
    X(SGEMV_F77,                      5,  "sgemv_",                     MC_APICLASS_GEMV) \
    X(DGEMV_F77,                      6,  "dgemv_",                     MC_APICLASS_GEMV) \
    X(CBLAS_SGEMV,                    7,  "cblas_sgemv",                MC_APICLASS_GEMV) \
    X(CBLAS_DGEMV,                    8,  "cblas_dgemv",                MC_APICLASS_GEMV) \
    X(SBGEMM_F77,                     9,  "sbgemm_",                    MC_APICLASS_GEMM) \
    X(CBLAS_SBGEMM,                   10, "cblas_sbgemm",               MC_APICLASS_GEMM) \
    /* cuBLAS / cuBLASLt */ \
    X(CUBLAS_SGEMM,                   32, "cublasSgemm",                MC_APICLASS_GEMM) \
    X(CUBLAS_GEMM_EX,                 33, "cublasGemmEx",               MC_APICLASS_GEMM) \
    X(CUBLAS_GEMM_STRIDED_BATCHED_EX, 34, "cublasGemmStridedBatchedEx", MC_APICLASS_GEMM) \
    X(CUBLAS_GEMM_BATCHED_EX,         35, "cublasGemmBatchedEx",        MC_APICLASS_GEMM) \
    X(CUBLAS_SGEMM_STRIDED_BATCHED,   36, "cublasSgemmStridedBatched",  MC_APICLASS_GEMM) \
    X(CUBLASLT_MATMUL,                37, "cublasLtMatmul",             MC_APICLASS_GEMM) \
    X(CUBLAS_HGEMM,                   38, "cublasHgemm",                MC_APICLASS_GEMM) \
    /* CUDA runtime / driver (MC_REC_API) */ \
    X(CUDA_LAUNCH_KERNEL,             64, "cudaLaunchKernel",           MC_APICLASS_LAUNCH) \
    X(CUDA_GRAPH_LAUNCH,              65, "cudaGraphLaunch",            MC_APICLASS_LAUNCH) \
    X(CUDA_STREAM_SYNC,               66, "cudaStreamSynchronize",      MC_APICLASS_SYNC) \
    X(CUDA_EVENT_SYNC,                67, "cudaEventSynchronize",       MC_APICLASS_SYNC) \
    X(CUDA_DEVICE_SYNC,               68, "cudaDeviceSynchronize",      MC_APICLASS_SYNC) \
    X(CU_LAUNCH_KERNEL,               69, "cuLaunchKernel",             MC_APICLASS_LAUNCH) \
    X(CUDA_LAUNCH_KERNEL_EXC,         70, "cudaLaunchKernelExC",        MC_APICLASS_LAUNCH) \
    /* the CUDA 13 <<<>>> launch path */ \
    X(CUDA_LAUNCH_KERNEL_INTERNAL,    71, "__cudaLaunchKernel",         MC_APICLASS_LAUNCH) \
    X(CU_LAUNCH_KERNEL_EX,            72, "cuLaunchKernelEx",           MC_APICLASS_LAUNCH) \
    X(CU_GRAPH_LAUNCH,                73, "cuGraphLaunch",              MC_APICLASS_LAUNCH) \
    X(CU_STREAM_SYNC,                 74, "cuStreamSynchronize",        MC_APICLASS_SYNC) \
    X(CU_EVENT_SYNC,                  75, "cuEventSynchronize",         MC_APICLASS_SYNC) \
    X(CU_CTX_SYNC,                    76, "cuCtxSynchronize",           MC_APICLASS_SYNC) \
    /* CUPTI activity: runtime / driver API (name_str = function), graph launch (arg0 = graph id) */ \
    X(CUPTI_RUNTIME,                  96, "cupti.runtime",              MC_APICLASS_CUPTI) \
    X(CUPTI_DRIVER,                   97, "cupti.driver",               MC_APICLASS_CUPTI) \
    X(CUPTI_GRAPH,                    98, "cupti.graph",                MC_APICLASS_CUPTI)

enum mc_api {
#define MC_API_ENUM_(NAME, num, spelling, cls) MC_API_##NAME = num,
    MC_API_LIST(MC_API_ENUM_)
#undef MC_API_ENUM_
    MC_API_MAX = 255   /* api fields are uint16_t on disk; numbers stay below this */
};

/* Every element type, once. Columns: enum suffix (MC_DT_<NAME>), number on disk, bytes per
 * element (0 = unknown), short name (`moecap dump`), safetensors header spelling, GGML type
 * number in GGUF files (-1 = none), and the key of the hardware profiles' peak-FLOPS table
 * (NULL = none). Lookups in moecap/trace_facts.h are generated from it. */
#define MC_DTYPE_LIST(X) \
    X(UNKNOWN, 0,  0, "unknown", NULL,      -1, NULL) \
    X(F32,     1,  4, "f32",     "F32",     0,  "f32") \
    X(F64,     2,  8, "f64",     "F64",     28, "f64") \
    X(F16,     3,  2, "f16",     "F16",     1,  "f16") \
    X(BF16,    4,  2, "bf16",    "BF16",    30, "bf16") \
    X(F8E4M3,  5,  1, "f8e4m3",  "F8_E4M3", -1, "fp8") \
    X(F8E5M2,  6,  1, "f8e5m2",  "F8_E5M2", -1, "fp8") \
    X(I8,      7,  1, "i8",      "I8",      24, "int8") \
    X(I32,     8,  4, "i32",     "I32",     26, NULL) \
    X(I64,     9,  8, "i64",     "I64",     27, NULL) \
    X(U8,      10, 1, "u8",      "U8",      -1, NULL) \
    X(BOOL,    11, 1, "bool",    "BOOL",    -1, NULL) \
    X(I16,     12, 2, "i16",     "I16",     25, NULL) \
    X(U16,     13, 2, "u16",     "U16",     -1, NULL) \
    X(U32,     14, 4, "u32",     "U32",     -1, NULL) \
    X(U64,     15, 8, "u64",     "U64",     -1, NULL)

enum mc_dtype {
#define MC_DT_ENUM_(NAME, num, bytes, name, st, ggml, peak) MC_DT_##NAME = num,
    MC_DTYPE_LIST(MC_DT_ENUM_)
#undef MC_DT_ENUM_
    MC_DT_MAX
};

enum mc_layout { MC_LAYOUT_COL_MAJOR = 0, MC_LAYOUT_ROW_MAJOR = 1 };
enum mc_trans  { MC_OP_N = 0, MC_OP_T = 1, MC_OP_C = 2 };

/* One GEMM (or GEMV) call as the caller expressed it: m n k, trans flags and leading
 * dimensions are exactly the arguments (for GEMV: m = rows, n = 1, k = cols of A as
 * stored, trans_a = the call's trans, b = x, c = y, ldb = incx, ldc = incy).
 * The post-processor normalises to
 * "tokens x out_features x in_features" using layout + trans. */
struct mc_rec_gemm {
    struct mc_rec_header h;
    uint64_t t_begin_ns, t_end_ns;  /* host time around the call (async for GPU) */
    int64_t m, n, k;
    int64_t lda, ldb, ldc;
    int64_t batch;                  /* 1 unless batched */
    int64_t stride_a, stride_b, stride_c; /* elements, batched only */
    uint64_t a, b, c;               /* operand addresses (host or device) */
    uint64_t stream;                /* 0 for CPU */
    double alpha, beta;             /* as double; 0 when not readable (device pointers) */
    int32_t tid;
    int32_t device;                 /* -1 = CPU */
    uint32_t callsite;              /* MC_REC_CALLSITE id, 0 = none */
    uint16_t api;                   /* enum mc_api */
    uint8_t dtype_a, dtype_b, dtype_c, dtype_compute; /* enum mc_dtype */
    uint8_t layout;                 /* enum mc_layout */
    uint8_t trans_a, trans_b;       /* enum mc_trans */
    uint8_t pad[3];
};

/* Compact form of mc_rec_gemm for CPU BLAS calls (112 instead of 176 bytes: at millions
 * of tiny GEMMs per second the bytes written are most of the shim's cost). Same meaning
 * as the mc_rec_gemm fields of the same names; implied: batch 1, strides 0, stream 0,
 * device -1. The reader library (postproc/trace) hands it out as MC_REC_GEMM. */
struct mc_rec_gemm_cpu {
    struct mc_rec_header h;
    uint64_t t_begin_ns, t_end_ns;
    uint64_t a, b, c;
    int32_t m, n, k;                /* BLAS int arguments (LP64 BLAS: 32-bit) */
    int32_t lda, ldb, ldc;
    double alpha, beta;
    int32_t tid;
    uint32_t callsite;
    uint16_t api;                   /* enum mc_api */
    uint8_t dtype_a, dtype_b, dtype_c, dtype_compute;
    uint8_t layout, trans_a, trans_b;
    uint8_t pad[7];
};

struct mc_rec_kernel {
    struct mc_rec_header h;
    uint64_t start_ns, end_ns;      /* device time converted to host monotonic ns */
    uint64_t stream;
    uint64_t correlation_id;
    uint64_t graph_id;              /* 0 when not in a graph */
    uint32_t name_str;
    int32_t device;
    uint32_t grid[3], block[3];
    uint32_t shared_mem;
    uint32_t source;                /* 0 = CUPTI activity, 1 = launch interposition */
};

enum mc_copy_kind {
    MC_COPY_UNKNOWN = 0, MC_COPY_H2D, MC_COPY_D2H, MC_COPY_D2D, MC_COPY_H2H, MC_COPY_P2P,
    MC_MEMSET = 16
};

struct mc_rec_memcpy {
    struct mc_rec_header h;
    uint64_t start_ns, end_ns;
    uint64_t bytes;
    uint64_t src, dst;              /* dst only for memset */
    uint64_t stream;
    uint64_t correlation_id;
    int32_t device;
    uint16_t kind;                  /* enum mc_copy_kind */
    uint8_t async;
    uint8_t source;                 /* 0 = CUPTI activity, 1 = API interposition */
};

struct mc_rec_alloc {
    struct mc_rec_header h;
    uint64_t t_ns;
    uint64_t ptr;
    uint64_t bytes;                 /* 0 for a free */
    int32_t device;                 /* -1 = host */
    uint16_t is_free;
    uint16_t api;                   /* implementation-defined, for dump only */
};

/* `length` bytes of file `path_str` starting at `file_offset` became visible at
 * address `addr` (mmap of the file, read/pread into a buffer, or a host->device copy of
 * such a buffer: device >= 0). */
struct mc_rec_file_map {
    struct mc_rec_header h;
    uint64_t t_ns;
    uint64_t addr;
    uint64_t file_offset;
    uint64_t length;
    uint32_t path_str;
    int32_t device;                 /* -1 = host memory */
    uint32_t how;                   /* 0 = mmap, 1 = read, 2 = pread, 3 = device copy */
    uint32_t pad;
};

/* One tensor of a weight file: data occupies [file_begin, file_end) of the file. */
struct mc_rec_tensor {
    struct mc_rec_header h;
    uint64_t file_begin, file_end;  /* absolute file offsets */
    int64_t shape[8];
    uint32_t path_str, name_str;
    uint32_t ndim;
    uint16_t dtype;                 /* enum mc_dtype */
    uint16_t pad;
};

enum mc_step_mark_kind { MC_STEP_MARK_BEGIN = 1, MC_STEP_MARK_END = 2 };

struct mc_rec_step_mark {
    struct mc_rec_header h;
    uint64_t t_ns;
    uint64_t step_id;
    int64_t tokens, sequences;      /* -1 = unknown */
    uint32_t adapter_str;           /* e.g. "llama_decode" */
    uint16_t kind;                  /* enum mc_step_mark_kind */
    uint16_t pad;
};

enum mc_counter_source { MC_CTR_PAPI = 1, MC_CTR_RAPL = 2, MC_CTR_NVML = 3, MC_CTR_PROC = 4 };

struct mc_rec_counter {
    struct mc_rec_header h;
    uint64_t t_ns;
    double value;                   /* in `unit_str` units (e.g. "uJ", "mJ", "count") */
    uint32_t name_str, unit_str;
    int32_t tid;                    /* -1 = process or device wide */
    int32_t device;                 /* -1 = CPU */
    uint16_t source;                /* enum mc_counter_source */
    uint16_t cumulative;            /* 1 = monotonically increasing total */
    uint32_t pad;
};

struct mc_rec_dropped {
    struct mc_rec_header h;
    uint64_t t_ns;
    uint64_t count;                 /* events lost since the previous dropped record */
    uint32_t reason_str;
    uint32_t pad;
};

struct mc_rec_callsite {
    struct mc_rec_header h;
    uint32_t id;
    uint32_t depth;
    /* uint64_t pcs[depth]: return addresses, innermost first */
};

struct mc_rec_mapping {
    struct mc_rec_header h;
    uint64_t start, end, file_offset;
    uint32_t path_str;
    uint32_t prot;                  /* PROT_* bits */
};

struct mc_rec_api {
    struct mc_rec_header h;
    uint64_t t_begin_ns, t_end_ns;
    uint64_t arg0, arg1;            /* api-specific (stream, function pointer, ...) */
    uint64_t correlation_id;
    int32_t tid;
    int32_t device;
    uint32_t name_str;              /* e.g. kernel symbol name when known */
    uint16_t api;                   /* enum mc_api */
    uint16_t result;                /* low 16 bits of the call's return code */
};

struct mc_rec_router_tap {
    struct mc_rec_header h;
    uint64_t t_ns;
    uint64_t gemm_seq;              /* index of the router GEMM among this thread's GEMMs */
    int64_t tokens, experts;
    int32_t tid;
    uint16_t dtype;                 /* enum mc_dtype of the logits that follow */
    uint16_t layout;                /* enum mc_layout of tokens x experts */
    /* logits[tokens * experts], padded to 8 */
};

enum mc_note_level { MC_NOTE_INFO = 0, MC_NOTE_WARNING = 1, MC_NOTE_ERROR = 2 };

struct mc_rec_note {
    struct mc_rec_header h;
    uint64_t t_ns;
    uint32_t text_str;
    uint32_t level;                 /* enum mc_note_level */
};

/* One tapped launch of a top-k routing kernel (tap descriptions in data/taps/, parser cupti/taps.c): `rows`
 * tokens chose `k` experts each; counts[e] = (token, slot) pairs routed to local expert e
 * (0 <= e < experts); `invalid` = ids outside [0, experts) (experts handled elsewhere under
 * expert parallelism, or padding). */
struct mc_rec_topk_tap {
    struct mc_rec_header h;
    uint64_t t_ns;                  /* host time the ids arrived (after the kernel ran) */
    uint64_t correlation_id;        /* CUPTI correlation id of the launch */
    int64_t rows, k;
    int64_t experts;                /* length of counts[] */
    int64_t invalid;
    uint32_t kernel_str, tap_str;   /* kernel (mangled) name, tap name */
    int32_t device;
    uint32_t pad;
    /* uint32_t counts[experts], then padding to 8 */
};

/* ggml / llama.cpp adapter (shim/interpose_ggml.c). Records of one llama_decode call share its
 * step_id (ids count from 1 per process; 0 = a graph computed outside llama_decode). */
struct mc_rec_llama_batch {
    struct mc_rec_header h;
    uint64_t t_begin_ns, t_end_ns;  /* around the llama_decode call */
    uint64_t step_id;
    int64_t tokens;
    int32_t tid;
    int32_t result;                 /* llama_decode's return value (0 = ok) */
    uint32_t n_seq;                 /* mc_llama_seq entries that follow */
    uint32_t outputs;               /* tokens whose logits were requested */
};
struct mc_llama_seq {
    int32_t seq_id, tokens;         /* tokens of this sequence in the batch */
    int32_t pos_first, pos_last;    /* their positions; -1 = left to llama.cpp (no pos array) */
};

/* The experts one MoE layer chose in one computed graph (a ubatch): rows tokens x k slots;
 * counts[e] = (row, slot) pairs that chose expert e; ids outside [0, experts) are `invalid`. */
struct mc_rec_ggml_route {
    struct mc_rec_header h;
    uint64_t t_ns;                  /* after the ids were computed */
    uint64_t step_id;
    int32_t layer, tid;
    int32_t rows, k;
    int32_t experts, invalid;
    /* uint32_t counts[experts], then padding to 8 */
};

/* One MUL_MAT / MUL_MAT_ID node whose first operand is a model weight, as the graph ran it.
 * w_*: the weight (ggml ne[] innermost first, nb[] byte strides; MUL_MAT_ID: ne[2] experts);
 * x_ne: the activations; ids_rows: MUL_MAT_ID's routed rows (its ids tensor's ne[1]). */
enum mc_ggml_op { MC_GGML_MUL_MAT = 1, MC_GGML_MUL_MAT_ID = 2 };
struct mc_rec_ggml_matmul {
    struct mc_rec_header h;
    uint64_t t_ns;
    uint64_t step_id;
    int64_t w_ne[4];
    uint64_t w_nb[4];
    int64_t x_ne[4];
    int64_t ids_k, ids_rows;        /* MUL_MAT_ID: experts per row and rows; 0 for MUL_MAT */
    uint64_t w_addr;
    int32_t tid;
    uint16_t op;                    /* enum mc_ggml_op */
    uint16_t w_type;                /* ggml type number of the weight */
    uint32_t w_type_size, w_blck_size; /* bytes per block, elements per block of that type */
    char w_name[64];                /* the weight's tensor name (GGUF name), NUL-terminated */
};

/* TSC calibration: ticks t convert to ns0 + (t - tsc0) * (ns1 - ns0) / (tsc1 - tsc0), with
 * (tsc1, ns1) = pair[latest & 1]. The writer updates the other slot, then `latest`, so a
 * reader of a killed process's file sees a whole pair. */
struct mc_rec_clock {
    struct mc_rec_header h;
    uint64_t tsc0, ns0;             /* anchor, taken at start-up */
    struct { uint64_t tsc, ns; } pair[2];
    uint32_t latest;
    uint32_t pad;
};

/* A thread's record ring, kept in the trace file itself (1.2): the thread writes its records
 * into the ring bytes that follow this struct, through a shared mapping of the file, and
 * publishes each one by advancing `head` (a record is committed when head has passed it).
 * The shim copies committed records from the ring to the end of the file (a RING_COPY
 * record, then the bytes) and then advances `tail`. Positions are byte counts since the
 * ring was made; position p lives at ring byte p mod ring_bytes. After a SIGKILL the ring
 * still holds [max(tail, what the RING_COPY records cover), head): the reader returns those
 * records after the rest of the file. Records never wrap the ring's end (a PAD fills it). */
struct mc_rec_ring {
    struct mc_rec_header h;         /* size = sizeof(struct mc_rec_ring) + ring_bytes */
    uint32_t ring_id;               /* unique in the file, from 1 */
    uint32_t ring_bytes;            /* power of two, >= 4096 */
    uint64_t reserved0[6];
    uint64_t head;                  /* bytes committed (written by the recording thread) */
    uint64_t reserved1[7];          /* head and tail on cache lines of their own */
    uint64_t tail;                  /* bytes copied to the end of the file */
    uint64_t reserved2[15];
};

/* The next `len` bytes of records are bytes [pos, pos + len) of ring `ring_id` (1.2). */
struct mc_rec_ring_copy {
    struct mc_rec_header h;
    uint32_t ring_id;
    uint32_t reserved;
    uint64_t pos;
    uint64_t len;
};

#define MC_REC_ALIGN 8u
static inline uint32_t mc_rec_padded(uint32_t bytes) { return (bytes + 7u) & ~7u; }

#endif /* MOECAP_TRACE_FORMAT_H */
