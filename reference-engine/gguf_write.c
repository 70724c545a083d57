/* GGUF v3 writer and the row quantizers behind it (gguf_write.h). Layout written:
 * "GGUF", version 3, tensor count, key/value count, the key/values, the tensor infos
 * (name, dims, ne[], type, offset relative to the data section), zero padding to 32 bytes,
 * then each tensor's data, each padded to 32. Block formats (32 elements per block):
 *   Q8_0: f16 scale d = max|x| / 127, then 32 int8 q = round(x / d)          (34 bytes)
 *   Q4_0: f16 scale d = m / -8 (m: the element of largest magnitude, signed), then 16 bytes
 *         of 4-bit q = min(15, trunc(x / d + 8.5)), element j in the low nibble of byte j and
 *         element j + 16 in its high nibble                                    (18 bytes)
 * Dequantized value: d * q (Q8_0), d * (q - 8) (Q4_0). */
#include "gguf_write.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_ALIGN 32
enum { KV_U32 = 4, KV_I32 = 5, KV_F32 = 6, KV_BOOL = 7, KV_STRING = 8, KV_ARRAY = 9 };

size_t mr_ggml_row_bytes(enum mr_ggml_type t, int64_t n)
{
    if (n < 0) return 0;
    switch (t) {
    case MR_GGML_F32: return (size_t)n * 4;
    case MR_GGML_F16: return (size_t)n * 2;
    case MR_GGML_Q8_0: return n % 32 ? 0 : (size_t)(n / 32) * 34;
    case MR_GGML_Q4_0: return n % 32 ? 0 : (size_t)(n / 32) * 18;
    }
    return 0;
}

int mr_ggml_type_from_name(const char *s)
{
    if (!strcmp(s, "f32")) return MR_GGML_F32;
    if (!strcmp(s, "f16")) return MR_GGML_F16;
    if (!strcmp(s, "q8_0")) return MR_GGML_Q8_0;
    if (!strcmp(s, "q4_0")) return MR_GGML_Q4_0;
    return -1;
}

static void put_f16(unsigned char *p, float v)
{
    _Float16 h = (_Float16)v;   /* IEEE binary16, round to nearest even */
    memcpy(p, &h, 2);
}

void mr_ggml_quantize_row(enum mr_ggml_type t, const float *x, int64_t n, void *dst)
{
    unsigned char *o = dst;
    switch (t) {
    case MR_GGML_F32: memcpy(o, x, (size_t)n * 4); return;
    case MR_GGML_F16: for (int64_t i = 0; i < n; i++) put_f16(o + 2 * i, x[i]); return;
    case MR_GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, x += 32, o += 34) {
            float amax = 0;
            for (int j = 0; j < 32; j++) if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
            float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
            put_f16(o, d);
            for (int j = 0; j < 32; j++) o[2 + j] = (unsigned char)(int8_t)roundf(x[j] * id);
        }
        return;
    case MR_GGML_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, x += 32, o += 18) {
            float amax = 0, m = 0;
            for (int j = 0; j < 32; j++) if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); m = x[j]; }
            float d = m / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
            put_f16(o, d);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
                if (q0 > 15) q0 = 15;
                if (q1 > 15) q1 = 15;
                o[2 + j] = (unsigned char)(q0 | q1 << 4);
            }
        }
        return;
    }
}

struct gtensor {
    char *name;
    int ndim;
    int64_t ne[4];
    enum mr_ggml_type type;
    mr_gguf_fill fill;
    void *ctx;
    uint64_t offset, bytes;
};

struct mr_gguf {
    unsigned char *kv;          /* serialized key/values */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    struct gtensor *t;
    size_t n_t, cap_t;
    int oom;
};

struct mr_gguf *mr_gguf_new(void) { return calloc(1, sizeof(struct mr_gguf)); }

void mr_gguf_free(struct mr_gguf *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_t; i++) free(g->t[i].name);
    free(g->t);
    free(g->kv);
    free(g);
}

static void put(struct mr_gguf *g, const void *p, size_t n)
{
    if (g->oom) return;
    if (g->kv_len + n > g->kv_cap) {
        size_t nc = g->kv_cap ? g->kv_cap : 4096;
        while (nc < g->kv_len + n) nc *= 2;
        unsigned char *nb = realloc(g->kv, nc);
        if (!nb) { g->oom = 1; return; }
        g->kv = nb; g->kv_cap = nc;
    }
    memcpy(g->kv + g->kv_len, p, n);
    g->kv_len += n;
}
static void put_u32(struct mr_gguf *g, uint32_t v) { put(g, &v, 4); }   /* x86-64: little-endian */
static void put_u64(struct mr_gguf *g, uint64_t v) { put(g, &v, 8); }
static void put_str(struct mr_gguf *g, const char *s) { put_u64(g, strlen(s)); put(g, s, strlen(s)); }
static int key(struct mr_gguf *g, const char *k, uint32_t type)
{
    put_str(g, k);
    put_u32(g, type);
    g->n_kv++;
    return g->oom ? -1 : 0;
}

