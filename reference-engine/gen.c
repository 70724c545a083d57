/* `moe-ref gen`: writes a synthetic Hugging Face style MoE model directory (config.json
 * with the real field names of mixtral / qwen2_moe / deepseek_v2, model.safetensors F32
 * with the real tensor names). Weights are uniform random, seeded per tensor from
 * (--seed, tensor name), so the same arguments always give the same bytes; they are
 * scaled (std 1/sqrt(fan_in), router std 2/sqrt(d)) so activations stay O(1) and routing
 * is decisive yet different for different tokens. */
#include "internal.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct gen_opts {
    enum mr_arch arch;
    const char *out;
    long layers, hidden, moe_inter, experts, top_k, shared, dense_layers, inter, heads,
        kv_heads, vocab, max_pos;
    unsigned long long seed;
    int norm_topk;               /* -1 = architecture default */
    double scaling;              /* deepseek routed_scaling_factor */
    long n_group, topk_group;    /* deepseek group_limited_greedy when n_group > 0 */
};

struct gen_tensor {
    char name[128];
    int64_t d0, d1;              /* d1 < 0: vector */
    double a;                    /* uniform half-width; < 0: norm weight 1 +- 0.1 */
};

struct gen_list { struct gen_tensor *t; int n, cap; };

static int add(struct gen_list *l, int64_t d0, int64_t d1, double std, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int add(struct gen_list *l, int64_t d0, int64_t d1, double std, const char *fmt, ...)
{
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 64;
        struct gen_tensor *nt = realloc(l->t, (size_t)nc * sizeof *nt);
        if (!nt) return -1;
        l->t = nt;
        l->cap = nc;
    }
    struct gen_tensor *t = &l->t[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->d0 = d0;
    t->d1 = d1;
    t->a = std < 0 ? -1 : std * sqrt(3.0);
    return 0;
}

static int is_dense_layer(const struct gen_opts *o, long l)
{
    return o->arch != MR_ARCH_MIXTRAL && l < o->dense_layers;
}

static long shared_inter(const struct gen_opts *o)
{
    return o->arch == MR_ARCH_MIXTRAL ? 0 : o->shared * o->moe_inter;
}

static int build_list(const struct gen_opts *o, struct gen_list *L)
{
    int64_t d = o->hidden, hd = o->hidden / o->heads, qd = o->heads * hd, kvd = o->kv_heads * hd;
    int64_t f = o->moe_inter, fd = o->inter, fs = shared_inter(o);
    double sd = 1.0 / sqrt((double)d);
    int bad = 0;
    bad |= add(L, o->vocab, d, 1.0, "model.embed_tokens.weight");
    for (long l = 0; l < o->layers; l++) {
        const char *P = "model.layers.";
        bad |= add(L, d, -1, -1, "%s%ld.input_layernorm.weight", P, l);
        bad |= add(L, qd, d, sd, "%s%ld.self_attn.q_proj.weight", P, l);
        bad |= add(L, kvd, d, sd, "%s%ld.self_attn.k_proj.weight", P, l);
        bad |= add(L, kvd, d, sd, "%s%ld.self_attn.v_proj.weight", P, l);
        bad |= add(L, d, qd, 1.0 / sqrt((double)qd), "%s%ld.self_attn.o_proj.weight", P, l);
        bad |= add(L, d, -1, -1, "%s%ld.post_attention_layernorm.weight", P, l);
        if (is_dense_layer(o, l)) {
            bad |= add(L, fd, d, sd, "%s%ld.mlp.gate_proj.weight", P, l);
            bad |= add(L, fd, d, sd, "%s%ld.mlp.up_proj.weight", P, l);
            bad |= add(L, d, fd, 1.0 / sqrt((double)fd), "%s%ld.mlp.down_proj.weight", P, l);
            continue;
        }
        double sf = 1.0 / sqrt((double)f);
        if (o->arch == MR_ARCH_MIXTRAL) {
            bad |= add(L, o->experts, d, 2 * sd, "%s%ld.block_sparse_moe.gate.weight", P, l);
            for (long e = 0; e < o->experts; e++) {
                bad |= add(L, f, d, sd, "%s%ld.block_sparse_moe.experts.%ld.w1.weight", P, l, e);
                bad |= add(L, d, f, sf, "%s%ld.block_sparse_moe.experts.%ld.w2.weight", P, l, e);
                bad |= add(L, f, d, sd, "%s%ld.block_sparse_moe.experts.%ld.w3.weight", P, l, e);
            }
            continue;
        }
        bad |= add(L, o->experts, d, 2 * sd, "%s%ld.mlp.gate.weight", P, l);
        for (long e = 0; e < o->experts; e++) {
            bad |= add(L, f, d, sd, "%s%ld.mlp.experts.%ld.gate_proj.weight", P, l, e);
            bad |= add(L, f, d, sd, "%s%ld.mlp.experts.%ld.up_proj.weight", P, l, e);
            bad |= add(L, d, f, sf, "%s%ld.mlp.experts.%ld.down_proj.weight", P, l, e);
        }
        if (fs > 0) {
            const char *se = o->arch == MR_ARCH_QWEN2_MOE ? "shared_expert" : "shared_experts";
            bad |= add(L, fs, d, sd, "%s%ld.mlp.%s.gate_proj.weight", P, l, se);
            bad |= add(L, fs, d, sd, "%s%ld.mlp.%s.up_proj.weight", P, l, se);
            bad |= add(L, d, fs, 1.0 / sqrt((double)fs), "%s%ld.mlp.%s.down_proj.weight", P, l, se);
            if (o->arch == MR_ARCH_QWEN2_MOE)
                bad |= add(L, 1, d, sd, "%s%ld.mlp.shared_expert_gate.weight", P, l);
        }
    }
    bad |= add(L, d, -1, -1, "model.norm.weight");
    bad |= add(L, o->vocab, d, sd, "lm_head.weight");
    return bad ? -1 : 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ull; }
    return h;
}

