/* config.json + safetensors-header reader for `moecap report` (see model.h). Field names
 * follow the Hugging Face transformers configuration classes of each architecture; a
 * missing required field is an error naming every missing field, never a guess. */
#include "report/model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unistd.h>
#include "moecap/trace_facts.h"
#include "report/model_gguf.h"
#include "trace/safe_file.h"

void mc_model_seterr(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

static int dtype_from_torch(const char *s)
{
    if (!s) return MC_DT_UNKNOWN;
    if (!strncmp(s, "torch.", 6)) s += 6;
    if (!strcmp(s, "float32") || !strcmp(s, "float")) return MC_DT_F32;
    if (!strcmp(s, "bfloat16")) return MC_DT_BF16;
    if (!strcmp(s, "float16") || !strcmp(s, "half")) return MC_DT_F16;
    if (!strcmp(s, "float64")) return MC_DT_F64;
    if (!strcmp(s, "float8_e4m3fn")) return MC_DT_F8E4M3;
    if (!strcmp(s, "float8_e5m2")) return MC_DT_F8E5M2;
    return MC_DT_UNKNOWN;
}

/* A JSON number as an integer in [lo, hi]: 1 and *v set, 0 when it is not a number or out of
 * range (a double outside int64 must not reach a cast: that is undefined behaviour). */
static int json_int_in(const cJSON *x, double lo, double hi, int64_t *v)
{
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi)) return 0;
    *v = (int64_t)x->valuedouble;
    return 1;
}

/* Model dimensions above this are refused as absurd: it keeps every product of two of them
 * (d x f, d x vocab, layers x heads x head_dim ...) far inside int64. */
#define MODEL_MAX_DIM (double)(1 << 24)

/* Integer field: returns 1 and sets *v when present as a number within +-MODEL_MAX_DIM, 0 when
 * absent, null or out of range. */
static int get_int(const cJSON *o, const char *name, int64_t *v)
{
    return json_int_in(cJSON_GetObjectItemCaseSensitive(o, name), -MODEL_MAX_DIM, MODEL_MAX_DIM, v);
}

struct missing { char names[512]; int n; };
static void need(const cJSON *o, const char *name, int64_t *v, struct missing *ms)
{
    if (get_int(o, name, v) && *v > 0) return;
    size_t len = strlen(ms->names);
    snprintf(ms->names + len, sizeof ms->names - len, "%s%s", ms->n ? ", " : "", name);
    ms->n++;
}

