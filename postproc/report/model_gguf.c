/* A GGUF file (llama.cpp's model format) as the model description of `moecap report`
 * (model_gguf.h): the geometry from its metadata keys (`<arch>.embedding_length`, ...), the
 * tensor table with absolute file offsets and exact byte spans (block-quantized types
 * included). Architectures: "llama" with experts (Mixtral-style) and "qwen2moe". */
#include "report/model_gguf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "moecap/trace_facts.h"
#include "trace/safe_file.h"

enum { KV_U8, KV_I8, KV_U16, KV_I16, KV_U32, KV_I32, KV_F32, KV_BOOL, KV_STRING, KV_ARRAY, KV_U64, KV_I64, KV_F64 };

struct rd { FILE *f; int err; };

static int take(struct rd *r, void *p, size_t n)
{
    if (r->err || fread(p, 1, n, r->f) != n) { r->err = 1; if (p) memset(p, 0, n); return -1; }
    return 0;
}
static uint32_t u32(struct rd *r) { uint32_t v = 0; take(r, &v, 4); return v; }
static uint64_t u64(struct rd *r) { uint64_t v = 0; take(r, &v, 8); return v; }
/* A GGUF string into buf (truncated to cap - 1), or skipped when buf is NULL. */
static void str(struct rd *r, char *buf, size_t cap)
{
    uint64_t n = u64(r);
    if (r->err || n > (1u << 24)) { r->err = 1; return; }
    if (!buf) { if (fseek(r->f, (long)n, SEEK_CUR) != 0) r->err = 1; return; }
    size_t keep = n < cap - 1 ? (size_t)n : cap - 1;
    take(r, buf, keep);
    buf[keep] = 0;
    if (n > keep && fseek(r->f, (long)(n - keep), SEEK_CUR) != 0) r->err = 1;
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

static void seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

int mc_model_load_gguf(const char *path, struct mc_model *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    int fd = mc_open_regular(path);   /* a FIFO named *.gguf must not hang the report */
    struct rd r = { .f = fd >= 0 ? fdopen(fd, "rb") : NULL };
    if (!r.f) {
        seterr(err, errlen, "--model %s: %s", path, errno == EINVAL ? "not a regular file" : strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    char magic[4];
    take(&r, magic, 4);
    uint32_t ver = u32(&r);
    if (r.err || memcmp(magic, "GGUF", 4) || (ver != 2 && ver != 3)) {
        seterr(err, errlen, "%s: not a GGUF v2/v3 file", path);
        fclose(r.f);
        return -1;
    }
    uint64_t nt = u64(&r), nkv = u64(&r);
    if (nt > (1u << 20) || nkv > (1u << 20)) r.err = 1;
    struct kvs k;
    memset(&k, 0, sizeof k);
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
            if (!strcmp(key, "tokenizer.ggml.tokens")) k.n_tokens = (int64_t)n;
            if (et == KV_STRING) for (uint64_t j = 0; j < n && !r.err; j++) str(&r, NULL, 0);
            else if (scalar_size(et) && n < (1ull << 32)) { if (fseek(r.f, (long)(n * scalar_size(et)), SEEK_CUR) != 0) r.err = 1; }
            else r.err = 1;
        } else if (scalar_size(t)) {
            uint64_t v = 0;
            take(&r, &v, scalar_size(t));
            if (t == KV_U32 && !strcmp(key, "general.alignment") && v && !(v & (v - 1))) alignment = (uint32_t)v;
            int64_t *slot = key_slot(&k, key);
            if (slot && (t == KV_U32 || t == KV_I32 || t == KV_U64 || t == KV_I64 || t == KV_U16)) *slot = (int64_t)v;
        } else r.err = 1;
    }
    if (r.err) { seterr(err, errlen, "%s: truncated or malformed GGUF metadata", path); fclose(r.f); return -1; }
    m->tensors = calloc(nt ? nt : 1, sizeof *m->tensors);
    uint32_t *types = calloc(nt ? nt : 1, sizeof *types);
    if (!m->tensors || !types) { free(types); seterr(err, errlen, "out of memory"); fclose(r.f); return -1; }
    for (uint64_t i = 0; i < nt && !r.err; i++) {
        struct mc_st_tensor *t = &m->tensors[i];
        char name[256];
        str(&r, name, sizeof name);
        uint32_t nd = u32(&r);
        if (nd < 1 || nd > 4) { r.err = 1; break; }
        int64_t ne[4] = {1, 1, 1, 1};
        for (uint32_t d = 0; d < nd; d++) ne[d] = (int64_t)u64(&r);
        types[i] = u32(&r);
        uint64_t off = u64(&r);
        unsigned bs, ts;
        if (mc_ggml_block(types[i], &bs, &ts) != 0 || ne[0] % bs) {
            seterr(err, errlen, "%s: tensor %s has ggml type %u, which this reader does not know", path, name, types[i]);
            for (uint64_t j = 0; j < i; j++) free(m->tensors[j].name);
            free(m->tensors); m->tensors = NULL; free(types); fclose(r.f);
            return -1;
        }
        t->name = strdup(name);
        t->path = strdup(path);
        t->ndim = (int)nd;
        for (uint32_t d = 0; d < nd; d++) t->shape[d] = ne[nd - 1 - d];   /* outermost first */
        t->dtype = mc_dtype_from_ggml(types[i]);   /* MC_DT_UNKNOWN for block-quantized types */
        t->file_begin = off;   /* relative to the data section until it is known */
        t->file_end = off + (uint64_t)(ne[0] / bs) * ts * (uint64_t)ne[1] * (uint64_t)ne[2] * (uint64_t)ne[3];
        m->n_tensors++;
        if (!t->name || !t->path) r.err = 1;
    }
    long hdr_end = ftell(r.f);
    fclose(r.f);
    if (r.err || hdr_end < 0) { mc_model_free(m); free(types); seterr(err, errlen, "%s: truncated or malformed GGUF tensor table", path); return -1; }
    uint64_t data = ((uint64_t)hdr_end + alignment - 1) / alignment * alignment;
    for (size_t i = 0; i < m->n_tensors; i++) { m->tensors[i].file_begin += data; m->tensors[i].file_end += data; }

    /* geometry */
    int qwen = !strcmp(k.arch, "qwen2moe");
    if (!qwen && strcmp(k.arch, "llama")) {
        seterr(err, errlen, "%s: GGUF architecture \"%s\" is not supported (llama with experts, qwen2moe)", path, k.arch);
        mc_model_free(m); free(types);
        return -1;
    }
    char missing[256] = "";
#define NEED(v, name) if ((v) <= 0) { strncat(missing, " " name, sizeof missing - strlen(missing) - 1); }
    NEED(k.d, "embedding_length"); NEED(k.layers, "block_count"); NEED(k.heads, "attention.head_count");
    NEED(k.experts, "expert_count"); NEED(k.used, "expert_used_count");
    if (qwen) { NEED(k.ff_exp, "expert_feed_forward_length"); } else { NEED(k.ff, "feed_forward_length"); }
#undef NEED
    if (missing[0] || k.layers > MC_MODEL_MAX_LAYERS) {
        seterr(err, errlen, "%s: %s: missing or invalid metadata:%s", path, k.arch, missing[0] ? missing : " block_count");
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