static int write_config(const struct gen_opts *o, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    long hd = o->hidden / o->heads;
    int norm = o->norm_topk;
    fprintf(f, "{\n");
    if (o->arch == MR_ARCH_MIXTRAL) {
        fprintf(f, "  \"architectures\": [\"MixtralForCausalLM\"],\n  \"model_type\": \"mixtral\",\n"
                "  \"intermediate_size\": %ld,\n  \"num_local_experts\": %ld,\n"
                "  \"num_experts_per_tok\": %ld,\n  \"router_aux_loss_coef\": 0.02,\n"
                "  \"output_router_logits\": false,\n  \"sliding_window\": null,\n"
                "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 1000000.0,\n",
                o->moe_inter, o->experts, o->top_k);
    } else if (o->arch == MR_ARCH_QWEN2_MOE) {
        fprintf(f, "  \"architectures\": [\"Qwen2MoeForCausalLM\"],\n  \"model_type\": \"qwen2_moe\",\n"
                "  \"intermediate_size\": %ld,\n  \"moe_intermediate_size\": %ld,\n"
                "  \"shared_expert_intermediate_size\": %ld,\n  \"num_experts\": %ld,\n"
                "  \"num_experts_per_tok\": %ld,\n  \"norm_topk_prob\": %s,\n"
                "  \"decoder_sparse_step\": 1,\n  \"mlp_only_layers\": [",
                o->inter, o->moe_inter, shared_inter(o), o->experts, o->top_k,
                norm > 0 ? "true" : "false");
        for (long l = 0; l < o->dense_layers; l++) fprintf(f, "%s%ld", l ? ", " : "", l);
        fprintf(f, "],\n  \"router_aux_loss_coef\": 0.001,\n  \"output_router_logits\": false,\n"
                "  \"use_sliding_window\": false,\n  \"rms_norm_eps\": 1e-06,\n"
                "  \"rope_theta\": 1000000.0,\n");
    } else {
        fprintf(f, "  \"architectures\": [\"DeepseekV2ForCausalLM\"],\n  \"model_type\": \"deepseek_v2\",\n"
                "  \"intermediate_size\": %ld,\n  \"moe_intermediate_size\": %ld,\n"
                "  \"n_routed_experts\": %ld,\n  \"n_shared_experts\": %ld,\n"
                "  \"num_experts_per_tok\": %ld,\n  \"first_k_dense_replace\": %ld,\n"
                "  \"moe_layer_freq\": 1,\n  \"norm_topk_prob\": %s,\n"
                "  \"routed_scaling_factor\": %.17g,\n  \"scoring_func\": \"softmax\",\n"
                "  \"topk_method\": \"%s\",\n  \"n_group\": %ld,\n  \"topk_group\": %ld,\n"
                "  \"aux_loss_alpha\": 0.001,\n  \"seq_aux\": true,\n"
                "  \"moe_ref_attention\": \"gqa\",\n  \"rms_norm_eps\": 1e-06,\n"
                "  \"rope_theta\": 10000.0,\n",
                o->inter, o->moe_inter, o->experts, o->shared, o->top_k, o->dense_layers,
                norm > 0 ? "true" : "false", o->scaling,
                o->n_group > 0 ? "group_limited_greedy" : "greedy",
                o->n_group > 0 ? o->n_group : 1, o->n_group > 0 ? o->topk_group : 1);
    }
    fprintf(f, "  \"hidden_size\": %ld,\n  \"num_hidden_layers\": %ld,\n"
            "  \"num_attention_heads\": %ld,\n  \"num_key_value_heads\": %ld,\n"
            "  \"head_dim\": %ld,\n  \"vocab_size\": %ld,\n  \"max_position_embeddings\": %ld,\n"
            "  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": false,\n"
            "  \"attention_dropout\": 0.0,\n  \"initializer_range\": 0.02,\n"
            "  \"use_cache\": true,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n"
            "  \"torch_dtype\": \"float32\",\n  \"moe_ref_seed\": %llu\n}\n",
            o->hidden, o->layers, o->heads, o->kv_heads, hd, o->vocab, o->max_pos, o->seed);
    return fclose(f);
}