int mc_model_parse_config(const char *text, struct mc_model *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    cJSON *c = cJSON_Parse(text);
    if (!c || !cJSON_IsObject(c)) {
        mc_model_seterr(err, errlen, "config.json is not a JSON object");
        cJSON_Delete(c);
        return -1;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    if (!type) {
        /* fall back to architectures[0] */
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "architectures");
        const cJSON *a0 = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
        if (cJSON_IsString(a0)) {
            const char *s = a0->valuestring;
            if (!strncmp(s, "Mixtral", 7)) type = "mixtral";
            else if (!strncmp(s, "Qwen2Moe", 8)) type = "qwen2_moe";
            else if (!strncmp(s, "Qwen3Moe", 8)) type = "qwen3_moe";
            else if (!strncmp(s, "DeepseekV2", 10)) type = "deepseek_v2";
            else if (!strncmp(s, "DeepseekV3", 10)) type = "deepseek_v3";
            else if (!strncmp(s, "Olmoe", 5)) type = "olmoe";
        }
    }
    static const struct { const char *n; enum mc_arch a; } archs[] = {
        {"mixtral", MC_ARCH_MIXTRAL}, {"qwen2_moe", MC_ARCH_QWEN2_MOE},
        {"qwen3_moe", MC_ARCH_QWEN3_MOE}, {"deepseek_v2", MC_ARCH_DEEPSEEK_V2},
        {"deepseek_v3", MC_ARCH_DEEPSEEK_V3}, {"olmoe", MC_ARCH_OLMOE}};
    for (size_t i = 0; type && i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(type, archs[i].n)) { m->arch = archs[i].a; snprintf(m->arch_name, sizeof m->arch_name, "%s", archs[i].n); }
    if (!m->arch) {
        mc_model_seterr(err, errlen, "unsupported model architecture '%s' (config.json \"model_type\"); "
               "supported: mixtral, qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3, olmoe",
               type ? type : "(missing model_type and architectures)");
        cJSON_Delete(c);
        return -1;
    }
    snprintf(m->model_type, sizeof m->model_type, "%s", type);

    struct missing ms = {{0}, 0};
    need(c, "hidden_size", &m->d, &ms);
    need(c, "num_hidden_layers", &m->layers, &ms);
    need(c, "num_attention_heads", &m->heads, &ms);
    need(c, "vocab_size", &m->vocab, &ms);
    need(c, "num_experts_per_tok", &m->top_k, &ms);
    if (!get_int(c, "num_key_value_heads", &m->kv_heads) || m->kv_heads <= 0) m->kv_heads = m->heads;
    switch (m->arch) {
    case MC_ARCH_MIXTRAL:
        need(c, "num_local_experts", &m->experts, &ms);
        need(c, "intermediate_size", &m->f, &ms);
        break;
    case MC_ARCH_OLMOE:
        need(c, "num_experts", &m->experts, &ms);
        need(c, "intermediate_size", &m->f, &ms);
        m->qk_norm = 1;
        break;
    case MC_ARCH_QWEN2_MOE: case MC_ARCH_QWEN3_MOE:
        need(c, "num_experts", &m->experts, &ms);
        need(c, "moe_intermediate_size", &m->f, &ms);
        get_int(c, "intermediate_size", &m->fd);
        if (m->arch == MC_ARCH_QWEN2_MOE) {
            get_int(c, "shared_expert_intermediate_size", &m->fs);
            if (m->fs > 0) { m->n_shared = 1; m->shared_gate = 1; }
        } else {
            m->qk_norm = 1;
        }
        break;
    case MC_ARCH_DEEPSEEK_V2: case MC_ARCH_DEEPSEEK_V3:
        need(c, "n_routed_experts", &m->experts, &ms);
        need(c, "moe_intermediate_size", &m->f, &ms);
        get_int(c, "intermediate_size", &m->fd);
        get_int(c, "n_shared_experts", &m->n_shared);
        if (m->n_shared > 0) m->fs = m->n_shared * m->f;
        get_int(c, "n_group", &m->n_group);
        get_int(c, "topk_group", &m->topk_group);
        {
            const cJSON *tm = cJSON_GetObjectItemCaseSensitive(c, "topk_method");
            if (cJSON_IsString(tm) && !strcmp(tm->valuestring, "greedy")) m->n_group = 0;
        }
        get_int(c, "kv_lora_rank", &m->kv_lora_rank);
        if (m->kv_lora_rank > 0) {
            get_int(c, "q_lora_rank", &m->q_lora_rank);
            need(c, "qk_rope_head_dim", &m->qk_rope_dim, &ms);
            need(c, "qk_nope_head_dim", &m->qk_nope_dim, &ms);
            need(c, "v_head_dim", &m->v_head_dim, &ms);
        }
        break;
    }
    if (ms.n) {
        mc_model_seterr(err, errlen, "config.json (model_type %s) lacks required field%s: %s (positive integers up to 2^24)",
               m->model_type, ms.n > 1 ? "s" : "", ms.names);
        cJSON_Delete(c);
        return -1;
    }
    if (!get_int(c, "head_dim", &m->head_dim) || m->head_dim <= 0) m->head_dim = m->d / m->heads;
    if (m->layers > MC_MODEL_MAX_LAYERS) {
        mc_model_seterr(err, errlen, "num_hidden_layers = %lld exceeds the supported %d",
               (long long)m->layers, MC_MODEL_MAX_LAYERS);
        cJSON_Delete(c);
        return -1;
    }
    if (m->experts > MC_MODEL_MAX_EXPERTS) {   /* per-thread state is layers x experts */
        mc_model_seterr(err, errlen, "%lld routed experts exceed the supported %d", (long long)m->experts, MC_MODEL_MAX_EXPERTS);
        cJSON_Delete(c);
        return -1;
    }
    if (m->top_k > m->experts) {
        mc_model_seterr(err, errlen, "num_experts_per_tok (%lld) > number of experts (%lld)",
               (long long)m->top_k, (long long)m->experts);
        cJSON_Delete(c);
        return -1;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    m->tie_embeddings = cJSON_IsTrue(tie);

    /* Which layers are MoE. */
    int64_t step = 1, first_dense = 0, freq = 1;
    for (int64_t l = 0; l < m->layers; l++) m->is_moe[l] = 1;
    if (m->arch == MC_ARCH_QWEN2_MOE || m->arch == MC_ARCH_QWEN3_MOE) {
        if (get_int(c, "decoder_sparse_step", &step) && step > 1)
            for (int64_t l = 0; l < m->layers; l++) m->is_moe[l] = ((l + 1) % step == 0);
        const cJSON *mlp_only = cJSON_GetObjectItemCaseSensitive(c, "mlp_only_layers");
        const cJSON *it;
        cJSON_ArrayForEach(it, mlp_only)
            if (cJSON_IsNumber(it) && it->valueint >= 0 && it->valueint < m->layers)
                m->is_moe[it->valueint] = 0;
    } else if (m->arch == MC_ARCH_DEEPSEEK_V2 || m->arch == MC_ARCH_DEEPSEEK_V3) {
        get_int(c, "first_k_dense_replace", &first_dense);
        if (!get_int(c, "moe_layer_freq", &freq) || freq < 1) freq = 1;
        for (int64_t l = 0; l < m->layers; l++)
            m->is_moe[l] = (l >= first_dense && l % freq == 0);
    }
    int64_t dense_layers = 0;
    for (int64_t l = 0; l < m->layers; l++) {
        m->n_moe_layers += m->is_moe[l];
        dense_layers += !m->is_moe[l];
    }
    if (dense_layers > 0 && m->fd <= 0) {
        mc_model_seterr(err, errlen, "config.json has %lld dense (non-MoE) layers but no intermediate_size "
               "for them", (long long)dense_layers);
        cJSON_Delete(c);
        return -1;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(c, "torch_dtype");
    if (!cJSON_IsString(dt)) dt = cJSON_GetObjectItemCaseSensitive(c, "dtype");
    m->weight_dtype = cJSON_IsString(dt) ? dtype_from_torch(dt->valuestring) : MC_DT_UNKNOWN;
    m->elt = mc_dtype_bytes(m->weight_dtype);
    cJSON_Delete(c);
    return 0;
}

/* Reads one safetensors header; appends its tensors. Returns 0, -1 on a bad header. */
static int load_safetensors(struct mc_model *m, const char *path, char *err, size_t errlen)
{
    int fd = mc_open_regular(path);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        mc_model_seterr(err, errlen, "%s: %s", path, errno == EINVAL ? "not a regular file" : strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    unsigned char lenb[8];
    uint64_t hlen = 0;
    struct stat st;
    if (fread(lenb, 1, 8, f) != 8 || fstat(fileno(f), &st) != 0) {
        fclose(f);
        mc_model_seterr(err, errlen, "%s: too short for a safetensors file", path);
        return -1;
    }
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lenb[i];
    if (hlen == 0 || hlen > (100u << 20) || hlen + 8 > (uint64_t)st.st_size) {
        fclose(f);
        mc_model_seterr(err, errlen, "%s: bad safetensors header length %llu", path, (unsigned long long)hlen);
        return -1;
    }
    char *h = malloc(hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen) { free(h); fclose(f); mc_model_seterr(err, errlen, "%s: cannot read header", path); return -1; }
    h[hlen] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(h);
    free(h);
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); mc_model_seterr(err, errlen, "%s: header is not JSON", path); return -1; }
    cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!strcmp(it->string, "__metadata__")) continue;
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        if (cJSON_GetArraySize(offs) != 2) continue;
        struct mc_st_tensor *nt = realloc(m->tensors, (m->n_tensors + 1) * sizeof *nt);
        if (!nt) break;
        m->tensors = nt;
        struct mc_st_tensor *t = &m->tensors[m->n_tensors++];
        memset(t, 0, sizeof *t);
        t->name = strdup(it->string);
        t->path = strdup(path);
        int64_t b = 0, e = 0;
        json_int_in(cJSON_GetArrayItem(offs, 0), 0, (double)st.st_size, &b);
        json_int_in(cJSON_GetArrayItem(offs, 1), 0, (double)st.st_size, &e);
        t->file_begin = 8 + hlen + (uint64_t)b;
        t->file_end = 8 + hlen + (uint64_t)e;
        t->dtype = cJSON_IsString(dt) ? mc_dtype_from_safetensors(dt->valuestring) : 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, shape) {
            int64_t v = 0;
            json_int_in(s, 0, 9e18, &v);
            if (t->ndim < 8) t->shape[t->ndim++] = v;
        }
    }
    cJSON_Delete(j);
    return 0;
}

