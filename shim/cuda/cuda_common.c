/* Shared pieces of the CUDA interposers: type mappings, nesting depth, first-use
 * activation of CUPTI/NVML, the kernel-name cache and weight-file H2D lookups.
 * Deliberately free of CUDA headers so it unit-tests without the toolkit's libraries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "shim_core.h"
#include "mc_cuda.h"

int mc_cuda_dtype(int t)
{
    /* cudaDataType_t numbers from library_types.h (stable ABI). */
    switch (t) {
    case 0:  return MC_DT_F32;     /* CUDA_R_32F */
    case 1:  return MC_DT_F64;     /* CUDA_R_64F */
    case 2:  return MC_DT_F16;     /* CUDA_R_16F */
    case 3:  return MC_DT_I8;      /* CUDA_R_8I */
    case 8:  return MC_DT_U8;      /* CUDA_R_8U */
    case 10: return MC_DT_I32;     /* CUDA_R_32I */
    case 12: return MC_DT_U32;     /* CUDA_R_32U */
    case 14: return MC_DT_BF16;    /* CUDA_R_16BF */
    case 20: return MC_DT_I16;     /* CUDA_R_16I */
    case 22: return MC_DT_U16;     /* CUDA_R_16U */
    case 24: return MC_DT_I64;     /* CUDA_R_64I */
    case 26: return MC_DT_U64;     /* CUDA_R_64U */
    case 28: return MC_DT_F8E4M3;  /* CUDA_R_8F_E4M3 */
    case 29: return MC_DT_F8E5M2;  /* CUDA_R_8F_E5M2 */
    default: return MC_DT_UNKNOWN;
    }
}

int mc_cublas_compute_dtype(int c)
{
    switch (c) {
    case 64: case 65: return MC_DT_F16;                       /* CUBLAS_COMPUTE_16F* */
    case 68: case 69: case 74: case 75: case 77: case 78:
        return MC_DT_F32;                                     /* CUBLAS_COMPUTE_32F* */
    case 70: case 71: case 79: return MC_DT_F64;              /* CUBLAS_COMPUTE_64F* */
    case 72: case 73: return MC_DT_I32;                       /* CUBLAS_COMPUTE_32I* */
    default:
        /* Legacy callers pass a cudaDataType_t as the compute type. */
        return c >= 0 && c < 64 ? mc_cuda_dtype(c) : MC_DT_UNKNOWN;
    }
}

int mc_cublas_op(int op)
{
    switch (op) {
    case 0: return MC_OP_N;  /* CUBLAS_OP_N */
    case 1: return MC_OP_T;  /* CUBLAS_OP_T */
    case 2: return MC_OP_C;  /* CUBLAS_OP_C */
    case 3: return MC_OP_C;  /* CUBLAS_OP_CONJG (conjugate, no transpose): rare */
    default: return MC_OP_N;
    }
}

static double half_to_double(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, f = h & 1023;
    double v;
    if (e == 0) v = f / 1024.0 / 16384.0;               /* subnormal: f * 2^-24 */
    else if (e == 31) v = f ? 0.0 / 0.0 : 1.0 / 0.0;
    else {
        v = 1.0 + f / 1024.0;
        for (int i = 15; i < e; i++) v *= 2.0;
        for (int i = e; i < 15; i++) v /= 2.0;
    }
    return s ? -v : v;
}

double mc_read_host_scalar(const void *p, int d)
{
    if (!p) return 0.0;
    switch (d) {
    case MC_DT_F32: { float v; memcpy(&v, p, 4); return v; }
    case MC_DT_F64: { double v; memcpy(&v, p, 8); return v; }
    case MC_DT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case MC_DT_F16: { uint16_t v; memcpy(&v, p, 2); return half_to_double(v); }
    case MC_DT_BF16: { uint16_t v; memcpy(&v, p, 2); uint32_t u = (uint32_t)v << 16;
                       float f; memcpy(&f, &u, 4); return f; }
    default: return 0.0;
    }
}