static int write_safetensors(const struct gen_opts *o, const struct gen_list *L, const char *path)
{
    /* header: JSON, padded with spaces (as safetensors allows) to a 64-byte boundary */
    size_t cap = 256 + (size_t)L->n * 256, n = 0;
    char *h = malloc(cap);
    if (!h) return -1;
    n += (size_t)snprintf(h + n, cap - n, "{\"__metadata__\":{\"format\":\"pt\",\"generator\":\"moe-ref gen\"}");
    uint64_t off = 0;
    for (int i = 0; i < L->n; i++) {
        const struct gen_tensor *t = &L->t[i];
        uint64_t bytes = (uint64_t)t->d0 * (uint64_t)(t->d1 < 0 ? 1 : t->d1) * 4u;
        if (t->d1 < 0)
            n += (size_t)snprintf(h + n, cap - n, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],"
                                  "\"data_offsets\":[%llu,%llu]}", t->name, (long long)t->d0,
                                  (unsigned long long)off, (unsigned long long)(off + bytes));
        else
            n += (size_t)snprintf(h + n, cap - n, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],"
                                  "\"data_offsets\":[%llu,%llu]}", t->name, (long long)t->d0,
                                  (long long)t->d1, (unsigned long long)off,
                                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    n += (size_t)snprintf(h + n, cap - n, "}");
    while ((8 + n) % 64) h[n++] = ' ';   /* data section cache-line aligned */
    FILE *f = fopen(path, "wb");
    if (!f) { free(h); return -1; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)n >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(h, 1, n, f);
    free(h);
    enum { CHUNK = 1 << 16 };
    float *buf = malloc(CHUNK * sizeof(float));
    if (!buf) { fclose(f); return -1; }
    for (int i = 0; i < L->n; i++) {
        const struct gen_tensor *t = &L->t[i];
        uint64_t st = o->seed ^ fnv1a(t->name);
        uint64_t numel = (uint64_t)t->d0 * (uint64_t)(t->d1 < 0 ? 1 : t->d1);
        for (uint64_t done = 0; done < numel;) {
            size_t c = numel - done < CHUNK ? (size_t)(numel - done) : CHUNK;
            for (size_t j = 0; j < c; j++) {
                /* 24 random bits -> uniform in [-1, 1) */
                float u = (float)(mr_splitmix64(&st) >> 40) * (1.0f / 8388608.0f) - 1.0f;
                buf[j] = t->a < 0 ? 1.0f + 0.1f * u : (float)t->a * u;
            }
            /* little-endian on every platform moe-ref targets (x86-64, aarch64) */
            fwrite(buf, sizeof(float), c, f);
            done += c;
        }
    }
    free(buf);
    int bad = ferror(f);
    return (fclose(f) || bad) ? -1 : 0;
}

