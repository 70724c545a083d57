/* `moe-ref gguf`: writes a moe-ref model (config.json + safetensors) as one GGUF file that
 * llama.cpp loads, so both engines run the same weights on the same token ids.
 *   mixtral   -> llama.cpp architecture "llama" with experts (Mixtral's own GGUF form)
 *   qwen2_moe -> "qwen2moe" (routed experts + one shared expert with its sigmoid gate)
 * llama.cpp's "llama" RoPE rotates adjacent pairs while moe-ref (like HF) rotates halves, so
 * the q/k projection rows are permuted within each head, as Hugging Face's converter does;
 * qwen2moe uses the half rotation itself. The vocabulary is a byte-level "gpt2" tokenizer
 * (token b = byte b, spelled as GPT-2's byte-to-unicode table, no merges), which maps text
 * to the same ids as moe-ref's byte tokenizer; ids >= 256 get placeholder names. */
#include "internal.h"
#include "gguf_write.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct src {                 /* where a tensor's floats come from */
    const float *const *parts;   /* parts[0..n_parts), each `part` floats, concatenated */
    const float *one;
    int n_parts;
    int64_t part;
    int perm_heads, perm_hd;     /* > 0: permute rows for adjacent-pair RoPE */
    int64_t cols;
};

static void fill(void *ctx, float *dst)
{
    const struct src *s = ctx;
    if (s->perm_heads > 0) {
        /* row h*hd + 2b + a  <-  row h*hd + a*hd/2 + b */
        int hd = s->perm_hd;
        for (int h = 0; h < s->perm_heads; h++)
            for (int b = 0; b < hd / 2; b++)
                for (int a = 0; a < 2; a++)
                    memcpy(dst + ((int64_t)h * hd + 2 * b + a) * s->cols,
                           s->one + ((int64_t)h * hd + (int64_t)a * hd / 2 + b) * s->cols,
                           (size_t)s->cols * sizeof *dst);
        return;
    }
    if (s->one) { memcpy(dst, s->one, (size_t)s->part * sizeof *dst); return; }
    for (int i = 0; i < s->n_parts; i++) memcpy(dst + (int64_t)i * s->part, s->parts[i], (size_t)s->part * sizeof *dst);
}

struct conv {
    struct mr_gguf *g;
    struct src *srcs;
    int n_src, cap_src;
    int fail;
};

/* One tensor: ne = {ne0, ne1, ne2} (ne1/ne2 = 0 when absent). */
static void tensor(struct conv *c, const char *name, enum mr_ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2,
                   struct src s)
{
    if (c->fail) return;
    struct src *sp = &c->srcs[c->n_src++];   /* reserved up front: addresses stay valid */
    *sp = s;
    int64_t ne[3] = {ne0, ne1, ne2};
    int nd = ne2 ? 3 : ne1 ? 2 : 1;
    if (mr_gguf_tensor(c->g, name, nd, ne, type, fill, sp) != 0) {
        fprintf(stderr, "moe-ref gguf: tensor %s: rows of %lld elements cannot be stored as this type "
                "(block-quantized types need a multiple of 32)\n", name, (long long)ne0);
        c->fail = 1;
    }
}

static struct src one(const float *p, int64_t n) { return (struct src){ .one = p, .part = n }; }

/* GPT-2's byte-to-unicode spelling of byte b, UTF-8 encoded into out[4]. */
static void byte_token(int b, char *out)
{
    int cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp = b;
    else {
        int n = 0;   /* rank of b among the bytes that are remapped */
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: moe-ref gguf --model DIR --out FILE.gguf [--type f32|f16|q8_0|q4_0]\n"
               "Writes the moe-ref model in DIR (mixtral or qwen2_moe, MoE in every layer) as a GGUF\n"
               "file for llama.cpp. --type (default f32) applies to the projection and expert\n"
               "matrices and the output matrix; the router, the embedding, the norms and qwen2moe's\n"
               "shared-expert gate stay F32. Quantized types need row lengths that are multiples of 32.\n");
}