static __thread int tls_depth;

int mc_cuda_enter(void) { return tls_depth++; }
void mc_cuda_leave(void) { if (tls_depth > 0) tls_depth--; }

static int env_off(const char *name)
{
    const char *v = getenv(name);
    return v && (!strcmp(v, "0") || !strcmp(v, "off") || !strcmp(v, "no"));
}

void mc_cuda_first_use(void)
{
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return;
    if (__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL)) return;
    if (!mc_capture_enabled()) return;
    if (!env_off("MOECAP_CUPTI")) mc_cupti_load();
    if (!env_off("MOECAP_NVML")) mc_nvml_start();
}

/* Kernel-name cache: open addressing on the handle pointer, lock-free. A slot is claimed
 * by CAS on its key; its value is published after the name is interned. */
#define NAME_SLOTS 4096u
static struct { void *key; uint32_t id; } name_tab[NAME_SLOTS];

uint32_t mc_kernel_name_id(const void *handle, mc_name_lookup_fn lookup)
{
    if (!handle) return 0;
    uintptr_t h = (uintptr_t)handle;
    uint32_t i = (uint32_t)((h >> 4) * 2654435761u) & (NAME_SLOTS - 1);
    for (uint32_t probe = 0; probe < 64; probe++, i = (i + 1) & (NAME_SLOTS - 1)) {
        void *k = __atomic_load_n(&name_tab[i].key, __ATOMIC_ACQUIRE);
        if (k == handle) return __atomic_load_n(&name_tab[i].id, __ATOMIC_ACQUIRE);
        if (k == NULL) {
            void *expect = NULL;
            if (!__atomic_compare_exchange_n(&name_tab[i].key, &expect, (void *)handle, 0,
                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                if (expect == handle) return __atomic_load_n(&name_tab[i].id, __ATOMIC_ACQUIRE);
                continue;
            }
            const char *name = NULL;
            uint32_t id = 0;
            if (lookup && lookup(handle, &name) == 0 && name) id = mc_intern(name);
            __atomic_store_n(&name_tab[i].id, id, __ATOMIC_RELEASE);
            return id;
        }
    }
    return 0;   /* table crowded: leave unnamed rather than spend time */
}

/* One device FILE_MAP per stretch of the copied bytes that holds weight-file bytes: a copy
 * of part of a range names only those bytes, a copy across two ranges gives two records
 * (device address and file offset moved by the same amount as the host address). */
void mc_cuda_note_h2d(uint64_t host_src, uint64_t dev_dst, uint64_t bytes, int device)
{
    if (!mc_filemap_lookup || bytes == 0) return;
    uint64_t end = host_src + bytes < host_src ? UINT64_MAX : host_src + bytes;
    uint64_t at = host_src;
    struct mc_filemap_piece p[16];
    for (;;) {
        int n = mc_filemap_lookup(at, end - at, p, 16);
        for (int i = 0; i < n; i++) {
            struct mc_rec_file_map *r = mc_rec_reserve(MC_REC_FILE_MAP, sizeof *r);
            if (!r) return;
            r->t_ns = mc_now_ns();
            r->addr = dev_dst + (p[i].addr - host_src);
            r->file_offset = p[i].file_offset;
            r->length = p[i].length;
            r->path_str = p[i].path_str;
            r->device = device < 0 ? 0 : device;
            r->how = 3;
            mc_rec_commit(r);
        }
        if (n < 16) break;
        at = p[15].addr + p[15].length;
        if (at >= end) break;
    }
    static int said;
    if (mc_filemap_unverifiable && mc_filemap_unverifiable() && !__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
        mc_note(MC_NOTE_WARNING, "process_vm_readv is refused here: host->device copies of weight bytes read "
                "with read/pread are not named (mmap'ed weights still are)");
}
