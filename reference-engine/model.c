/* moe-ref model loader: config.json (Hugging Face field names of mixtral, qwen2_moe and
 * deepseek_v2) and *.safetensors files mapped with mmap. Every header is validated
 * (sizes, offsets, dtypes, shapes) before any weight is touched, so a bad file gives a
 * one-line message instead of a crash. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void mr_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------- config.json ---------- */

static int cfg_int(const cJSON *root, const char *key, int required, int def, int *out,
                   const char *path, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) {
            mr_set_err(err, errlen, "%s: missing required field \"%s\"", path, key);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < -1 || v->valuedouble > 1e9) {
        mr_set_err(err, errlen, "%s: field \"%s\" must be an integer", path, key);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int cfg_num(const cJSON *root, const char *key, double def, double *out,
                   const char *path, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) { *out = def; return 0; }
    if (!cJSON_IsNumber(v)) {
        mr_set_err(err, errlen, "%s: field \"%s\" must be a number", path, key);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

static int cfg_bool(const cJSON *root, const char *key, int def, int *out,
                    const char *path, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) {
        mr_set_err(err, errlen, "%s: field \"%s\" must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* eos/bos ids: an integer, a list (first entry is used) or absent (-1). */
static int token_id_field(const cJSON *root, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2e9) return (int)v->valuedouble;
    return -1;
}

static char *read_small_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mr_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        if (cap > (64u << 20)) { free(buf); buf = NULL; break; }
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (!buf) {
        mr_set_err(err, errlen, "%s: too large or out of memory", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* dense-layer rule per architecture, filled in parse_config */
static int parse_config(struct mr_model *m, const char *dir, int **dense_out,
                        char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len = 0;
    char *text = read_small_file(path, &len, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        mr_set_err(err, errlen, "%s: not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    struct mr_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    int rc = -1;
    int *dense = NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) {
        mr_set_err(err, errlen, "%s: missing required field \"model_type\"", path);
        goto out;
    }
    if (!strcmp(mt->valuestring, "mixtral")) c->arch = MR_ARCH_MIXTRAL;
    else if (!strcmp(mt->valuestring, "qwen2_moe")) c->arch = MR_ARCH_QWEN2_MOE;
    else if (!strcmp(mt->valuestring, "deepseek_v2")) c->arch = MR_ARCH_DEEPSEEK_V2;
    else {
        mr_set_err(err, errlen, "%s: model_type \"%s\" is not supported "
                   "(mixtral, qwen2_moe, deepseek_v2)", path, mt->valuestring);
        goto out;
    }
#define I(key, req, def, dst) if (cfg_int(root, key, req, def, dst, path, err, errlen)) goto out
    I("hidden_size", 1, 0, &c->hidden);
    I("num_hidden_layers", 1, 0, &c->layers);
    I("num_attention_heads", 1, 0, &c->heads);
    I("num_key_value_heads", 0, c->heads, &c->kv_heads);
    I("vocab_size", 1, 0, &c->vocab);
    I("max_position_embeddings", 0, 4096, &c->max_position);
    c->eos_token_id = token_id_field(root, "eos_token_id");
    c->bos_token_id = token_id_field(root, "bos_token_id");
    if (c->heads <= 0 || c->hidden <= 0) {
        mr_set_err(err, errlen, "%s: hidden_size and num_attention_heads must be > 0", path);
        goto out;
    }
    I("head_dim", 0, c->hidden / c->heads, &c->head_dim);
    double eps, theta, rsf = 1.0;
    if (cfg_num(root, "rms_norm_eps", c->arch == MR_ARCH_MIXTRAL ? 1e-5 : 1e-6, &eps,
                path, err, errlen)) goto out;
    if (cfg_num(root, "rope_theta", c->arch == MR_ARCH_DEEPSEEK_V2 ? 10000.0 : 1e6, &theta,
                path, err, errlen)) goto out;
    c->rms_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->routed_scaling_factor = 1.0f;
    if (c->layers <= 0 || c->layers > 100000) {
        mr_set_err(err, errlen, "%s: num_hidden_layers must be > 0", path);
        goto out;
    }
    dense = calloc((size_t)c->layers, sizeof *dense);
    if (!dense) { mr_set_err(err, errlen, "out of memory"); goto out; }

    if (c->arch == MR_ARCH_MIXTRAL) {
        I("intermediate_size", 1, 0, &c->moe_inter);
        I("num_local_experts", 1, 0, &c->experts);
        I("num_experts_per_tok", 1, 0, &c->top_k);
        c->norm_topk_prob = 1;
    } else if (c->arch == MR_ARCH_QWEN2_MOE) {
        int step, any_dense = 0;
        I("intermediate_size", 1, 0, &c->dense_inter);
        I("moe_intermediate_size", 1, 0, &c->moe_inter);
        I("shared_expert_intermediate_size", 1, 0, &c->shared_inter);
        I("num_experts", 1, 0, &c->experts);
        I("num_experts_per_tok", 1, 0, &c->top_k);
        I("decoder_sparse_step", 0, 1, &step);
        if (cfg_bool(root, "norm_topk_prob", 0, &c->norm_topk_prob, path, err, errlen)) goto out;
        c->shared_gate = c->shared_inter > 0;
        if (step <= 0) step = 1;
        const cJSON *mlo = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers");
        if (mlo && !cJSON_IsNull(mlo) && !cJSON_IsArray(mlo)) {
            mr_set_err(err, errlen, "%s: field \"mlp_only_layers\" must be a list", path);
            goto out;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, mlo) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= c->layers) {
                mr_set_err(err, errlen, "%s: mlp_only_layers entry out of range", path);
                goto out;
            }
            dense[(int)it->valuedouble] = 1;
        }
        /* HF Qwen2MoeDecoderLayer: sparse iff not mlp-only, experts > 0 and (l+1) % step == 0 */
        for (int l = 0; l < c->layers; l++) {
            if (c->experts <= 0 || (l + 1) % step != 0) dense[l] = 1;
            any_dense |= dense[l];
        }
        (void)any_dense;
    } else {
        int shared_n, freq, fkd;
        I("intermediate_size", 1, 0, &c->dense_inter);
        I("moe_intermediate_size", 1, 0, &c->moe_inter);
        I("n_routed_experts", 1, 0, &c->experts);
        I("num_experts_per_tok", 1, 0, &c->top_k);
        I("n_shared_experts", 0, 0, &shared_n);
        I("first_k_dense_replace", 0, 0, &fkd);
        I("moe_layer_freq", 0, 1, &freq);
        I("n_group", 0, 0, &c->n_group);
        I("topk_group", 0, 0, &c->topk_group);
        if (cfg_bool(root, "norm_topk_prob", 0, &c->norm_topk_prob, path, err, errlen)) goto out;
        if (cfg_num(root, "routed_scaling_factor", 1.0, &rsf, path, err, errlen)) goto out;
        c->routed_scaling_factor = (float)rsf;
        c->shared_inter = shared_n > 0 ? shared_n * c->moe_inter : 0;
        const cJSON *tm = cJSON_GetObjectItemCaseSensitive(root, "topk_method");
        if (tm && !cJSON_IsNull(tm)) {
            if (!cJSON_IsString(tm) || (strcmp(tm->valuestring, "greedy") &&
                                        strcmp(tm->valuestring, "group_limited_greedy"))) {
                mr_set_err(err, errlen, "%s: topk_method must be \"greedy\" or "
                           "\"group_limited_greedy\"", path);
                goto out;
            }
            if (strcmp(tm->valuestring, "greedy") == 0) c->n_group = c->topk_group = 0;
        } else {
            c->n_group = c->topk_group = 0;
        }
        const cJSON *sf = cJSON_GetObjectItemCaseSensitive(root, "scoring_func");
        if (sf && !cJSON_IsNull(sf) && (!cJSON_IsString(sf) || strcmp(sf->valuestring, "softmax"))) {
            mr_set_err(err, errlen, "%s: scoring_func must be \"softmax\" (deepseek_v2)", path);
            goto out;
        }
        if (c->n_group > 0 && (c->experts % c->n_group != 0 || c->topk_group <= 0 ||
                               c->topk_group > c->n_group)) {
            mr_set_err(err, errlen, "%s: n_group/topk_group inconsistent with n_routed_experts",
                       path);
            goto out;
        }
        if (freq <= 0) freq = 1;
        /* HF DeepseekV2DecoderLayer: MoE iff experts and l >= first_k_dense_replace and l % freq == 0 */
        for (int l = 0; l < c->layers; l++)
            dense[l] = !(c->experts > 0 && l >= fkd && l % freq == 0);
    }
#undef I
    for (int l = 0; l < c->layers; l++) c->n_dense_layers += dense[l];
    if (c->n_dense_layers > 0 && c->dense_inter <= 0) {
        mr_set_err(err, errlen, "%s: dense layers need intermediate_size > 0", path);
        goto out;
    }
    if (c->n_dense_layers < c->layers &&
        (c->experts <= 0 || c->top_k <= 0 || c->top_k > c->experts || c->moe_inter <= 0)) {
        mr_set_err(err, errlen, "%s: need experts > 0, 0 < num_experts_per_tok <= experts "
                   "and an expert intermediate size > 0", path);
        goto out;
    }
    if (c->kv_heads <= 0 || c->heads % c->kv_heads != 0 || c->head_dim <= 0 ||
        c->head_dim % 2 != 0 || c->vocab <= 0 || c->max_position <= 0) {
        mr_set_err(err, errlen, "%s: inconsistent attention geometry (num_attention_heads %% "
                   "num_key_value_heads must be 0, head_dim even, vocab_size > 0)", path);
        goto out;
    }
    if (c->top_k > 64) {
        mr_set_err(err, errlen, "%s: num_experts_per_tok > 64 is not supported", path);
        goto out;
    }
    *dense_out = dense;
    dense = NULL;
    rc = 0;
out:
    free(dense);
    cJSON_Delete(root);
    return rc;
}

/* ---------- safetensors ---------- */

static size_t dtype_size(const char *dt)
{
    if (!strcmp(dt, "F32") || !strcmp(dt, "I32") || !strcmp(dt, "U32")) return 4;
    if (!strcmp(dt, "F16") || !strcmp(dt, "BF16") || !strcmp(dt, "I16") || !strcmp(dt, "U16")) return 2;
    if (!strcmp(dt, "F64") || !strcmp(dt, "I64") || !strcmp(dt, "U64")) return 8;
    if (!strcmp(dt, "I8") || !strcmp(dt, "U8") || !strcmp(dt, "BOOL") ||
        !strcmp(dt, "F8_E4M3") || !strcmp(dt, "F8_E5M2")) return 1;
    return 0;
}

static int add_tensors(struct mr_model *m, int fi, char *err, size_t errlen)
{
    struct mr_file *f = &m->files[fi];
    if (f->size < 8) {
        mr_set_err(err, errlen, "%s: truncated safetensors file (%zu bytes, no header)",
                   f->path, f->size);
        return -1;
    }
    uint64_t hlen = 0;
    const unsigned char *p = f->map;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > f->size - 8) {
        mr_set_err(err, errlen, "%s: truncated safetensors file (header says %llu bytes, "
                   "file has %zu)", f->path, (unsigned long long)hlen, f->size - 8);
        return -1;
    }
    f->data = p + 8 + hlen;
    f->data_size = f->size - 8 - hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, hlen);
    if (!root || !cJSON_IsObject(root)) {
        mr_set_err(err, errlen, "%s: safetensors header is not a JSON object", f->path);
        cJSON_Delete(root);
        return -1;
    }
    int rc = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!strcmp(it->string, "__metadata__")) continue;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
            cJSON_GetArraySize(off) != 2 || cJSON_GetArraySize(sh) > 8) {
            mr_set_err(err, errlen, "%s: tensor %s: malformed header entry", f->path, it->string);
            goto out;
        }
        size_t esz = dtype_size(dt->valuestring);
        if (!esz) {
            mr_set_err(err, errlen, "%s: tensor %s: unknown dtype %s", f->path, it->string,
                       dt->valuestring);
            goto out;
        }
        struct mr_tensor t = {0};
        snprintf(t.dtype, sizeof t.dtype, "%s", dt->valuestring);
        t.ndim = cJSON_GetArraySize(sh);
        double numel = 1;
        const cJSON *d;
        int i = 0;
        cJSON_ArrayForEach(d, sh) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12) {
                mr_set_err(err, errlen, "%s: tensor %s: bad shape", f->path, it->string);
                goto out;
            }
            t.shape[i++] = (int64_t)d->valuedouble;
            numel *= d->valuedouble;
        }
        double b = cJSON_GetArrayItem(off, 0)->valuedouble;
        double e = cJSON_GetArrayItem(off, 1)->valuedouble;
        if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) || b < 0 || e < b) {
            mr_set_err(err, errlen, "%s: tensor %s: bad data_offsets", f->path, it->string);
            goto out;
        }
        if (e > (double)f->data_size) {
            mr_set_err(err, errlen, "%s: truncated safetensors file: tensor %s ends at byte "
                       "%.0f of the data section, which has only %zu bytes", f->path,
                       it->string, e, f->data_size);
            goto out;
        }
        if (e - b != numel * (double)esz) {
            mr_set_err(err, errlen, "%s: tensor %s: data_offsets span %.0f bytes but shape "
                       "and dtype need %.0f", f->path, it->string, e - b, numel * (double)esz);
            goto out;
        }
        t.nbytes = (size_t)(e - b);
        t.ptr = f->data + (size_t)b;
        t.file = fi;
        t.file_offset = (size_t)(8 + hlen + (size_t)b);
        t.name = strdup(it->string);
        if (!t.name) { mr_set_err(err, errlen, "out of memory"); goto out; }
        struct mr_tensor *nt = realloc(m->tensors, (size_t)(m->ntensors + 1) * sizeof *nt);
        if (!nt) { free(t.name); mr_set_err(err, errlen, "out of memory"); goto out; }
        m->tensors = nt;
        m->tensors[m->ntensors++] = t;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const struct mr_tensor *)a)->name, ((const struct mr_tensor *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int map_files(struct mr_model *m, const char *dir, char *err, size_t errlen)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        mr_set_err(err, errlen, "%s: cannot open model directory: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l > 12 && !strcmp(de->d_name + l - 12, ".safetensors")) {
            char **nn = realloc(names, (size_t)(n + 1) * sizeof *nn);
            if (!nn) break;
            names = nn;
            names[n] = strdup(de->d_name);
            if (names[n]) n++;
        }
    }
    closedir(dp);
    if (n == 0) {
        mr_set_err(err, errlen, "%s: no *.safetensors file in the model directory", dir);
        free(names);
        return -1;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int rc = -1;
    m->files = calloc((size_t)n, sizeof *m->files);
    if (!m->files) { mr_set_err(err, errlen, "out of memory"); goto out; }
    for (int i = 0; i < n; i++) {
        struct mr_file *f = &m->files[i];
        size_t pl = strlen(dir) + strlen(names[i]) + 2;
        f->path = malloc(pl);
        if (!f->path) { mr_set_err(err, errlen, "out of memory"); goto out; }
        snprintf(f->path, pl, "%s/%s", dir, names[i]);
        m->nfiles = i + 1;
        int fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            mr_set_err(err, errlen, "%s: cannot open: %s", f->path, strerror(errno));
            goto out;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            mr_set_err(err, errlen, "%s: not a regular file", f->path);
            close(fd);
            goto out;
        }
        f->size = (size_t)st.st_size;
        if (f->size > 0) {
            /* MAP_POPULATE: fault the pages in now, so steps do not pay page faults. */
            f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
            if (f->map == MAP_FAILED) {
                f->map = NULL;
                mr_set_err(err, errlen, "%s: mmap failed: %s", f->path, strerror(errno));
                close(fd);
                goto out;
            }
        }
        close(fd);
        if (add_tensors(m, i, err, errlen)) goto out;
    }
    qsort(m->tensors, (size_t)m->ntensors, sizeof *m->tensors, cmp_tensor);
    for (int i = 1; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i - 1].name, m->tensors[i].name)) {
            mr_set_err(err, errlen, "%s: tensor %s appears twice", dir, m->tensors[i].name);
            goto out;
        }
    rc = 0;
out:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static const struct mr_tensor *find_tensor(const struct mr_model *m, const char *name)
{
    struct mr_tensor key = { .name = (char *)name };
    return bsearch(&key, m->tensors, (size_t)m->ntensors, sizeof key, cmp_tensor);
}

/* Looks up an F32 tensor of shape [d0] or [d0, d1] (d1 < 0: 1-D). */
static const float *need(struct mr_model *m, const char *name, int64_t d0, int64_t d1,
                         char *err, size_t errlen)
{
    const struct mr_tensor *t = find_tensor(m, name);
    int ndim = d1 < 0 ? 1 : 2;
    if (!t) {
        mr_set_err(err, errlen, "%s: missing tensor %s", m->dir, name);
        return NULL;
    }
    if (strcmp(t->dtype, "F32")) {
        mr_set_err(err, errlen, "%s: tensor %s has dtype %s; moe-ref reads F32 only",
                   m->files[t->file].path, name, t->dtype);
        return NULL;
    }
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char got[128] = "", *p = got;
        for (int i = 0; i < t->ndim && p < got + sizeof got - 24; i++)
            p += sprintf(p, "%s%lld", i ? "," : "", (long long)t->shape[i]);
        if (ndim == 1)
            mr_set_err(err, errlen, "%s: tensor %s has wrong shape [%s], expected [%lld]",
                       m->files[t->file].path, name, got, (long long)d0);
        else
            mr_set_err(err, errlen, "%s: tensor %s has wrong shape [%s], expected [%lld,%lld]",
                       m->files[t->file].path, name, got, (long long)d0, (long long)d1);
        return NULL;
    }
    if (((uintptr_t)t->ptr & 3u) != 0) {
        mr_set_err(err, errlen, "%s: tensor %s data is not 4-byte aligned",
                   m->files[t->file].path, name);
        return NULL;
    }
    m->weight_bytes += t->nbytes;
    return t->ptr;
}