int mc_model_load(const char *path, struct mc_model *m, char *err, size_t errlen)
{
    struct stat st;
    char cfg[1024], dir[1024];
    size_t pl = strlen(path);
    if (pl > 5 && !strcmp(path + pl - 5, ".gguf")) return mc_model_load_gguf(path, m, err, errlen);
    if (stat(path, &st) != 0) {
        memset(m, 0, sizeof *m);
        mc_model_seterr(err, errlen, "--model %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
    } else {
        snprintf(cfg, sizeof cfg, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    }
    char *text = mc_read_file(cfg, 64u << 20, NULL);
    if (!text) {
        memset(m, 0, sizeof *m);
        mc_model_seterr(err, errlen, "cannot read %s: %s", cfg, errno == EINVAL ? "not a regular file" : strerror(errno));
        return -1;
    }
    int rc = mc_model_parse_config(text, m, err, errlen);
    free(text);
    if (rc) return rc;
    snprintf(m->path, sizeof m->path, "%s", cfg);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) {
                char p[2048];
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                char e2[256];
                if (load_safetensors(m, p, e2, sizeof e2) != 0)
                    fprintf(stderr, "moecap report: warning: %s (tensor names from it unavailable)\n", e2);
            }
        }
        closedir(d);
    }
    /* Weight dtype: safetensors beat config (they are what is stored). */
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, "proj") && m->tensors[i].dtype) {
            m->weight_dtype = m->tensors[i].dtype;
            m->elt = mc_dtype_bytes(m->weight_dtype);
            break;
        }
    return 0;
}

