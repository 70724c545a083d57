/* GGUF (llama.cpp) header parser: the tensor table of a v2/v3 GGUF file, read through a
 * small buffered pread reader (the metadata before it can be megabytes: vocabularies).
 * Produces the same mc_st_tensor entries as the safetensors parser, with absolute file
 * offsets and shapes outermost-first (GGUF lists ggml's ne[], innermost first). Runs once
 * per weight file, never in a hot path; every length is bounds-checked. */
#include "gguf_hdr.h"

#include <stdlib.h>
#include <string.h>

#include "moecap/trace_facts.h"

struct rd {
    int fd;
    mc_pread_fn pread_fn;
    uint64_t off;               /* file offset of buf[0] */
    size_t pos, len;
    int err;
    unsigned char buf[65536];
};

static int fill(struct rd *r)
{
    r->off += r->len;
    r->pos = 0;
    r->len = 0;
    ssize_t n = r->pread_fn(r->fd, r->buf, sizeof r->buf, (off_t)r->off);
    if (n <= 0) { r->err = 1; return -1; }
    r->len = (size_t)n;
    return 0;
}

/* Copies n bytes to dst (or skips them when dst is NULL). */
static int take(struct rd *r, void *dst, uint64_t n)
{
    unsigned char *d = dst;
    while (n) {
        if (r->err) return -1;
        if (r->pos == r->len && fill(r) < 0) return -1;
        size_t k = r->len - r->pos;
        if (k > n) k = (size_t)n;
        if (d) { memcpy(d, r->buf + r->pos, k); d += k; }
        r->pos += k;
        n -= k;
    }
    return 0;
}

static uint64_t tell(const struct rd *r) { return r->off + r->pos; }