int mr_gguf_kv_str(struct mr_gguf *g, const char *k, const char *v) { key(g, k, KV_STRING); put_str(g, v); return g->oom ? -1 : 0; }
int mr_gguf_kv_u32(struct mr_gguf *g, const char *k, uint32_t v) { key(g, k, KV_U32); put_u32(g, v); return g->oom ? -1 : 0; }
int mr_gguf_kv_f32(struct mr_gguf *g, const char *k, float v) { key(g, k, KV_F32); put(g, &v, 4); return g->oom ? -1 : 0; }
int mr_gguf_kv_bool(struct mr_gguf *g, const char *k, int v)
{
    unsigned char b = v != 0;
    key(g, k, KV_BOOL);
    put(g, &b, 1);
    return g->oom ? -1 : 0;
}
int mr_gguf_kv_str_array(struct mr_gguf *g, const char *k, const char *const *v, size_t n)
{
    key(g, k, KV_ARRAY);
    put_u32(g, KV_STRING);
    put_u64(g, n);
    for (size_t i = 0; i < n; i++) put_str(g, v[i]);
    return g->oom ? -1 : 0;
}
int mr_gguf_kv_i32_array(struct mr_gguf *g, const char *k, const int32_t *v, size_t n)
{
    key(g, k, KV_ARRAY);
    put_u32(g, KV_I32);
    put_u64(g, n);
    put(g, v, n * 4);
    return g->oom ? -1 : 0;
}

int mr_gguf_tensor(struct mr_gguf *g, const char *name, int ndim, const int64_t *ne,
                   enum mr_ggml_type type, mr_gguf_fill fill, void *ctx)
{
    if (ndim < 1 || ndim > 4 || !mr_ggml_row_bytes(type, ne[0])) return -1;
    if (g->n_t == g->cap_t) {
        size_t nc = g->cap_t ? 2 * g->cap_t : 64;
        struct gtensor *nt = realloc(g->t, nc * sizeof *nt);
        if (!nt) return -1;
        g->t = nt; g->cap_t = nc;
    }
    struct gtensor *t = &g->t[g->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return -1;
    t->ndim = ndim;
    uint64_t rows = 1;
    for (int i = 0; i < 4; i++) {
        t->ne[i] = i < ndim ? ne[i] : 1;
        if (i) rows *= (uint64_t)t->ne[i];
    }
    t->type = type; t->fill = fill; t->ctx = ctx;
    t->bytes = rows * mr_ggml_row_bytes(type, t->ne[0]);
    g->n_t++;
    return 0;
}

static uint64_t align_up(uint64_t v) { return (v + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN; }

int mr_gguf_write(struct mr_gguf *g, const char *path, char *err, size_t errlen)
{
    if (g->oom) { snprintf(err, errlen, "out of memory building the GGUF header"); return -1; }
    /* header after the key/values: tensor infos (appended to a copy of the kv buffer) */
    size_t kv_len = g->kv_len;
    uint64_t n_kv = g->n_kv, off = 0;
    for (size_t i = 0; i < g->n_t; i++) {
        struct gtensor *t = &g->t[i];
        t->offset = off;
        off = align_up(off + t->bytes);
        put_str(g, t->name);
        put_u32(g, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) put_u64(g, (uint64_t)t->ne[d]);
        put_u32(g, (uint32_t)t->type);
        put_u64(g, t->offset);
    }
    int rc = -1;
    float *buf = NULL;
    unsigned char *qbuf = NULL;
    FILE *f = NULL;
    if (g->oom) { snprintf(err, errlen, "out of memory building the GGUF header"); goto out; }
    f = fopen(path, "wb");
    if (!f) { snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno)); goto out; }
    uint32_t ver = 3;
    uint64_t nt = g->n_t;
    fwrite("GGUF", 1, 4, f);
    fwrite(&ver, 4, 1, f);
    fwrite(&nt, 8, 1, f);
    fwrite(&n_kv, 8, 1, f);
    fwrite(g->kv, 1, g->kv_len, f);
    static const unsigned char zeros[GGUF_ALIGN];
    uint64_t pos = 24 + g->kv_len;
    fwrite(zeros, 1, align_up(pos) - pos, f);
    uint64_t max_n = 1, max_bytes = 1;
    for (size_t i = 0; i < g->n_t; i++) {
        const struct gtensor *t = &g->t[i];
        uint64_t n = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        if (n > max_n) max_n = n;
        if (t->bytes > max_bytes) max_bytes = t->bytes;
    }
    buf = malloc(max_n * sizeof *buf);
    qbuf = malloc(max_bytes);
    if (!buf || !qbuf) { snprintf(err, errlen, "out of memory (%llu bytes for the largest tensor)", (unsigned long long)max_bytes); goto out; }
    for (size_t i = 0; i < g->n_t; i++) {
        struct gtensor *t = &g->t[i];
        uint64_t n = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        t->fill(t->ctx, buf);
        const void *data = buf;
        if (t->type != MR_GGML_F32) {
            size_t rb = mr_ggml_row_bytes(t->type, t->ne[0]);
            for (uint64_t r = 0; r < n / (uint64_t)t->ne[0]; r++)
                mr_ggml_quantize_row(t->type, buf + r * (uint64_t)t->ne[0], t->ne[0], qbuf + r * rb);
            data = qbuf;
        }
        fwrite(data, 1, t->bytes, f);
        fwrite(zeros, 1, align_up(t->bytes) - t->bytes, f);
    }
    if (ferror(f)) { snprintf(err, errlen, "writing %s failed", path); goto out; }
    rc = 0;
out:
    if (f && fclose(f) != 0 && rc == 0) { snprintf(err, errlen, "writing %s failed: %s", path, strerror(errno)); rc = -1; }
    free(buf);
    free(qbuf);
    g->kv_len = kv_len;   /* the tensor infos are rebuilt by the next write */
    return rc;
}