void mc_model_free(struct mc_model *m)
{
    for (size_t i = 0; m->tensors && i < m->n_tensors; i++) {
        free(m->tensors[i].name);
        /* tensors of one file may share one path string (model_gguf.c): freed once */
        if (!i || m->tensors[i].path != m->tensors[i - 1].path) free(m->tensors[i].path);
    }
    free(m->tensors);
    m->tensors = NULL;
    m->n_tensors = 0;
}

int64_t mc_model_attn_params(const struct mc_model *m)
{
    if (m->kv_lora_rank > 0) {
        int64_t qd = m->qk_nope_dim + m->qk_rope_dim;
        int64_t q = m->q_lora_rank > 0 ? m->d * m->q_lora_rank + m->q_lora_rank * m->heads * qd
                                       : m->d * m->heads * qd;
        return q + m->d * (m->kv_lora_rank + m->qk_rope_dim)
               + m->kv_lora_rank * m->heads * (m->qk_nope_dim + m->v_head_dim)
               + m->heads * m->v_head_dim * m->d;
    }
    return m->d * m->heads * m->head_dim + 2 * m->d * m->kv_heads * m->head_dim
           + m->heads * m->head_dim * m->d;
}

int64_t mc_model_expert_params(const struct mc_model *m) { return 3 * m->d * m->f; }
int64_t mc_model_shared_params(const struct mc_model *m) { return 3 * m->d * m->fs; }

int64_t mc_model_norm_params(const struct mc_model *m)
{
    int64_t n = 2 * m->d;
    if (m->arch == MC_ARCH_QWEN3_MOE) n += 2 * m->head_dim;
    if (m->arch == MC_ARCH_OLMOE) n += m->heads * m->head_dim + m->kv_heads * m->head_dim;
    if (m->kv_lora_rank > 0) n += m->kv_lora_rank + (m->q_lora_rank > 0 ? m->q_lora_rank : 0);
    return n;
}

int64_t mc_model_kv_elems_per_token(const struct mc_model *m)
{
    /* MLA engines (vLLM/SGLang) cache the compressed latent + rope key. */
    if (m->kv_lora_rank > 0) return m->kv_lora_rank + m->qk_rope_dim;
    return 2 * m->kv_heads * m->head_dim;
}