int mr_cmd_gguf(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    int type = MR_GGML_F32;
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"out", required_argument, 0, 'o'},
        {"type", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': dir = optarg; break;
        case 'o': out = optarg; break;
        case 't':
            if ((type = mr_ggml_type_from_name(optarg)) < 0) {
                fprintf(stderr, "moe-ref gguf: unknown --type '%s' (f32, f16, q8_0, q4_0)\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !dir || !out) { usage(stderr); return 2; }
    char err[512];
    mr_model *m = mr_model_load(dir, err, sizeof err);
    if (!m) { fprintf(stderr, "moe-ref gguf: %s\n", err); return 2; }
    const struct mr_config *c = &m->cfg;
    int rc = 2;
    const char *arch = c->arch == MR_ARCH_MIXTRAL ? "llama" : c->arch == MR_ARCH_QWEN2_MOE ? "qwen2moe" : NULL;
    if (!arch) { fprintf(stderr, "moe-ref gguf: only mixtral and qwen2_moe models can be exported\n"); goto done; }
    if (c->n_dense_layers) { fprintf(stderr, "moe-ref gguf: dense layers are not exported (MoE in every layer only)\n"); goto done; }
    if (c->arch == MR_ARCH_QWEN2_MOE && (c->norm_topk_prob || !c->shared_inter || !c->shared_gate)) {
        fprintf(stderr, "moe-ref gguf: qwen2moe in llama.cpp has norm_topk_prob false and one gated shared expert\n");
        goto done;
    }
    if (c->head_dim * c->heads != c->hidden || c->head_dim % 2) {
        fprintf(stderr, "moe-ref gguf: head_dim must be hidden / heads and even\n");
        goto done;
    }
    int64_t d = c->hidden, V = c->vocab, E = c->experts, F = c->moe_inter, hd = c->head_dim;
    int64_t qd = (int64_t)c->heads * hd, kvd = (int64_t)c->kv_heads * hd;
    struct conv cv = { .g = mr_gguf_new() };
    cv.cap_src = 16 + 16 * c->layers;
    cv.srcs = calloc((size_t)cv.cap_src, sizeof *cv.srcs);
    char **tok = calloc((size_t)V, sizeof *tok);
    int32_t *ttype = calloc((size_t)V, sizeof *ttype);
    if (!cv.g || !cv.srcs || !tok || !ttype) { fprintf(stderr, "moe-ref gguf: out of memory\n"); rc = 1; goto free_conv; }
    char k[128];
#define KEY(fmt) (snprintf(k, sizeof k, "%s." fmt, arch), k)
    struct mr_gguf *g = cv.g;
    mr_gguf_kv_str(g, "general.architecture", arch);
    mr_gguf_kv_str(g, "general.name", "moe-ref");
    mr_gguf_kv_u32(g, "general.alignment", 32);
    mr_gguf_kv_u32(g, KEY("context_length"), (uint32_t)c->max_position);
    mr_gguf_kv_u32(g, KEY("embedding_length"), (uint32_t)d);
    mr_gguf_kv_u32(g, KEY("block_count"), (uint32_t)c->layers);
    mr_gguf_kv_u32(g, KEY("feed_forward_length"), (uint32_t)(c->arch == MR_ARCH_MIXTRAL ? F : c->dense_inter));
    mr_gguf_kv_u32(g, KEY("attention.head_count"), (uint32_t)c->heads);
    mr_gguf_kv_u32(g, KEY("attention.head_count_kv"), (uint32_t)c->kv_heads);
    mr_gguf_kv_f32(g, KEY("attention.layer_norm_rms_epsilon"), c->rms_eps);
    mr_gguf_kv_f32(g, KEY("rope.freq_base"), c->rope_theta);
    mr_gguf_kv_u32(g, KEY("rope.dimension_count"), (uint32_t)hd);
    mr_gguf_kv_u32(g, KEY("expert_count"), (uint32_t)E);
    mr_gguf_kv_u32(g, KEY("expert_used_count"), (uint32_t)c->top_k);
    mr_gguf_kv_u32(g, KEY("vocab_size"), (uint32_t)V);
    if (c->arch == MR_ARCH_QWEN2_MOE) {
        mr_gguf_kv_u32(g, KEY("expert_feed_forward_length"), (uint32_t)F);
        mr_gguf_kv_u32(g, KEY("expert_shared_feed_forward_length"), (uint32_t)c->shared_inter);
    }
    for (int64_t i = 0; i < V; i++) {
        char name[32];
        if (i < 256) byte_token((int)i, name);
        else snprintf(name, sizeof name, "<|id%lld|>", (long long)i);
        tok[i] = strdup(name);
        if (!tok[i]) { fprintf(stderr, "moe-ref gguf: out of memory\n"); rc = 1; goto free_conv; }
        ttype[i] = i < 256 ? 1 : 4;   /* normal byte token; user-defined placeholder */
    }
    mr_gguf_kv_str(g, "tokenizer.ggml.model", "gpt2");
    mr_gguf_kv_str(g, "tokenizer.ggml.pre", "default");
    mr_gguf_kv_str_array(g, "tokenizer.ggml.tokens", (const char *const *)tok, (size_t)V);
    mr_gguf_kv_i32_array(g, "tokenizer.ggml.token_type", ttype, (size_t)V);
    mr_gguf_kv_str_array(g, "tokenizer.ggml.merges", NULL, 0);
    if (c->bos_token_id >= 0 && c->bos_token_id < V) mr_gguf_kv_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_token_id);
    if (c->eos_token_id >= 0 && c->eos_token_id < V) mr_gguf_kv_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_token_id);
    mr_gguf_kv_bool(g, "tokenizer.ggml.add_bos_token", 0);
    mr_gguf_kv_bool(g, "tokenizer.ggml.add_eos_token", 0);

    enum mr_ggml_type wt = (enum mr_ggml_type)type;
    int permute = c->arch == MR_ARCH_MIXTRAL;
    tensor(&cv, "token_embd.weight", MR_GGML_F32, d, V, 0, one(m->embed, d * V));
    tensor(&cv, "output_norm.weight", MR_GGML_F32, d, 0, 0, one(m->final_norm, d));
    tensor(&cv, "output.weight", wt, d, V, 0, one(m->lm_head, d * V));
    for (int l = 0; l < c->layers; l++) {
        const struct mr_layer_w *w = &m->lw[l];
        char n[96];
#define T(suffix, ty, a, b, e, s) (snprintf(n, sizeof n, "blk.%d." suffix, l), tensor(&cv, n, ty, a, b, e, s))
        T("attn_norm.weight", MR_GGML_F32, d, 0, 0, one(w->attn_norm, d));
        T("ffn_norm.weight", MR_GGML_F32, d, 0, 0, one(w->ffn_norm, d));
        struct src q = one(w->q, qd * d), kk = one(w->k, kvd * d);
        if (permute) {
            q.perm_heads = c->heads; q.perm_hd = (int)hd; q.cols = d;
            kk.perm_heads = c->kv_heads; kk.perm_hd = (int)hd; kk.cols = d;
        }
        T("attn_q.weight", wt, d, qd, 0, q);
        T("attn_k.weight", wt, d, kvd, 0, kk);
        T("attn_v.weight", wt, d, kvd, 0, one(w->v, kvd * d));
        T("attn_output.weight", wt, qd, d, 0, one(w->o, d * qd));
        T("ffn_gate_inp.weight", MR_GGML_F32, d, E, 0, one(w->router, E * d));
        T("ffn_gate_exps.weight", wt, d, F, E, ((struct src){ .parts = w->eg, .n_parts = (int)E, .part = F * d }));
        T("ffn_up_exps.weight", wt, d, F, E, ((struct src){ .parts = w->eu, .n_parts = (int)E, .part = F * d }));
        T("ffn_down_exps.weight", wt, F, d, E, ((struct src){ .parts = w->ed, .n_parts = (int)E, .part = F * d }));
        if (c->arch == MR_ARCH_QWEN2_MOE) {
            int64_t fs = c->shared_inter;
            T("ffn_gate_inp_shexp.weight", MR_GGML_F32, d, 0, 0, one(w->sgate, d));
            T("ffn_gate_shexp.weight", wt, d, fs, 0, one(w->sg, fs * d));
            T("ffn_up_shexp.weight", wt, d, fs, 0, one(w->su, fs * d));
            T("ffn_down_shexp.weight", wt, fs, d, 0, one(w->sd, fs * d));
        }
#undef T
    }
#undef KEY
    if (cv.fail) goto free_conv;
    if (mr_gguf_write(g, out, err, sizeof err) != 0) { fprintf(stderr, "moe-ref gguf: %s\n", err); rc = 1; goto free_conv; }
    rc = 0;
free_conv:
    for (int64_t i = 0; tok && i < V; i++) free(tok[i]);
    free(tok); free(ttype);
    free(cv.srcs);
    mr_gguf_free(cv.g);
done:
    mr_model_free(m);
    return rc;
}