static uint32_t u32(struct rd *r)
{
    unsigned char b[4] = {0};
    take(r, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t u64(struct rd *r)
{
    uint64_t lo = u32(r), hi = u32(r);
    return lo | hi << 32;
}

/* A gguf_string into out (truncated to cap-1, NUL-terminated); out may be NULL. */
static int str(struct rd *r, char *out, size_t cap)
{
    uint64_t n = u64(r);
    if (r->err || n > (1ull << 32)) return -1;
    uint64_t keep = out ? (n < cap - 1 ? n : cap - 1) : 0;
    if (out) {
        if (take(r, out, keep) < 0) return -1;
        out[keep] = 0;
    }
    return take(r, NULL, n - keep);
}

enum { GT_U8, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STRING, GT_ARRAY, GT_U64, GT_I64, GT_F64 };

static int scalar_size(uint32_t t)
{
    switch (t) {
    case GT_U8: case GT_I8: case GT_BOOL: return 1;
    case GT_U16: case GT_I16: return 2;
    case GT_U32: case GT_I32: case GT_F32: return 4;
    case GT_U64: case GT_I64: case GT_F64: return 8;
    default: return 0;
    }
}

/* Skips one value of type t; stores it in *num when it is an integer (for alignment). */
static int skip_value(struct rd *r, uint32_t t, uint64_t *num, int depth)
{
    if (depth > 3) return -1;
    int sz = scalar_size(t);
    if (sz) {
        unsigned char b[8] = {0};
        if (take(r, b, (uint64_t)sz) < 0) return -1;
        if (num) { uint64_t v = 0; for (int i = sz - 1; i >= 0; i--) v = v << 8 | b[i]; *num = v; }
        return 0;
    }
    if (t == GT_STRING) return str(r, NULL, 0);
    if (t == GT_ARRAY) {
        uint32_t et = u32(r);
        uint64_t n = u64(r);
        if (r->err) return -1;
        int esz = scalar_size(et);
        if (esz) {
            if (n > (1ull << 40) / (uint64_t)esz) return -1;
            return take(r, NULL, n * (uint64_t)esz);
        }
        for (uint64_t i = 0; i < n; i++)
            if (skip_value(r, et, NULL, depth + 1) < 0) return -1;
        return 0;
    }
    return -1;
}

/* Bytes of `n` elements of ggml type t (0 = unknown type), and the mc_dtype (MC_DT_UNKNOWN
 * for block-quantised types: blocks of `block` elements in `bytes` bytes, mc_ggml_block). */
static uint64_t ggml_bytes(uint32_t t, uint64_t n, int *dtype)
{
    unsigned block, bytes;
    *dtype = mc_dtype_from_ggml(t);
    if (mc_ggml_block(t, &block, &bytes) != 0) return 0;
    return n / block * bytes;
}

struct info { struct mc_st_tensor t; uint32_t type; uint64_t rel, nelem; };

static int cmp_rel(const void *a, const void *b)
{
    const struct info *x = *(struct info *const *)a, *y = *(struct info *const *)b;
    return x->rel < y->rel ? -1 : x->rel > y->rel;
}

int mc_gguf_parse(int fd, mc_pread_fn pread_fn, uint64_t file_size, mc_st_cb cb, void *arg)
{
    struct rd *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->fd = fd;
    r->pread_fn = pread_fn;
    int result = -1;
    struct info *inf = NULL;
    struct info **order = NULL;
    uint32_t magic = u32(r), version = u32(r);
    if (r->err || magic != 0x46554747u /* "GGUF" */ || version < 2 || version > 3) goto out;
    uint64_t nt = u64(r), nkv = u64(r);
    if (r->err || nt > (1u << 20) || nkv > (1u << 24)) goto out;
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < nkv; i++) {
        char key[128];
        if (str(r, key, sizeof key) < 0) goto out;
        uint32_t t = u32(r);
        uint64_t v = 0;
        if (skip_value(r, t, &v, 0) < 0) goto out;
        if (!strcmp(key, "general.alignment") && (t == GT_U32 || t == GT_U64) && v && v <= 65536 && !(v & (v - 1)))
            alignment = v;
    }
    inf = calloc(nt ? nt : 1, sizeof *inf);
    order = calloc(nt ? nt : 1, sizeof *order);
    if (!inf || !order) goto out;
    for (uint64_t i = 0; i < nt; i++) {
        struct info *x = &inf[i];
        if (str(r, x->t.name, sizeof x->t.name) < 0) goto out;
        uint32_t nd = u32(r);
        if (r->err || nd > 8) goto out;
        uint64_t ne[8], n = 1;
        for (uint32_t d = 0; d < nd; d++) {
            ne[d] = u64(r);
            if (ne[d] > (1ull << 40)) goto out;
            n *= ne[d] ? ne[d] : 1;
            if (n > (1ull << 48)) goto out;
        }
        x->t.ndim = nd;
        for (uint32_t d = 0; d < nd; d++) x->t.shape[d] = (int64_t)ne[nd - 1 - d]; /* outermost first */
        x->type = u32(r);
        x->rel = u64(r);
        x->nelem = n;
        if (r->err) goto out;
        order[i] = x;
    }
    uint64_t data0 = (tell(r) + alignment - 1) / alignment * alignment;
    /* Sizes: from the type where known, else up to the next tensor (or the file end). */
    qsort(order, nt, sizeof *order, cmp_rel);
    for (uint64_t i = 0; i < nt; i++) {
        struct info *x = order[i];
        uint64_t bytes = ggml_bytes(x->type, x->nelem, &x->t.dtype);
        uint64_t next = i + 1 < nt ? data0 + order[i + 1]->rel : file_size;
        x->t.begin = data0 + x->rel;
        x->t.end = bytes ? x->t.begin + bytes : (next > x->t.begin ? next : x->t.begin);
        /* a tensor outside the file (truncated download, corrupt offset): the table is not this file's */
        if (x->rel > file_size || x->t.begin > file_size || x->t.end > file_size || x->t.end < x->t.begin) goto out;
    }
    for (uint64_t i = 0; i < nt; i++)
        if (cb) cb(arg, &inf[i].t);
    result = (int)nt;
out:
    free(order);
    free(inf);
    free(r);
    return result;
}
