/* A GGUF file (llama.cpp's model format) as the model description of `moecap report`
 * (model_gguf.h): the geometry from its metadata keys (`<arch>.embedding_length`, ...), the
 * tensor table with absolute file offsets and exact byte spans (block-quantized types
 * included). Architectures: "llama" with experts (Mixtral-style) and "qwen2moe". */
#include "report/model_gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "moecap/trace_facts.h"
#include "trace/safe_file.h"

enum { KV_U8, KV_I8, KV_U16, KV_I16, KV_U32, KV_I32, KV_F32, KV_BOOL, KV_STRING, KV_ARRAY, KV_U64, KV_I64, KV_F64 };

/* The reader: every length, count and skip is checked against the bytes left in the file
 * before it is used, so no size read from the file can make it seek or allocate past them. */
struct rd { FILE *f; int err; uint64_t pos, size; };

static int take(struct rd *r, void *p, size_t n)
{
    if (r->err || n > r->size - r->pos || fread(p, 1, n, r->f) != n) { r->err = 1; if (p) memset(p, 0, n); return -1; }
    r->pos += n;
    return 0;
}
static void skip(struct rd *r, uint64_t n)
{
    if (r->err || n > r->size - r->pos || fseeko(r->f, (off_t)n, SEEK_CUR) != 0) { r->err = 1; return; }
    r->pos += n;
}
static uint64_t left(const struct rd *r) { return r->err ? 0 : r->size - r->pos; }
static uint32_t u32(struct rd *r) { uint32_t v = 0; take(r, &v, 4); return v; }
static uint64_t u64(struct rd *r) { uint64_t v = 0; take(r, &v, 8); return v; }
/* A GGUF string into buf (truncated to cap - 1), or skipped when buf is NULL. */
static void str(struct rd *r, char *buf, size_t cap)
{
    uint64_t n = u64(r);
    if (r->err || n > (1u << 24) || n > left(r)) { r->err = 1; if (buf) buf[0] = 0; return; }
    if (!buf) { skip(r, n); return; }
    size_t keep = n < cap - 1 ? (size_t)n : cap - 1;
    take(r, buf, keep);
    buf[keep] = 0;
    skip(r, n - keep);
}
static size_t scalar_size(uint32_t t)
{
    switch (t) {
    case KV_U8: case KV_I8: case KV_BOOL: return 1;
    case KV_U16: case KV_I16: return 2;
    case KV_U32: case KV_I32: case KV_F32: return 4;
    case KV_U64: case KV_I64: case KV_F64: return 8;
    default: return 0;
    }
}

struct kvs {   /* the metadata this reader uses */
    char arch[32];
    int64_t ctx, d, layers, ff, heads, kv_heads, experts, used, vocab, ff_exp, ff_shexp, key_len;
    int64_t n_tokens;
};

static int64_t *key_slot(struct kvs *k, const char *key)
{
    size_t al = strlen(k->arch);
    if (!al || strncmp(key, k->arch, al) || key[al] != '.') return NULL;
    const char *s = key + al + 1;
    static const struct { const char *n; size_t off; } t[] = {
        {"context_length", offsetof(struct kvs, ctx)}, {"embedding_length", offsetof(struct kvs, d)},
        {"block_count", offsetof(struct kvs, layers)}, {"feed_forward_length", offsetof(struct kvs, ff)},
        {"attention.head_count", offsetof(struct kvs, heads)}, {"attention.head_count_kv", offsetof(struct kvs, kv_heads)},
        {"expert_count", offsetof(struct kvs, experts)}, {"expert_used_count", offsetof(struct kvs, used)},
        {"vocab_size", offsetof(struct kvs, vocab)}, {"expert_feed_forward_length", offsetof(struct kvs, ff_exp)},
        {"expert_shared_feed_forward_length", offsetof(struct kvs, ff_shexp)},
        {"attention.key_length", offsetof(struct kvs, key_len)}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].n)) return (int64_t *)((char *)k + t[i].off);
    return NULL;
}