static int bind_weights(struct mr_model *m, const int *dense, char *err, size_t errlen)
{
    const struct mr_config *c = &m->cfg;
    int64_t d = c->hidden, qd = (int64_t)c->heads * c->head_dim;
    int64_t kvd = (int64_t)c->kv_heads * c->head_dim;
    char n[256];
#define NEED(dst, d0, d1) do { if (!((dst) = need(m, n, d0, d1, err, errlen))) return -1; } while (0)
    snprintf(n, sizeof n, "model.embed_tokens.weight");
    NEED(m->embed, c->vocab, d);
    snprintf(n, sizeof n, "model.norm.weight");
    NEED(m->final_norm, d, -1);
    snprintf(n, sizeof n, "lm_head.weight");
    if (!find_tensor(m, n) && m->embed) {
        /* tie_word_embeddings checkpoints leave lm_head out */
        m->lm_head = m->embed;
    } else {
        NEED(m->lm_head, c->vocab, d);
    }
    m->lw = calloc((size_t)c->layers, sizeof *m->lw);
    if (!m->lw) { mr_set_err(err, errlen, "out of memory"); return -1; }
    const char *mlp = c->arch == MR_ARCH_MIXTRAL ? "block_sparse_moe" : "mlp";
    for (int l = 0; l < c->layers; l++) {
        struct mr_layer_w *w = &m->lw[l];
        w->dense = dense[l];
#define LN(fmt, ...) snprintf(n, sizeof n, "model.layers.%d." fmt, l, ##__VA_ARGS__)
        LN("input_layernorm.weight");          NEED(w->attn_norm, d, -1);
        LN("post_attention_layernorm.weight"); NEED(w->ffn_norm, d, -1);
        LN("self_attn.q_proj.weight"); NEED(w->q, qd, d);
        LN("self_attn.k_proj.weight"); NEED(w->k, kvd, d);
        LN("self_attn.v_proj.weight"); NEED(w->v, kvd, d);
        LN("self_attn.o_proj.weight"); NEED(w->o, d, qd);
        if (w->dense) {
            LN("mlp.gate_proj.weight"); NEED(w->gate, c->dense_inter, d);
            LN("mlp.up_proj.weight");   NEED(w->up, c->dense_inter, d);
            LN("mlp.down_proj.weight"); NEED(w->down, d, c->dense_inter);
            continue;
        }
        LN("%s.gate.weight", mlp); NEED(w->router, c->experts, d);
        w->eg = calloc((size_t)c->experts * 3, sizeof *w->eg);
        if (!w->eg) { mr_set_err(err, errlen, "out of memory"); return -1; }
        w->eu = w->eg + c->experts;
        w->ed = w->eu + c->experts;
        int f = c->moe_inter;
        for (int e = 0; e < c->experts; e++) {
            if (c->arch == MR_ARCH_MIXTRAL) {
                LN("block_sparse_moe.experts.%d.w1.weight", e); NEED(w->eg[e], f, d);
                LN("block_sparse_moe.experts.%d.w3.weight", e); NEED(w->eu[e], f, d);
                LN("block_sparse_moe.experts.%d.w2.weight", e); NEED(w->ed[e], d, f);
            } else {
                LN("mlp.experts.%d.gate_proj.weight", e); NEED(w->eg[e], f, d);
                LN("mlp.experts.%d.up_proj.weight", e);   NEED(w->eu[e], f, d);
                LN("mlp.experts.%d.down_proj.weight", e); NEED(w->ed[e], d, f);
            }
        }
        if (c->shared_inter > 0) {
            const char *se = c->arch == MR_ARCH_QWEN2_MOE ? "shared_expert" : "shared_experts";
            LN("mlp.%s.gate_proj.weight", se); NEED(w->sg, c->shared_inter, d);
            LN("mlp.%s.up_proj.weight", se);   NEED(w->su, c->shared_inter, d);
            LN("mlp.%s.down_proj.weight", se); NEED(w->sd, d, c->shared_inter);
            if (c->shared_gate) {
                LN("mlp.shared_expert_gate.weight"); NEED(w->sgate, 1, d);
            }
        }
#undef LN
    }
#undef NEED
    return 0;
}

