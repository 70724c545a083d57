/* A GGUF v3 file writer (llama.cpp's model format) with the element types moe-ref exports:
 * F32, F16 and the block-quantized Q8_0 and Q4_0. Metadata key/values are kept in memory;
 * tensor data is produced by a callback at write time, one tensor at a time, so a model
 * larger than memory headroom is converted with one tensor's floats in memory at once. */
#ifndef MOE_REF_GGUF_WRITE_H
#define MOE_REF_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* ggml element types (values as in ggml's enum ggml_type and the GGUF spec). */
enum mr_ggml_type { MR_GGML_F32 = 0, MR_GGML_F16 = 1, MR_GGML_Q4_0 = 2, MR_GGML_Q8_0 = 8 };

/* Bytes of one row of n elements (n a multiple of the type's block size), 0 when not. */
size_t mr_ggml_row_bytes(enum mr_ggml_type t, int64_t n);
/* Quantizes (or converts) n floats into dst (mr_ggml_row_bytes(t, n) bytes). */
void mr_ggml_quantize_row(enum mr_ggml_type t, const float *x, int64_t n, void *dst);
/* "f32" | "f16" | "q8_0" | "q4_0" -> type; -1 when unknown. */
int mr_ggml_type_from_name(const char *s);

struct mr_gguf;
/* fill writes the tensor's elements as floats in ggml order (ne[0] fastest). */
typedef void (*mr_gguf_fill)(void *ctx, float *dst);

struct mr_gguf *mr_gguf_new(void);
void mr_gguf_free(struct mr_gguf *g);
/* Metadata (keys in the order added). Return 0, -1 on allocation failure. */
int mr_gguf_kv_str(struct mr_gguf *g, const char *key, const char *val);
int mr_gguf_kv_u32(struct mr_gguf *g, const char *key, uint32_t val);
int mr_gguf_kv_f32(struct mr_gguf *g, const char *key, float val);
int mr_gguf_kv_bool(struct mr_gguf *g, const char *key, int val);
int mr_gguf_kv_str_array(struct mr_gguf *g, const char *key, const char *const *vals, size_t n);
int mr_gguf_kv_i32_array(struct mr_gguf *g, const char *key, const int32_t *vals, size_t n);
/* A tensor of ndim (1..4) dimensions ne[] (ggml order: ne[0] innermost); ctx must live until
 * mr_gguf_write. Returns -1 when ne[0] is not a multiple of the type's block size. */
int mr_gguf_tensor(struct mr_gguf *g, const char *name, int ndim, const int64_t *ne,
                   enum mr_ggml_type type, mr_gguf_fill fill, void *ctx);
/* Writes the file (32-byte aligned data section). 0, or -1 with a message in err. */
int mr_gguf_write(struct mr_gguf *g, const char *path, char *err, size_t errlen);

#endif