/* A metadata integer of GGUF type t (raw: its bytes, little-endian) as int64, sign-extended
 * for the signed types; -1 for a U64 beyond int64 (refused by the range check). */
static int64_t kv_int(uint32_t t, uint64_t raw)
{
    switch (t) {
    case KV_I8: return (int8_t)raw;
    case KV_I16: return (int16_t)raw;
    case KV_I32: return (int32_t)raw;
    case KV_U64: return raw > INT64_MAX ? -1 : (int64_t)raw;
    default: return (int64_t)raw;
    }
}

/* Metadata and tensor dimensions above this are refused: the limit config.json has (model.c),
 * which keeps every product of two dimensions far inside int64. */
#define GGUF_MAX_DIM ((int64_t)1 << 24)
/* The smallest tensor info (empty name, one dimension) and key-value (empty key, one byte):
 * counts above what the rest of the file can hold are refused before anything is allocated. */
#define GGUF_MIN_TENSOR_INFO 32
#define GGUF_MIN_KV 13

/* Bytes of a tensor of ggml type `type` and shape ne (innermost first): 0, or -1 when the
 * type is unknown, ne[0] is not a whole number of its blocks, or the size overflows. */
static int tensor_bytes(uint32_t type, const int64_t ne[4], uint64_t *bytes, char *why, size_t whylen)
{
    unsigned bs, ts;
    if (mc_ggml_block(type, &bs, &ts) != 0) { snprintf(why, whylen, "has ggml type %u, which this reader does not know", type); return -1; }
    if (ne[0] % bs) { snprintf(why, whylen, "has rows of %lld elements, not a multiple of its type's block of %u", (long long)ne[0], bs); return -1; }
    uint64_t n = ts;
    for (int d = 0; d < 4; d++)
        if (__builtin_mul_overflow(n, (uint64_t)(d ? ne[d] : ne[0] / bs), &n)) {
            snprintf(why, whylen, "has a size beyond 2^64 bytes");
            return -1;
        }
    *bytes = n;
    return 0;
}