mr_model *mr_model_load(const char *dir, char *err, size_t errlen)
{
    mr_model *m = calloc(1, sizeof *m);
    int *dense = NULL;
    if (!m || !(m->dir = strdup(dir))) {
        mr_set_err(err, errlen, "out of memory");
        free(m);
        return NULL;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        mr_set_err(err, errlen, "%s: model directory not found", dir);
        goto fail;
    }
    if (parse_config(m, dir, &dense, err, errlen)) goto fail;
    if (map_files(m, dir, err, errlen)) goto fail;
    if (bind_weights(m, dense, err, errlen)) goto fail;
    free(dense);
    return m;
fail:
    free(dense);
    mr_model_free(m);
    return NULL;
}

void mr_model_free(mr_model *m)
{
    if (!m) return;
    if (m->lw)
        for (int l = 0; l < m->cfg.layers; l++) free(m->lw[l].eg);
    free(m->lw);
    for (int i = 0; i < m->ntensors; i++) free(m->tensors[i].name);
    free(m->tensors);
    for (int i = 0; i < m->nfiles; i++) {
        if (m->files[i].map) munmap(m->files[i].map, m->files[i].size);
        free(m->files[i].path);
    }
    free(m->files);
    free(m->dir);
    free(m);
}

const struct mr_config *mr_model_config(const mr_model *m) { return &m->cfg; }

int mr_model_layer_is_dense(const mr_model *m, int layer)
{
    return layer >= 0 && layer < m->cfg.layers && m->lw[layer].dense;
}