static void gen_usage(FILE *f)
{
    fprintf(f,
        "usage: moe-ref gen --arch mixtral|qwen2_moe|deepseek_v2 --out DIR [options]\n"
        "  --layers N (2)  --hidden D (64)  --heads H (4)  --kv-heads HK (2)  --vocab V (256)\n"
        "  --experts E (8)  --top-k K (2)  --moe-intermediate F (32)\n"
        "  --shared-experts S   qwen2_moe: shared_expert_intermediate_size = S*F (default 1);\n"
        "                       deepseek_v2: n_shared_experts (default 2)\n"
        "  --dense-layers L0    leading dense layers (deepseek_v2 first_k_dense_replace,\n"
        "                       default 1; qwen2_moe mlp_only_layers, default 0)\n"
        "  --intermediate FD (128)  dense FFN size   --max-position P (4096)  --seed X (1)\n"
        "  --norm-topk-prob 0|1  --routed-scaling-factor R (deepseek_v2, default 1.0)\n"
        "  --n-group G --topk-group TG   deepseek_v2 group_limited_greedy routing\n");
}

int mr_parse_int(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "moe-ref: %s: expected an integer in [%ld, %ld], got \"%s\"\n",
                opt, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int mr_cmd_gen(int argc, char **argv)
{
    struct gen_opts o = { .layers = 2, .hidden = 64, .moe_inter = 32, .experts = 8, .top_k = 2,
                          .shared = -1, .dense_layers = -1, .inter = 128, .heads = 4,
                          .kv_heads = 2, .vocab = 256, .max_pos = 4096, .seed = 1,
                          .norm_topk = -1, .scaling = 1.0 };
    const char *arch = NULL;
    static const struct option lo[] = {
        {"arch", 1, 0, 'a'}, {"out", 1, 0, 'o'}, {"layers", 1, 0, 'l'}, {"hidden", 1, 0, 'd'},
        {"moe-intermediate", 1, 0, 'f'}, {"experts", 1, 0, 'e'}, {"top-k", 1, 0, 'k'},
        {"shared-experts", 1, 0, 's'}, {"dense-layers", 1, 0, 'D'}, {"intermediate", 1, 0, 'F'},
        {"heads", 1, 0, 'H'}, {"kv-heads", 1, 0, 'K'}, {"vocab", 1, 0, 'v'},
        {"seed", 1, 0, 'S'}, {"max-position", 1, 0, 'P'}, {"norm-topk-prob", 1, 0, 'N'},
        {"routed-scaling-factor", 1, 0, 'R'}, {"n-group", 1, 0, 'g'}, {"topk-group", 1, 0, 'G'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    long v;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        const char *on = NULL;
        long min = 1, max = 1L << 30, *dst = NULL;
        switch (ch) {
        case 'a': arch = optarg; continue;
        case 'o': o.out = optarg; continue;
        case 'h': gen_usage(stdout); return 0;
        case 'l': on = "--layers"; dst = &o.layers; max = 10000; break;
        case 'd': on = "--hidden"; dst = &o.hidden; break;
        case 'f': on = "--moe-intermediate"; dst = &o.moe_inter; break;
        case 'e': on = "--experts"; dst = &o.experts; max = 100000; break;
        case 'k': on = "--top-k"; dst = &o.top_k; max = 64; break;
        case 's': on = "--shared-experts"; dst = &o.shared; min = 0; max = 1024; break;
        case 'D': on = "--dense-layers"; dst = &o.dense_layers; min = 0; max = 10000; break;
        case 'F': on = "--intermediate"; dst = &o.inter; break;
        case 'H': on = "--heads"; dst = &o.heads; max = 4096; break;
        case 'K': on = "--kv-heads"; dst = &o.kv_heads; max = 4096; break;
        case 'v': on = "--vocab"; dst = &o.vocab; break;
        case 'P': on = "--max-position"; dst = &o.max_pos; break;
        case 'g': on = "--n-group"; dst = &o.n_group; min = 0; max = 100000; break;
        case 'G': on = "--topk-group"; dst = &o.topk_group; min = 0; max = 100000; break;
        case 'S': {
            char *end;
            errno = 0;
            o.seed = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "moe-ref gen: --seed: expected a non-negative integer\n");
                return 2;
            }
            continue;
        }
        case 'N':
            if (mr_parse_int("--norm-topk-prob", optarg, 0, 1, &v)) return 2;
            o.norm_topk = (int)v;
            continue;
        case 'R': {
            char *end;
            o.scaling = strtod(optarg, &end);
            if (*end || end == optarg || !(o.scaling > 0)) {
                fprintf(stderr, "moe-ref gen: --routed-scaling-factor: expected a number > 0\n");
                return 2;
            }
            continue;
        }
        default: gen_usage(stderr); return 2;
        }
        if (mr_parse_int(on, optarg, min, max, dst)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "moe-ref gen: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!arch || !o.out) {
        fprintf(stderr, "moe-ref gen: --arch and --out are required\n");
        gen_usage(stderr);
        return 2;
    }
    if (!strcmp(arch, "mixtral")) o.arch = MR_ARCH_MIXTRAL;
    else if (!strcmp(arch, "qwen2_moe")) o.arch = MR_ARCH_QWEN2_MOE;
    else if (!strcmp(arch, "deepseek_v2")) o.arch = MR_ARCH_DEEPSEEK_V2;
    else {
        fprintf(stderr, "moe-ref gen: unknown --arch \"%s\" (mixtral, qwen2_moe, deepseek_v2)\n", arch);
        return 2;
    }
    if (o.shared < 0) o.shared = o.arch == MR_ARCH_QWEN2_MOE ? 1 : o.arch == MR_ARCH_DEEPSEEK_V2 ? 2 : 0;
    if (o.dense_layers < 0) o.dense_layers = o.arch == MR_ARCH_DEEPSEEK_V2 ? 1 : 0;
    if (o.arch == MR_ARCH_MIXTRAL && (o.dense_layers > 0 || o.shared > 0)) {
        fprintf(stderr, "moe-ref gen: mixtral has no dense layers or shared experts\n");
        return 2;
    }
    if (o.dense_layers > o.layers) {
        fprintf(stderr, "moe-ref gen: --dense-layers %ld exceeds --layers %ld\n", o.dense_layers, o.layers);
        return 2;
    }
    if (o.hidden % o.heads || (o.hidden / o.heads) % 2 || o.heads % o.kv_heads) {
        fprintf(stderr, "moe-ref gen: need hidden %% heads == 0, an even head size "
                "(hidden/heads) and heads %% kv-heads == 0\n");
        return 2;
    }
    if (o.top_k > o.experts) {
        fprintf(stderr, "moe-ref gen: --top-k %ld exceeds --experts %ld\n", o.top_k, o.experts);
        return 2;
    }
    if (o.n_group > 0 && (o.arch != MR_ARCH_DEEPSEEK_V2 || o.experts % o.n_group ||
                          o.topk_group < 1 || o.topk_group > o.n_group)) {
        fprintf(stderr, "moe-ref gen: --n-group needs deepseek_v2, experts %% n-group == 0 "
                "and 1 <= --topk-group <= n-group\n");
        return 2;
    }
    if (o.norm_topk < 0) o.norm_topk = 0;   /* Qwen1.5-MoE and DeepSeek-V2 default */
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "moe-ref gen: cannot create %s: %s\n", o.out, strerror(errno));
        return 2;
    }
    struct gen_list L = {0};
    if (build_list(&o, &L)) {
        fprintf(stderr, "moe-ref gen: out of memory\n");
        free(L.t);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", o.out);
    if (write_config(&o, path)) {
        fprintf(stderr, "moe-ref gen: cannot write %s: %s\n", path, strerror(errno));
        free(L.t);
        return 1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", o.out);
    if (write_safetensors(&o, &L, path)) {
        fprintf(stderr, "moe-ref gen: cannot write %s: %s\n", path, strerror(errno));
        free(L.t);
        return 1;
    }
    free(L.t);
    return 0;
}
