/* Model geometry for `moecap report`: read from a Hugging Face config.json (Mixtral,
 * Qwen2-MoE, Qwen3-MoE, DeepSeek-V2/V3, OLMoE field names) plus, when the model
 * directory holds them, the safetensors headers (tensor names, dtypes, file offsets), which
 * the attributor uses to name GEMM weight operands. */
#ifndef MOECAP_REPORT_MODEL_H
#define MOECAP_REPORT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "moecap/trace_facts.h"

enum mc_arch {
    MC_ARCH_MIXTRAL = 1, MC_ARCH_QWEN2_MOE, MC_ARCH_QWEN3_MOE,
    MC_ARCH_DEEPSEEK_V2, MC_ARCH_DEEPSEEK_V3, MC_ARCH_OLMOE
};

#define MC_MODEL_MAX_LAYERS 1024
#define MC_MODEL_MAX_EXPERTS 4096   /* routed experts per layer (router-logit taps decode at most this) */

/* One tensor of a safetensors file: data at [file_begin, file_end) of `path`. */
struct mc_st_tensor {
    char *name;
    char *path;         /* absolute or as given; matched by base name against the trace */
    uint64_t file_begin, file_end;
    int64_t shape[8];
    int ndim;
    int dtype;          /* enum mc_dtype */
};

struct mc_model {
    enum mc_arch arch;
    char arch_name[32];     /* "mixtral", ... */
    char model_type[64];    /* config.json model_type */
    char path[1024];        /* config.json used */
    int64_t d;              /* hidden_size */
    int64_t layers;         /* num_hidden_layers */
    int64_t heads, kv_heads, head_dim;
    int64_t vocab;
    int64_t experts;        /* routed experts per MoE layer */
    int64_t top_k;
    int64_t f;              /* routed expert intermediate */
    int64_t fd;             /* dense FFN intermediate (0 = no dense layer) */
    int64_t fs;             /* total shared-expert intermediate (0 = none) */
    int64_t n_shared;       /* shared experts (qwen2_moe: 1 when fs > 0) */
    int shared_gate;        /* qwen2_moe: sigmoid shared_expert_gate (d -> 1) */
    int tie_embeddings;
    int qk_norm;            /* qwen3_moe / olmoe: q_norm, k_norm weights */
    /* MLA attention (deepseek with kv_lora_rank); 0 = standard GQA */
    int64_t q_lora_rank, kv_lora_rank, qk_rope_dim, qk_nope_dim, v_head_dim;
    /* DeepSeek group-limited routing (0 = plain top-k) */
    int64_t n_group, topk_group;
    unsigned char is_moe[MC_MODEL_MAX_LAYERS]; /* per layer: 1 = MoE layer */
    int64_t n_moe_layers;
    int weight_dtype;       /* enum mc_dtype from torch_dtype/dtype (config) */
    int elt;                /* bytes per element of weight_dtype */
    int from_gguf;          /* described by a GGUF file (model_gguf.c) */
    /* safetensors headers found next to config.json (or a GGUF file's tensor table) */
    struct mc_st_tensor *tensors;
    size_t n_tensors;
};

/* Load `path` (a directory holding config.json, or a config.json file). Returns 0, or -1
 * with a message naming the problem (unknown architecture, missing fields...) in err. */
int mc_model_load(const char *path, struct mc_model *m, char *err, size_t errlen);
/* Parse config.json text (no safetensors); for tests. */
int mc_model_parse_config(const char *json_text, struct mc_model *m, char *err, size_t errlen);
void mc_model_free(struct mc_model *m);
/* printf into err: the loaders' (model.c, model_gguf.c) error messages. */
void mc_model_seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Bytes of one element of an mc_dtype (0 = unknown). */

/* Parameter counts (elements). */
int64_t mc_model_attn_params(const struct mc_model *m);      /* per layer, GEMM weights */
int64_t mc_model_expert_params(const struct mc_model *m);    /* one routed expert */
/* Bytes per weight element: `elt` (what the GEMMs read, 0 = unknown), else the model's
 * (config/safetensors dtype), else 4 (f32, the reference engine's default). */
static inline int mc_model_elt(const struct mc_model *m, int elt) { return elt ? elt : m->elt ? m->elt : 4; }
int64_t mc_model_shared_params(const struct mc_model *m);    /* all shared experts, one layer */
int64_t mc_model_norm_params(const struct mc_model *m);      /* per layer, non-GEMM vectors */
int64_t mc_model_kv_elems_per_token(const struct mc_model *m); /* per layer */

#endif
