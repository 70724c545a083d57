/* Lookups generated from the lists in moecap/trace_format.h (MC_DTYPE_LIST, MC_API_LIST),
 * header-only so that the shim (libmoecap.so, which links nothing of postproc/) and the
 * post-processor share one definition of each fact. */
#ifndef MOECAP_TRACE_FACTS_H
#define MOECAP_TRACE_FACTS_H

#include <stddef.h>
#include <string.h>

#include "moecap/trace_format.h"

/* Bytes per element of an enum mc_dtype; 0 when unknown. */
static inline int mc_dtype_bytes(unsigned dtype)
{
    switch (dtype) {
#define MC_DT_BYTES_(NAME, num, bytes, name, st, ggml, peak) case MC_DT_##NAME: return bytes;
    MC_DTYPE_LIST(MC_DT_BYTES_)
#undef MC_DT_BYTES_
    default: return 0;
    }
}

/* One row per element type, generated from MC_DTYPE_LIST (for the lookups by spelling). */
struct mc_dtype_row { int dtype; const char *safetensors; long ggml; };
#define MC_DT_ROW_(NAME, num, bytes, name, st, ggml, peak) {MC_DT_##NAME, st, ggml},
static const struct mc_dtype_row mc_dtype_rows[] = { MC_DTYPE_LIST(MC_DT_ROW_) };
#undef MC_DT_ROW_
#define MC_DTYPE_ROWS (sizeof mc_dtype_rows / sizeof mc_dtype_rows[0])

/* safetensors header spelling ("F32", "BF16", "F8_E4M3", ...) -> enum mc_dtype;
 * MC_DT_UNKNOWN when unknown or NULL. */
static inline int mc_dtype_from_safetensors(const char *s)
{
    for (size_t i = 0; s && i < MC_DTYPE_ROWS; i++)
        if (mc_dtype_rows[i].safetensors && !strcmp(s, mc_dtype_rows[i].safetensors)) return mc_dtype_rows[i].dtype;
    return MC_DT_UNKNOWN;
}

/* GGML type number of a GGUF tensor -> enum mc_dtype of its plain (unquantised) element;
 * MC_DT_UNKNOWN for block-quantised and unknown types. */
static inline int mc_dtype_from_ggml(long ggml_type)
{
    for (size_t i = 0; ggml_type >= 0 && i < MC_DTYPE_ROWS; i++)
        if (mc_dtype_rows[i].ggml == ggml_type) return mc_dtype_rows[i].dtype;
    return MC_DT_UNKNOWN;
}

/* A GGML type's storage: `block` elements in `bytes` bytes (1 element per block for plain
 * types, from MC_DTYPE_LIST; the block-quantised Q4_0..Q8_K from the table here). Returns 0,
 * or -1 for an unknown type. */
static inline int mc_ggml_block(long ggml_type, unsigned *block, unsigned *bytes)
{
    static const struct { long t; unsigned block, bytes; } quant[] = {
        {2, 32, 18}, {3, 32, 20}, {6, 32, 22}, {7, 32, 24}, {8, 32, 34}, {9, 32, 36}, {10, 256, 84},
        {11, 256, 110}, {12, 256, 144}, {13, 256, 176}, {14, 256, 210}, {15, 256, 292},
    };
    int dt = mc_dtype_from_ggml(ggml_type);
    if (dt != MC_DT_UNKNOWN) { *block = 1; *bytes = (unsigned)mc_dtype_bytes((unsigned)dt); return 0; }
    for (size_t i = 0; i < sizeof quant / sizeof quant[0]; i++)
        if (quant[i].t == ggml_type) { *block = quant[i].block; *bytes = quant[i].bytes; return 0; }
    return -1;
}

/* Key of the hardware profiles' peak-FLOPS table for an element type ("f32", "bf16",
 * "fp8", "int8", ...); NULL when the profiles have none for it. */
static inline const char *mc_dtype_peak_key(unsigned dtype)
{
    switch (dtype) {
#define MC_DT_PEAK_(NAME, num, bytes, name, st, ggml, peak) case MC_DT_##NAME: return peak;
    MC_DTYPE_LIST(MC_DT_PEAK_)
#undef MC_DT_PEAK_
    default: return NULL;
    }
}

/* Class of an enum mc_api (MC_APICLASS_NONE when unknown). */
static inline enum mc_api_class mc_api_class(unsigned api)
{
    switch (api) {
#define MC_API_CLASS_(NAME, num, spelling, cls) case MC_API_##NAME: return cls;
    MC_API_LIST(MC_API_CLASS_)
#undef MC_API_CLASS_
    default: return MC_APICLASS_NONE;
    }
}

static inline int mc_api_is_sync(unsigned api) { return mc_api_class(api) == MC_APICLASS_SYNC; }
static inline int mc_api_is_launch(unsigned api) { return mc_api_class(api) == MC_APICLASS_LAUNCH; }
static inline int mc_api_is_gemv(unsigned api) { return mc_api_class(api) == MC_APICLASS_GEMV; }

#endif /* MOECAP_TRACE_FACTS_H */