int mc_model_load_gguf(const char *path, struct mc_model *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    int fd = mc_open_regular(path);   /* a FIFO named *.gguf must not hang the report */
    struct stat sb;
    struct rd r = { .f = fd >= 0 && fstat(fd, &sb) == 0 ? fdopen(fd, "rb") : NULL };
    if (!r.f) {
        mc_model_seterr(err, errlen, "--model %s: %s", path, errno == EINVAL ? "not a regular file" : strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    r.size = (uint64_t)sb.st_size;
    char magic[4];
    take(&r, magic, 4);
    uint32_t ver = u32(&r);
    if (r.err || memcmp(magic, "GGUF", 4) || (ver != 2 && ver != 3)) {
        mc_model_seterr(err, errlen, "%s: not a GGUF v2/v3 file", path);
        fclose(r.f);
        return -1;
    }
    uint64_t nt = u64(&r), nkv = u64(&r);
    if (!r.err && (nt > (1u << 20) || nkv > (1u << 20) || nkv > left(&r) / GGUF_MIN_KV ||
                   nt > (left(&r) - nkv * GGUF_MIN_KV) / GGUF_MIN_TENSOR_INFO)) {
        mc_model_seterr(err, errlen, "%s: %llu tensors and %llu metadata keys: more than the file can hold (or than 2^20)",
               path, (unsigned long long)nt, (unsigned long long)nkv);
        fclose(r.f);
        return -1;
    }
    struct kvs k;
    memset(&k, 0, sizeof k);
    char bad_key[256] = "";
    int64_t bad_val = 0;
    uint32_t alignment = 32;
    for (uint64_t i = 0; i < nkv && !r.err; i++) {
        char key[256];
        str(&r, key, sizeof key);
        uint32_t t = u32(&r);
        if (t == KV_STRING) {
            if (!strcmp(key, "general.architecture")) str(&r, k.arch, sizeof k.arch);
            else str(&r, NULL, 0);
        } else if (t == KV_ARRAY) {
            uint32_t et = u32(&r);
            uint64_t n = u64(&r);
            if (!strcmp(key, "tokenizer.ggml.tokens") && n <= (uint64_t)GGUF_MAX_DIM) k.n_tokens = (int64_t)n;
            if (et == KV_STRING && n <= left(&r) / 8) for (uint64_t j = 0; j < n && !r.err; j++) str(&r, NULL, 0);
            else if (scalar_size(et) && n <= left(&r) / scalar_size(et)) skip(&r, n * scalar_size(et));
            else r.err = 1;
        } else if (scalar_size(t)) {
            uint64_t v = 0;
            take(&r, &v, scalar_size(t));
            if (t == KV_U32 && !strcmp(key, "general.alignment") && v && !(v & (v - 1))) alignment = (uint32_t)v;
            int64_t *slot = key_slot(&k, key);
            if (slot && t != KV_F32 && t != KV_F64 && t != KV_BOOL) {
                *slot = kv_int(t, v);
                if ((*slot < 0 || *slot > GGUF_MAX_DIM) && !bad_key[0]) { snprintf(bad_key, sizeof bad_key, "%s", key); bad_val = *slot; }
            }
        } else r.err = 1;
    }
    if (r.err) { mc_model_seterr(err, errlen, "%s: truncated or malformed GGUF metadata", path); fclose(r.f); return -1; }
    if (bad_key[0]) {
        mc_model_seterr(err, errlen, "%s: metadata %s = %lld is outside 0..2^24", path, bad_key, (long long)bad_val);
        fclose(r.f);
        return -1;
    }
    m->tensors = calloc(nt ? nt : 1, sizeof *m->tensors);
    uint32_t *types = calloc(nt ? nt : 1, sizeof *types);
    char *spath = strdup(path);   /* one copy, shared by every tensor (mc_model_free frees it once) */
    if (!m->tensors || !types || !spath) { free(types); free(spath); mc_model_free(m); mc_model_seterr(err, errlen, "out of memory"); fclose(r.f); return -1; }
    char why[128] = "";
    for (uint64_t i = 0; i < nt && !r.err && !why[0]; i++) {
        struct mc_st_tensor *t = &m->tensors[i];
        char name[256];
        str(&r, name, sizeof name);
        uint32_t nd = u32(&r);
        if (nd < 1 || nd > 4) { r.err = 1; break; }
        int64_t ne[4] = {1, 1, 1, 1};
        for (uint32_t d = 0; d < nd; d++) ne[d] = (int64_t)u64(&r);
        types[i] = u32(&r);
        uint64_t off = u64(&r), bytes = 0;
        if (r.err) break;
        if (ne[0] < 0 || ne[1] < 0 || ne[2] < 0 || ne[3] < 0) snprintf(why, sizeof why, "has a negative dimension");
        else if (tensor_bytes(types[i], ne, &bytes, why, sizeof why) == 0 && bytes > r.size)
            snprintf(why, sizeof why, "has %llu bytes, more than the file", (unsigned long long)bytes);
        else if (!why[0] && off > r.size - bytes) snprintf(why, sizeof why, "lies past the end of the file");
        if (why[0]) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s: tensor %s %s", path, name, why);
            mc_model_seterr(err, errlen, "%s", msg);
            break;
        }
        t->name = strdup(name);
        t->path = spath;
        t->ndim = (int)nd;
        for (uint32_t d = 0; d < nd; d++) t->shape[d] = ne[nd - 1 - d];   /* outermost first */
        t->dtype = mc_dtype_from_ggml(types[i]);   /* MC_DT_UNKNOWN for block-quantized types */
        t->file_begin = off;   /* relative to the data section until it is known */
        t->file_end = off + bytes;
        m->n_tensors++;
        if (!t->name) r.err = 1;
    }
    if (!m->n_tensors) free(spath);   /* otherwise the tensors own it */
    fclose(r.f);
    if (r.err || why[0]) {
        if (!why[0]) mc_model_seterr(err, errlen, "%s: truncated or malformed GGUF tensor table", path);
        mc_model_free(m); free(types);
        return -1;
    }
    /* the data section starts at the next multiple of the alignment; every tensor inside the file */
    uint64_t data = (r.pos + alignment - 1) / alignment * alignment;
    for (size_t i = 0; i < m->n_tensors; i++) {
        struct mc_st_tensor *t = &m->tensors[i];
        if (data > r.size || t->file_end > r.size - data) {
            mc_model_seterr(err, errlen, "%s: tensor %s lies past the end of the file (truncated download?)", path, t->name);
            mc_model_free(m); free(types);
            return -1;
        }
        t->file_begin += data; t->file_end += data;
    }

    /* geometry */
    int qwen = !strcmp(k.arch, "qwen2moe");
    if (!qwen && strcmp(k.arch, "llama")) {
        mc_model_seterr(err, errlen, "%s: GGUF architecture \"%s\" is not supported (llama with experts, qwen2moe)", path, k.arch);
        mc_model_free(m); free(types);
        return -1;
    }
    char missing[256] = "";
#define NEED(v, name) if ((v) <= 0) { strncat(missing, " " name, sizeof missing - strlen(missing) - 1); }
    NEED(k.d, "embedding_length"); NEED(k.layers, "block_count"); NEED(k.heads, "attention.head_count");
    NEED(k.experts, "expert_count"); NEED(k.used, "expert_used_count");
    if (qwen) { NEED(k.ff_exp, "expert_feed_forward_length"); } else { NEED(k.ff, "feed_forward_length"); }
#undef NEED
    if (missing[0]) {
        mc_model_seterr(err, errlen, "%s: %s: missing or invalid metadata:%s", path, k.arch, missing);
        mc_model_free(m); free(types);
        return -1;
    }
    /* the limits config.json models have (model.c): per-step state is layers x experts */
    if (k.layers > MC_MODEL_MAX_LAYERS || k.experts > MC_MODEL_MAX_EXPERTS || k.used > k.experts) {
        mc_model_seterr(err, errlen, "%s: %s: block_count %lld, expert_count %lld, expert_used_count %lld: the supported "
               "limits are %d layers, %d experts, used <= experts", path, k.arch, (long long)k.layers,
               (long long)k.experts, (long long)k.used, MC_MODEL_MAX_LAYERS, MC_MODEL_MAX_EXPERTS);
        mc_model_free(m); free(types);
        return -1;
    }
    m->arch = qwen ? MC_ARCH_QWEN2_MOE : MC_ARCH_MIXTRAL;
    snprintf(m->arch_name, sizeof m->arch_name, "%s", qwen ? "qwen2_moe" : "mixtral");
    snprintf(m->model_type, sizeof m->model_type, "gguf:%s", k.arch);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->d = k.d; m->layers = k.layers; m->heads = k.heads;
    m->kv_heads = k.kv_heads > 0 ? k.kv_heads : k.heads;
    m->head_dim = k.key_len > 0 ? k.key_len : k.d / k.heads;
    m->vocab = k.vocab > 0 ? k.vocab : k.n_tokens;
    m->experts = k.experts; m->top_k = k.used;
    m->f = qwen ? k.ff_exp : k.ff;
    m->fd = 0;
    m->fs = qwen ? k.ff_shexp : 0;
    m->n_shared = m->fs > 0;
    m->shared_gate = qwen;
    for (int64_t l = 0; l < m->layers; l++) m->is_moe[l] = 1;
    m->n_moe_layers = m->layers;
    m->from_gguf = 1;
    /* weight type: the routed experts' */
    m->weight_dtype = MC_DT_UNKNOWN;
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, "blk.0.ffn_up_exps.weight")) {
            m->weight_dtype = mc_dtype_from_ggml(types[i]);
            if (m->weight_dtype == MC_DT_UNKNOWN) m->weight_dtype = MC_DT_I8;   /* block-quantized: int8 dot products */
            break;
        }
    m->elt = mc_dtype_bytes(m->weight_dtype);
    free(types);
    return 0;
}
