/* Unit tests of `moecap report`'s pieces: config.json parsing for the six architectures,
 * tensor-name classification, step segmentation + expert attribution + bytes/FLOPs on a
 * synthetic GEMM stream whose figures are derived by hand below, percentiles, hardware
 * profile lookup. With `--write-trace DIR` it instead writes the same synthetic stream as
 * two .mct files (two processes) plus the model's config.json, for the CLI tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mc_test.h"
#include "report/attrib.h"
#include "hw/hw_profile.h"
#include "report/model.h"
#include "report/report_doc.h"
#include "report/report_json.h"
#include "report/report_stats.h"
#include "trace/trace_synth.h"

/* ---------- config parsing ---------- */

static void test_config_mixtral(void)
{
    struct mc_model m;
    char err[512];
    const char *j = "{\"architectures\":[\"MixtralForCausalLM\"],\"model_type\":\"mixtral\",\"hidden_size\":4096,"
        "\"intermediate_size\":14336,\"num_local_experts\":8,\"num_experts_per_tok\":2,"
        "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"vocab_size\":32000,"
        "\"num_hidden_layers\":32,\"torch_dtype\":\"bfloat16\",\"tie_word_embeddings\":false}";
    MC_CHECK(mc_model_parse_config(j, &m, err, sizeof err) == 0, "%s", err);
    MC_CHECK(m.arch == MC_ARCH_MIXTRAL, "arch %d", m.arch);
    MC_CHECK(m.experts == 8 && m.top_k == 2 && m.f == 14336, "E %lld K %lld f %lld", (long long)m.experts, (long long)m.top_k, (long long)m.f);
    MC_CHECK(m.head_dim == 128, "hd %lld", (long long)m.head_dim);          /* 4096 / 32 */
    MC_CHECK(m.n_moe_layers == 32 && m.fs == 0, "moe layers %lld", (long long)m.n_moe_layers);
    MC_CHECK(m.elt == 2, "elt %d", m.elt);
    /* Mixtral 8x7B: 46.7 B parameters; per layer attention 4096*(4096+2*1024)+4096*4096 */
    MC_CHECK(mc_model_attn_params(&m) == 4096LL * 4096 * 2 + 2LL * 4096 * 1024, "attn %lld", (long long)mc_model_attn_params(&m));
    MC_CHECK(mc_model_expert_params(&m) == 3LL * 4096 * 14336, "expert");
    MC_CHECK(mc_model_kv_elems_per_token(&m) == 2 * 8 * 128, "kv");
}

static void test_config_qwen2(void)
{
    struct mc_model m;
    char err[512];
    const char *j = "{\"model_type\":\"qwen2_moe\",\"hidden_size\":2048,\"intermediate_size\":5632,"
        "\"moe_intermediate_size\":1408,\"shared_expert_intermediate_size\":5632,\"num_experts\":60,"
        "\"num_experts_per_tok\":4,\"num_attention_heads\":16,\"num_key_value_heads\":16,"
        "\"vocab_size\":151936,\"num_hidden_layers\":24,\"decoder_sparse_step\":1,\"mlp_only_layers\":[],"
        "\"torch_dtype\":\"bfloat16\"}";
    MC_CHECK(mc_model_parse_config(j, &m, err, sizeof err) == 0, "%s", err);
    MC_CHECK(m.arch == MC_ARCH_QWEN2_MOE && m.experts == 60 && m.f == 1408 && m.fs == 5632, "fields");
    MC_CHECK(m.n_shared == 1 && m.shared_gate == 1, "shared");
    MC_CHECK(m.n_moe_layers == 24, "moe layers");
    /* sparse step 2 + mlp_only_layers [1]: layers 1,3 would be MoE; 1 is forced dense */
    const char *j2 = "{\"model_type\":\"qwen2_moe\",\"hidden_size\":64,\"intermediate_size\":128,"
        "\"moe_intermediate_size\":32,\"num_experts\":8,\"num_experts_per_tok\":2,\"num_attention_heads\":4,"
        "\"vocab_size\":256,\"num_hidden_layers\":4,\"decoder_sparse_step\":2,\"mlp_only_layers\":[1]}";
    MC_CHECK(mc_model_parse_config(j2, &m, err, sizeof err) == 0, "%s", err);
    MC_CHECK(!m.is_moe[0] && !m.is_moe[1] && !m.is_moe[2] && m.is_moe[3], "layers %d%d%d%d", m.is_moe[0], m.is_moe[1], m.is_moe[2], m.is_moe[3]);
    MC_CHECK(m.fs == 0 && m.kv_heads == 4, "no shared, kv heads default to heads");
}

static void test_config_qwen3_olmoe(void)
{
    struct mc_model m;
    char err[512];
    const char *j = "{\"model_type\":\"qwen3_moe\",\"hidden_size\":2048,\"intermediate_size\":6144,"
        "\"moe_intermediate_size\":768,\"num_experts\":128,\"num_experts_per_tok\":8,\"head_dim\":128,"
        "\"num_attention_heads\":32,\"num_key_value_heads\":4,\"vocab_size\":151936,\"num_hidden_layers\":48,"
        "\"decoder_sparse_step\":1,\"mlp_only_layers\":[],\"torch_dtype\":\"bfloat16\"}";
    MC_CHECK(mc_model_parse_config(j, &m, err, sizeof err) == 0, "%s", err);
    MC_CHECK(m.arch == MC_ARCH_QWEN3_MOE && m.head_dim == 128 && m.experts == 128 && m.fs == 0, "qwen3");
    /* q_proj 2048 -> 32*128 = 4096 (head_dim given, not d/H = 64) */
    MC_CHECK(mc_model_attn_params(&m) == 2048LL * 4096 * 2 + 2LL * 2048 * 512, "attn %lld", (long long)mc_model_attn_params(&m));
    MC_CHECK(mc_model_norm_params(&m) == 2 * 2048 + 2 * 128, "qk norms");
    const char *o = "{\"model_type\":\"olmoe\",\"hidden_size\":2048,\"intermediate_size\":1024,"
        "\"num_experts\":64,\"num_experts_per_tok\":8,\"num_attention_heads\":16,\"num_key_value_heads\":16,"
        "\"vocab_size\":50304,\"num_hidden_layers\":16,\"torch_dtype\":\"float32\"}";
    MC_CHECK(mc_model_parse_config(o, &m, err, sizeof err) == 0, "%s", err);
    MC_CHECK(m.arch == MC_ARCH_OLMOE && m.experts == 64 && m.f == 1024 && m.elt == 4 && m.n_moe_layers == 16, "olmoe");
}

static void test_config_deepseek(void)
{
    struct mc_model m;
    char err[512];
    /* DeepSeek-V2-Lite: MLA, 1 leading dense layer, 2 shared experts */
    const char *j = "{\"model_type\":\"deepseek_v2\",\"hidden_size\":2048,\"intermediate_size\":10944,"
        "\"moe_intermediate_size\":1408,\"n_routed_experts\":64,\"n_shared_experts\":2,\"num_experts_per_tok\":6,"
        "\"first_k_dense_replace\":1,\"moe_layer_freq\":1,\"num_attention_heads\":16,\"num_key_value_heads\":16,"
        "\"kv_lora_rank\":512,\"q_lora_rank\":null,\"qk_rope_head_dim\":64,\"qk_nope_head_dim\":128,"
        "\"v_head_dim\":128,\"vocab_size\":102400,\"num_hidden_layers\":27,\"torch_dtype\":\"bfloat16\"}";
    MC_CHECK(mc_model_parse_config(j, &m, err, sizeof err) == 0, "%s", err);
    MC_CHECK(m.arch == MC_ARCH_DEEPSEEK_V2 && !m.is_moe[0] && m.is_moe[1] && m.n_moe_layers == 26, "layers");
    MC_CHECK(m.fs == 2 * 1408 && m.n_shared == 2 && m.fd == 10944, "shared fs %lld", (long long)m.fs);
    MC_CHECK(mc_model_kv_elems_per_token(&m) == 512 + 64, "MLA latent cache");
    /* q 2048*16*192 + kv_a 2048*576 + kv_b 512*16*256 + o 16*128*2048 */
    MC_CHECK(mc_model_attn_params(&m) == 2048LL * 16 * 192 + 2048LL * 576 + 512LL * 16 * 256 + 16LL * 128 * 2048,
             "attn %lld", (long long)mc_model_attn_params(&m));
    const char *v3 = "{\"model_type\":\"deepseek_v3\",\"hidden_size\":7168,\"intermediate_size\":18432,"
        "\"moe_intermediate_size\":2048,\"n_routed_experts\":256,\"n_shared_experts\":1,\"num_experts_per_tok\":8,"
        "\"first_k_dense_replace\":3,\"num_attention_heads\":128,\"num_key_value_heads\":128,"
        "\"kv_lora_rank\":512,\"q_lora_rank\":1536,\"qk_rope_head_dim\":64,\"qk_nope_head_dim\":128,"
        "\"v_head_dim\":128,\"vocab_size\":129280,\"num_hidden_layers\":61}";
    MC_CHECK(mc_model_parse_config(v3, &m, err, sizeof err) == 0, "%s", err);
    MC_CHECK(m.n_moe_layers == 58 && m.q_lora_rank == 1536 && m.elt == 0, "v3 moe %lld", (long long)m.n_moe_layers);
}

static void test_config_errors(void)
{
    struct mc_model m;
    char err[512];
    MC_CHECK(mc_model_parse_config("{\"model_type\":\"llama\",\"hidden_size\":8}", &m, err, sizeof err) != 0, "llama accepted");
    MC_CHECK(strstr(err, "llama") && strstr(err, "mixtral"), "message: %s", err);
    MC_CHECK(mc_model_parse_config("{\"model_type\":\"mixtral\",\"hidden_size\":8,\"num_hidden_layers\":2,"
             "\"num_attention_heads\":2,\"vocab_size\":16}", &m, err, sizeof err) != 0, "missing accepted");
    MC_CHECK(strstr(err, "num_experts_per_tok") && strstr(err, "num_local_experts") && strstr(err, "intermediate_size"),
             "message: %s", err);
    MC_CHECK(mc_model_parse_config("not json", &m, err, sizeof err) != 0, "garbage accepted");
    MC_CHECK(mc_model_parse_config("{\"model_type\":\"deepseek_v2\",\"hidden_size\":64,\"moe_intermediate_size\":32,"
             "\"n_routed_experts\":8,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,\"num_attention_heads\":4,"
             "\"vocab_size\":256,\"num_hidden_layers\":2}", &m, err, sizeof err) != 0, "dense layer without intermediate_size");
    MC_CHECK(strstr(err, "intermediate_size"), "message: %s", err);
}

static void test_names(void)
{
    int l, e;
    enum mc_proj p;
    MC_CHECK(mc_role_from_name("model.layers.3.mlp.experts.5.up_proj.weight", &l, &e, &p) == MC_ROLE_EXPERT && l == 3 && e == 5 && p == MC_PROJ_UP, "qwen expert");
    MC_CHECK(mc_role_from_name("model.layers.12.block_sparse_moe.experts.7.w2.weight", &l, &e, &p) == MC_ROLE_EXPERT && l == 12 && e == 7 && p == MC_PROJ_DOWN, "mixtral w2");
    MC_CHECK(mc_role_from_name("model.layers.0.block_sparse_moe.gate.weight", &l, &e, &p) == MC_ROLE_ROUTER && l == 0, "mixtral router");
    MC_CHECK(mc_role_from_name("model.layers.4.mlp.gate.weight", &l, &e, &p) == MC_ROLE_ROUTER && l == 4, "router");
    MC_CHECK(mc_role_from_name("model.layers.4.mlp.shared_expert.down_proj.weight", &l, &e, &p) == MC_ROLE_SHARED && p == MC_PROJ_DOWN, "shared");
    MC_CHECK(mc_role_from_name("model.layers.4.mlp.shared_experts.gate_proj.weight", &l, &e, &p) == MC_ROLE_SHARED && p == MC_PROJ_GATE, "deepseek shared");
    MC_CHECK(mc_role_from_name("model.layers.4.mlp.shared_expert_gate.weight", &l, &e, &p) == MC_ROLE_SHARED_GATE, "shared gate");
    MC_CHECK(mc_role_from_name("model.layers.0.mlp.down_proj.weight", &l, &e, &p) == MC_ROLE_DENSE_FFN && l == 0, "dense");
    MC_CHECK(mc_role_from_name("model.layers.2.self_attn.k_proj.weight", &l, &e, &p) == MC_ROLE_ATTN && l == 2, "attn");
    MC_CHECK(mc_role_from_name("lm_head.weight", &l, &e, &p) == MC_ROLE_LM_HEAD, "lm_head");
    MC_CHECK(mc_role_from_name("model.layers.1.mlp.experts.gate_up_proj", &l, &e, &p) == MC_ROLE_EXPERT && e == -1 && p == MC_PROJ_GATE_UP, "fused 3-D");
}

static void test_percentiles(void)
{
    double v[10] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
    struct mc_dist d;
    mc_dist_compute(v, 10, &d);
    /* nearest rank: p50 -> 5th smallest = 5, p90 -> 9th = 9, p99 -> 10th = 10 */
    MC_CHECK(d.p50 == 5 && d.p90 == 9 && d.p99 == 10 && d.min == 1 && d.max == 10 && d.mean == 5.5,
             "%g %g %g %g", d.p50, d.p90, d.p99, d.mean);
    double one = 3;
    mc_dist_compute(&one, 1, &d);
    MC_CHECK(d.p50 == 3 && d.p99 == 3, "single");
}

/* ---------- synthetic forward steps ---------- */

/* Tiny Mixtral: d 8, f 4, E 4, K 2, H 2, HK 1 (hd 4), V 16, L 2, f32. */
static const char *TINY =
    "{\"model_type\":\"mixtral\",\"hidden_size\":8,\"intermediate_size\":4,\"num_local_experts\":4,"
    "\"num_experts_per_tok\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":16,"
    "\"num_hidden_layers\":2,\"torch_dtype\":\"float32\"}\n";

#define BASE 0x7f0000100000ULL
/* weight address of (layer, slot): slots 0..3 q k v o, 4 router, 8 + 3*e + p experts */
static uint64_t waddr(int layer, int slot) { return BASE + ((uint64_t)layer * 64 + (uint64_t)slot) * 4096; }
static uint64_t LM = BASE + 200 * 4096;

typedef void (*emit_fn)(void *ctx, const struct mc_rec_gemm *g);
static uint64_t now_ns;
static int gemm_device = -1;    /* -1 = CPU BLAS; >= 0: cuBLAS on that device */

static void gemm(emit_fn emit, void *ctx, int64_t m, int64_t out, int64_t in, uint64_t w, int tid)
{
    struct mc_rec_gemm g;
    memset(&g, 0, sizeof g);
    g.api = MC_API_CBLAS_SGEMM;
    g.layout = MC_LAYOUT_ROW_MAJOR; g.trans_a = MC_OP_N; g.trans_b = MC_OP_T;
    g.m = m; g.n = out; g.k = in; g.lda = in; g.ldb = in; g.ldc = out; g.batch = 1;
    g.a = 0x5500000000ULL + (uint64_t)m * 64; g.b = w; g.c = 0x5600000000ULL;
    g.dtype_a = g.dtype_b = g.dtype_c = g.dtype_compute = MC_DT_F32;
    g.tid = tid; g.device = gemm_device;
    g.t_begin_ns = now_ns; now_ns += 1000; g.t_end_ns = now_ns; now_ns += 100;
    emit(ctx, &g);
}

/* one forward step: T tokens, B sequences, per layer the (expert, tokens) pairs */
static void step(emit_fn emit, void *ctx, int T, int B, const int (*ex)[4], int tid)
{
    for (int l = 0; l < 2; l++) {
        gemm(emit, ctx, T, 8, 8, waddr(l, 0), tid);
        gemm(emit, ctx, T, 4, 8, waddr(l, 1), tid);
        gemm(emit, ctx, T, 4, 8, waddr(l, 2), tid);
        gemm(emit, ctx, T, 8, 8, waddr(l, 3), tid);
        gemm(emit, ctx, T, 4, 8, waddr(l, 4), tid);   /* router: out = E */
        for (int e = 0; e < 4; e++) {
            int m = ex[l][e];
            if (!m) continue;
            gemm(emit, ctx, m, 4, 8, waddr(l, 8 + 3 * e), tid);
            gemm(emit, ctx, m, 4, 8, waddr(l, 8 + 3 * e + 2), tid);
            gemm(emit, ctx, m, 8, 4, waddr(l, 8 + 3 * e + 1), tid);
        }
    }
    gemm(emit, ctx, B, 16, 8, LM, tid);
}

/* step 0: prefill, 2 sequences x 3 tokens; layer 0 experts 1 (5 tokens), 3 (7); layer 1: 0 (6), 2 (6)
 * step 1: decode, 2 sequences;  layer 0 experts 1 (1), 3 (1); layer 1: 0 (2), 1 (2) */
static const int EX0[2][4] = {{0, 5, 0, 7}, {6, 0, 6, 0}};
static const int EX1[2][4] = {{0, 1, 0, 1}, {2, 2, 0, 0}};

static void run_steps(emit_fn emit, void *ctx, int tid)
{
    step(emit, ctx, 6, 2, EX0, tid);
    step(emit, ctx, 2, 2, EX1, tid);
}

/* Hand-derived figures (elements x 4 bytes):
 * dense GEMM weights per layer q 64 + k 32 + v 32 + o 64 + router 32 = 224, x2 layers, + lm_head 128 = 576;
 * norms 2*8 per layer x2 + final 8 = 40; embedding rows T*8.
 * step 0: dense (576 + 40 + 48) * 4 = 2656; routed 4 experts x 96 x 4 = 1536; KV per token per
 *   layer 2*1*4 = 8: read 2 layers * ctx sum 6 * 8 * 4 = 384, written 2 * 6 * 8 * 4 = 384.
 *   GEMM FLOPs per layer 2*6*(64+32+32+64+32) = 2688; experts 2*(5+7)*96 = 2304 and 2*(6+6)*96 = 2304;
 *   lm_head 2*2*128 = 512 -> 2*2688 + 4608 + 512 = 10496. attention 2 layers * 4*H*hd = 32 * (1+2+3)*2 -> 768.
 * step 1: dense (576 + 40 + 16) * 4 = 2528; routed 1536; KV read 2 * (4+4) * 32 = 512, written 2*2*32 = 128.
 *   GEMM 2 layers * 2*2*224 = 1792; experts 2*(1+1)*96 + 2*(2+2)*96 = 1152; lm_head 512 -> 3456.
 *   attention 2 * 32 * (4 + 4) = 512. */
struct captured { int n; struct mc_step s[4]; int64_t counts[4][8]; int64_t ctx[4][2]; };

static void capture(const struct mc_step *s, void *user)
{
    struct captured *c = user;
    if (c->n >= 4) return;
    c->s[c->n] = *s;
    memcpy(c->counts[c->n], s->counts, sizeof(int64_t) * 8);
    for (int i = 0; i < s->n_context && i < 2; i++) c->ctx[c->n][i] = s->context[i];
    c->n++;
}

static void feed(void *ctx, const struct mc_rec_gemm *g) { mc_attrib_gemm(ctx, 42, g); }

static void check_figures(const struct captured *c)
{
    MC_CHECK(c->n == 2, "steps %d", c->n);
    if (c->n < 2) return;
    const struct mc_step *a = &c->s[0], *b = &c->s[1];
    MC_CHECK(a->kind == MC_STEP_PREFILL && a->tokens == 6 && a->sequences == 2, "step0 %s %lld %lld", mc_step_kind_name(a->kind), (long long)a->tokens, (long long)a->sequences);
    MC_CHECK(b->kind == MC_STEP_DECODE && b->tokens == 2 && b->sequences == 2, "step1 %s", mc_step_kind_name(b->kind));
    MC_CHECK(a->bytes_dense == 2656 && a->bytes_routed == 1536 && a->bytes_shared == 0, "step0 bytes %llu %llu",
             (unsigned long long)a->bytes_dense, (unsigned long long)a->bytes_routed);
    MC_CHECK(a->kv_read == 384 && a->kv_written == 384, "step0 kv %llu %llu", (unsigned long long)a->kv_read, (unsigned long long)a->kv_written);
    MC_CHECK(a->flops_gemm == 10496 && a->flops_attention == 768, "step0 flops %llu %llu",
             (unsigned long long)a->flops_gemm, (unsigned long long)a->flops_attention);
    MC_CHECK(b->bytes_dense == 2528 && b->bytes_routed == 1536, "step1 bytes %llu", (unsigned long long)b->bytes_dense);
    MC_CHECK(b->kv_read == 512 && b->kv_written == 128, "step1 kv %llu %llu", (unsigned long long)b->kv_read, (unsigned long long)b->kv_written);
    MC_CHECK(b->flops_gemm == 3456 && b->flops_attention == 512, "step1 flops %llu %llu",
             (unsigned long long)b->flops_gemm, (unsigned long long)b->flops_attention);
    MC_CHECK(c->ctx[0][0] == 3 && c->ctx[0][1] == 3 && c->ctx[1][0] == 4 && c->ctx[1][1] == 4, "contexts");
    MC_CHECK(a->activated == 4 && b->activated == 4, "activated %lld %lld", (long long)a->activated, (long long)b->activated);
    /* step time: first GEMM begin -> lm_head end: 2 layers x 11 GEMMs (+ experts) ... */
    MC_CHECK(a->t_end_ns > a->t_begin_ns && b->t_begin_ns > a->t_end_ns, "times");
    /* all experts counted: 2 layers x 4 experts x 96 x 4 bytes replace the routed bytes */
    MC_CHECK(a->bytes_all_experts == 2656 + 384 + 384 + 2 * 4 * 96 * 4, "all experts %llu", (unsigned long long)a->bytes_all_experts);
}

static void test_segment_shape_only(void)
{
    struct mc_model m;
    char err[256];
    MC_CHECK(mc_model_parse_config(TINY, &m, err, sizeof err) == 0, "%s", err);
    struct captured c;
    memset(&c, 0, sizeof c);
    struct mc_attrib *a = mc_attrib_new(&m, capture, &c);
    now_ns = 1000000;
    run_steps(feed, a, 7);
    mc_attrib_finish(a);
    check_figures(&c);
    /* without names, ids are first-seen order per layer: layer 0 -> {0: 5, 1: 7}, layer 1 -> {0: 6, 1: 6};
     * step 1 layer 1: expert 0 again (id 0), expert 1 new (id 2) */
    MC_CHECK(c.counts[0][0] == 5 && c.counts[0][1] == 7 && c.counts[0][4] == 6 && c.counts[0][5] == 6, "step0 counts");
    MC_CHECK(c.counts[1][0] == 1 && c.counts[1][1] == 1 && c.counts[1][4] == 2 && c.counts[1][6] == 2, "step1 counts");
    struct mc_attrib_stats st;
    mc_attrib_stats(a, &st);
    MC_CHECK(!st.expert_ids_exact && st.unattributed == 0 && st.router_mismatch_steps == 0, "stats");
    mc_attrib_free(a);
    mc_model_free(&m);
}

static const char *proj_name[3] = {"w1", "w3", "w2"};   /* slot order gate, up, down */

static void name_tensors(struct mc_attrib *a, struct mc_synth *w)
{
    char name[128];
    const char *attn[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    uint32_t path = w ? mc_synth_string(w, "/models/tiny/model.safetensors") : 0;
    for (int l = 0; l < 2; l++)
        for (int slot = 0; slot < 20; slot++) {
            if (slot < 4) snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", l, attn[slot]);
            else if (slot == 4) snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.gate.weight", l);
            else if (slot >= 8) snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight",
                                         l, (slot - 8) / 3, proj_name[(slot - 8) % 3]);
            else continue;
            uint64_t off = waddr(l, slot) - BASE;
            int64_t shape[2] = {8, 8};
            if (w) {
                struct mc_rec_tensor t;
                memset(&t, 0, sizeof t);
                t.file_begin = off; t.file_end = off + 256; t.ndim = 2; t.shape[0] = 8; t.shape[1] = 8;
                t.dtype = MC_DT_F32; t.path_str = path; t.name_str = mc_synth_string(w, name);
                mc_synth_record(w, MC_REC_TENSOR, &t, sizeof t);
            } else {
                mc_attrib_tensor(a, "/models/tiny/model.safetensors", name, off, off + 256, shape, 2, MC_DT_F32);
            }
        }
    if (w) {
        struct mc_rec_tensor t;
        memset(&t, 0, sizeof t);
        t.file_begin = LM - BASE; t.file_end = LM - BASE + 512; t.ndim = 2; t.shape[0] = 16; t.shape[1] = 8;
        t.dtype = MC_DT_F32; t.path_str = path; t.name_str = mc_synth_string(w, "lm_head.weight");
        mc_synth_record(w, MC_REC_TENSOR, &t, sizeof t);
        struct mc_rec_file_map f;
        memset(&f, 0, sizeof f);
        f.addr = BASE; f.file_offset = 0; f.length = 1 << 20; f.path_str = path; f.device = -1;
        mc_synth_record(w, MC_REC_FILE_MAP, &f, sizeof f);
    } else {
        int64_t shape[2] = {16, 8};
        mc_attrib_tensor(a, "/models/tiny/model.safetensors", "lm_head.weight", LM - BASE, LM - BASE + 512, shape, 2, MC_DT_F32);
        mc_attrib_file_map(a, 42, "/other/dir/model.safetensors", BASE, 0, 1 << 20, -1);
    }
}

static void test_segment_named(void)
{
    struct mc_model m;
    char err[256];
    MC_CHECK(mc_model_parse_config(TINY, &m, err, sizeof err) == 0, "%s", err);
    struct captured c;
    memset(&c, 0, sizeof c);
    struct mc_attrib *a = mc_attrib_new(&m, capture, &c);
    name_tensors(a, NULL);
    now_ns = 1000000;
    run_steps(feed, a, 7);
    mc_attrib_finish(a);
    check_figures(&c);
    /* names give the model's expert numbers */
    MC_CHECK(c.counts[0][1] == 5 && c.counts[0][3] == 7 && c.counts[0][4 + 0] == 6 && c.counts[0][4 + 2] == 6, "step0 named counts");
    MC_CHECK(c.counts[1][1] == 1 && c.counts[1][3] == 1 && c.counts[1][4] == 2 && c.counts[1][5] == 2, "step1 named counts");
    struct mc_attrib_stats st;
    mc_attrib_stats(a, &st);
    MC_CHECK(st.expert_ids_exact && st.shape_weights == 0, "named stats: shape %llu", (unsigned long long)st.shape_weights);
    mc_attrib_free(a);
    mc_model_free(&m);
}

static void test_segment_unknown_and_open(void)
{
    /* a GEMM of an unrelated shape is counted as unattributed; a step without lm_head is dropped */
    struct mc_model m;
    char err[256];
    MC_CHECK(mc_model_parse_config(TINY, &m, err, sizeof err) == 0, "%s", err);
    struct captured c;
    memset(&c, 0, sizeof c);
    struct mc_attrib *a = mc_attrib_new(&m, capture, &c);
    now_ns = 1;
    gemm(feed, a, 3, 33, 17, 0x1234000, 1);
    gemm(feed, a, 3, 8, 8, waddr(0, 0), 1);
    mc_attrib_finish(a);
    struct mc_attrib_stats st;
    mc_attrib_stats(a, &st);
    MC_CHECK(st.unattributed == 1 && st.n_unknown_shapes == 1 && st.unknown_shape_out[0] == 33, "unknown");
    MC_CHECK(c.n == 0 && st.open_steps_dropped == 1, "open step");
    mc_attrib_free(a);
    mc_model_free(&m);
}

static void test_hw(void)
{
    struct mc_hw hw;
    char err[1024];
    const char *root = getenv("MOECAP_ROOT");
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/report/hw-test.json", root ? root : ".");
    MC_CHECK(mc_hw_load(p, &hw, err, sizeof err) == 0, "%s", err);
    MC_CHECK(hw.bandwidth_Bps == 1e10 && mc_hw_peak_flops(&hw, "f32") == 1e11 && mc_hw_peak_flops(&hw, "bf16") == 0 && !hw.measured, "fields");
    mc_hw_free(&hw);
    setenv("MOECAP_HW_DIR", root ? "tests/report" : ".", 1);
    MC_CHECK(mc_hw_load("no-such-gpu", &hw, err, sizeof err) != 0, "unknown accepted");
    MC_CHECK(strstr(err, "no-such-gpu") && strstr(err, "available"), "message: %s", err);
    unsetenv("MOECAP_HW_DIR");
}


/* ---------- router-logit taps (fused experts) ---------- */

static void test_route_counts(void)
{
    struct mc_model m;
    char err[256];
    MC_CHECK(mc_model_parse_config(TINY, &m, err, sizeof err) == 0, "%s", err);
    /* E 4, top 2; row 0 -> experts 1, 2; row 1 ties 5 = 5 -> lower index first: 0, 1 */
    float lg[8] = {1, 3, 2, 0, 5, 5, 1, 0};
    int64_t cnt[4] = {0};
    MC_CHECK(mc_route_counts(&m, 2, 4, MC_DT_F32, MC_LAYOUT_ROW_MAJOR, lg, sizeof lg, cnt) == 0, "f32");
    MC_CHECK(cnt[0] == 1 && cnt[1] == 2 && cnt[2] == 1 && cnt[3] == 0, "counts %lld %lld %lld %lld",
             (long long)cnt[0], (long long)cnt[1], (long long)cnt[2], (long long)cnt[3]);
    /* the same logits as bf16 (upper halves of the f32 bit patterns; these values are exact) */
    uint16_t bf[8];
    for (int i = 0; i < 8; i++) { uint32_t b; memcpy(&b, &lg[i], 4); bf[i] = (uint16_t)(b >> 16); }
    int64_t c2[4] = {0};
    MC_CHECK(mc_route_counts(&m, 2, 4, MC_DT_BF16, MC_LAYOUT_ROW_MAJOR, bf, sizeof bf, c2) == 0 &&
             !memcmp(cnt, c2, sizeof cnt), "bf16");
    /* f16: 3.0 = 0x4200, 2.0 = 0x4000, 1.0 = 0x3c00, 5.0 = 0x4500 */
    uint16_t hf[8] = {0x3c00, 0x4200, 0x4000, 0, 0x4500, 0x4500, 0x3c00, 0};
    int64_t c3[4] = {0};
    MC_CHECK(mc_route_counts(&m, 2, 4, MC_DT_F16, MC_LAYOUT_ROW_MAJOR, hf, sizeof hf, c3) == 0 &&
             !memcmp(cnt, c3, sizeof cnt), "f16");
    /* column-major: element (t, e) at e * tokens + t */
    float cm[8];
    for (int t = 0; t < 2; t++) for (int e = 0; e < 4; e++) cm[e * 2 + t] = lg[t * 4 + e];
    int64_t c4[4] = {0};
    MC_CHECK(mc_route_counts(&m, 2, 4, MC_DT_F32, MC_LAYOUT_COL_MAJOR, cm, sizeof cm, c4) == 0 &&
             !memcmp(cnt, c4, sizeof cnt), "col-major");
    MC_CHECK(mc_route_counts(&m, 2, 4, MC_DT_F32, MC_LAYOUT_ROW_MAJOR, lg, 16, c4) != 0, "short payload accepted");
    MC_CHECK(mc_route_counts(&m, 2, 5, MC_DT_F32, MC_LAYOUT_ROW_MAJOR, lg, sizeof lg, c4) != 0, "wrong E accepted");
    /* DeepSeek group limit: 2 groups of 2, keep 1 group: logits 4 0 | 3 3.5 -> group 0 wins
     * (best 4 > 3.5), so experts 0 and 1 although 3 and 3.5 beat 0 */
    m.n_group = 2; m.topk_group = 1;
    float g[4] = {4, 0, 3, 3.5f};
    int64_t c5[4] = {0};
    MC_CHECK(mc_route_counts(&m, 1, 4, MC_DT_F32, MC_LAYOUT_ROW_MAJOR, g, sizeof g, c5) == 0 &&
             c5[0] == 1 && c5[1] == 1 && c5[2] == 0 && c5[3] == 0, "group limited");
    m.n_group = 0;
    int64_t c6[4] = {0};
    MC_CHECK(mc_route_counts(&m, 1, 4, MC_DT_F32, MC_LAYOUT_ROW_MAJOR, g, sizeof g, c6) == 0 &&
             c6[0] == 1 && c6[3] == 1, "greedy");
}

/* Consistent routings (every token picks 2 experts): step 0, T 6: layer 0 {1, 3}, layer 1 {0, 2};
 * step 1, T 2: layer 0 {1, 3}, layer 1 {0, 1}. */
static const int EXF0[2][4] = {{0, 6, 0, 6}, {6, 0, 6, 0}};
static const int EXF1[2][4] = {{0, 2, 0, 2}, {2, 2, 0, 0}};
static const int PICK0[2][2] = {{1, 3}, {0, 2}};
static const int PICK1[2][2] = {{1, 3}, {0, 1}};

struct tap_q { int n; uint64_t t[8]; int T[8]; int pick[8][2]; };

static void send_tap(struct mc_attrib *a, uint64_t t, int T, const int pick[2])
{
    float lg[16 * 4];
    for (int i = 0; i < T; i++) {
        for (int e = 0; e < 4; e++) lg[i * 4 + e] = 0;
        lg[i * 4 + pick[0]] = 3;
        lg[i * 4 + pick[1]] = 2;
    }
    mc_attrib_router_tap(a, 42, 7, t, T, 4, MC_DT_F32, MC_LAYOUT_ROW_MAJOR, lg, (size_t)T * 4 * sizeof(float));
}

/* A step whose experts run in a fused kernel: attention + router GEMMs, no expert GEMMs.
 * mode 0: tap before its router GEMM, 1: right after, 2: queued and sent later. */
static void fused_step(struct mc_attrib *a, int T, int B, const int pick[2][2], int mode, struct tap_q *q)
{
    for (int l = 0; l < 2; l++) {
        gemm(feed, a, T, 8, 8, waddr(l, 0), 7);
        gemm(feed, a, T, 4, 8, waddr(l, 1), 7);
        gemm(feed, a, T, 4, 8, waddr(l, 2), 7);
        gemm(feed, a, T, 8, 8, waddr(l, 3), 7);
        uint64_t t = now_ns;   /* the router GEMM's t_begin */
        if (mode == 0) send_tap(a, t, T, pick[l]);
        gemm(feed, a, T, 4, 8, waddr(l, 4), 7);
        if (mode == 1) send_tap(a, t, T, pick[l]);
        if (mode == 2) { q->t[q->n] = t; q->T[q->n] = T; q->pick[q->n][0] = pick[l][0]; q->pick[q->n][1] = pick[l][1]; q->n++; }
    }
    gemm(feed, a, B, 16, 8, LM, 7);
}

static void test_router_tap(void)
{
    struct mc_model m;
    char err[256];
    MC_CHECK(mc_model_parse_config(TINY, &m, err, sizeof err) == 0, "%s", err);
    /* oracle: the same routing executed as one GEMM per expert (the loop path, whose
     * figures test_segment_* check by hand) */
    struct captured loop;
    memset(&loop, 0, sizeof loop);
    struct mc_attrib *a = mc_attrib_new(&m, capture, &loop);
    name_tensors(a, NULL);
    now_ns = 1000000;
    step(feed, a, 6, 2, EXF0, 7);
    step(feed, a, 2, 2, EXF1, 7);
    mc_attrib_finish(a);
    mc_attrib_free(a);
    MC_CHECK(loop.n == 2, "loop steps %d", loop.n);
    for (int mode = 0; mode < 3; mode++) {
        struct captured c;
        memset(&c, 0, sizeof c);
        struct tap_q q;
        memset(&q, 0, sizeof q);
        a = mc_attrib_new(&m, capture, &c);
        name_tensors(a, NULL);
        now_ns = 1000000;
        fused_step(a, 6, 2, PICK0, mode, &q);
        fused_step(a, 2, 2, PICK1, mode, &q);
        if (mode == 2) {
            MC_CHECK(c.n == 0, "mode 2: steps delivered before their taps (%d)", c.n);
            for (int i = q.n - 1; i >= 0; i--) send_tap(a, q.t[i], q.T[i], q.pick[i]);   /* out of order */
        }
        mc_attrib_finish(a);
        struct mc_attrib_stats st;
        mc_attrib_stats(a, &st);
        MC_CHECK(c.n == 2 && st.taps == 4 && st.tap_missing_layers == 0, "mode %d: steps %d taps %llu missing %llu",
                 mode, c.n, (unsigned long long)st.taps, (unsigned long long)st.tap_missing_layers);
        for (int i = 0; i < 2 && i < c.n; i++) {
            const struct mc_step *x = &c.s[i], *y = &loop.s[i];
            MC_CHECK(x->index == (uint64_t)i && !memcmp(c.counts[i], loop.counts[i], sizeof c.counts[i]),
                     "mode %d step %d counts", mode, i);
            MC_CHECK(x->activated == y->activated && x->bytes_routed == y->bytes_routed &&
                     x->bytes_dense == y->bytes_dense && x->kv_read == y->kv_read,
                     "mode %d step %d bytes %llu vs %llu", mode, i, (unsigned long long)x->bytes_routed,
                     (unsigned long long)y->bytes_routed);
            MC_CHECK(x->flops_gemm == y->flops_gemm && x->flops_attention == y->flops_attention &&
                     x->flops_all_experts == y->flops_all_experts,
                     "mode %d step %d flops %llu vs %llu", mode, i, (unsigned long long)x->flops_gemm,
                     (unsigned long long)y->flops_gemm);
        }
        mc_attrib_free(a);
    }
    /* no tap at all: steps still come out at the end, with the layers counted as missing */
    struct captured c;
    memset(&c, 0, sizeof c);
    a = mc_attrib_new(&m, capture, &c);
    name_tensors(a, NULL);
    now_ns = 1000000;
    struct tap_q q;
    memset(&q, 0, sizeof q);
    fused_step(a, 6, 2, PICK0, 2, &q);
    mc_attrib_finish(a);
    struct mc_attrib_stats st;
    mc_attrib_stats(a, &st);
    MC_CHECK(c.n == 1 && st.tap_missing_layers == 2 && c.s[0].activated == 0, "missing taps: %d %llu", c.n,
             (unsigned long long)st.tap_missing_layers);
    mc_attrib_free(a);
    mc_model_free(&m);
}


/* GPU steps: the step ends with the host's synchronising copy of the logits after the
 * (asynchronous) lm_head launch, and (after the first step) begins with the first CUDA call
 * after the previous step (token uploads), not at the first GEMM launch. */
static void test_gpu_step_times(void)
{
    struct mc_model m;
    char err[256];
    MC_CHECK(mc_model_parse_config(TINY, &m, err, sizeof err) == 0, "%s", err);
    struct captured c;
    memset(&c, 0, sizeof c);
    struct mc_attrib *a = mc_attrib_new(&m, capture, &c);
    name_tensors(a, NULL);
    gemm_device = 0;
    now_ns = 1000000;
    mc_attrib_gpu_activity(a, 42, 7, 900000);          /* before any step: ignored */
    step(feed, a, 6, 2, EXF0, 7);
    uint64_t lm_end0 = now_ns - 100;
    MC_CHECK(c.n == 0, "GPU step delivered before its end is known");
    MC_CHECK(mc_attrib_gpu_sync(a, 42, -1, now_ns + 10, now_ns + 5000) == 1, "D2H copy not taken as the end");
    uint64_t end0 = now_ns + 5000;
    MC_CHECK(c.n == 1, "step 0 not delivered after its end");
    now_ns += 100000;
    uint64_t t_act = now_ns;
    mc_attrib_gpu_activity(a, 42, -1, t_act);          /* token upload (a copy: no thread) */
    now_ns += 3000;
    mc_attrib_gpu_activity(a, 42, 7, now_ns);          /* embedding launch */
    now_ns += 2000;
    step(feed, a, 2, 2, EXF1, 7);
    uint64_t lm_end1 = now_ns - 100;
    mc_attrib_finish(a);                               /* no copy after step 1: ends at lm_head */
    MC_CHECK(c.n == 2, "steps %d", c.n);
    if (c.n == 2) {
        MC_CHECK(c.s[0].t_begin_ns == 1000000 && c.s[0].t_end_ns == end0, "step 0 %llu..%llu (lm_head end %llu)",
                 (unsigned long long)c.s[0].t_begin_ns, (unsigned long long)c.s[0].t_end_ns, (unsigned long long)lm_end0);
        MC_CHECK(c.s[1].t_begin_ns == t_act && c.s[1].t_end_ns == lm_end1, "step 1 %llu..%llu want %llu..%llu",
                 (unsigned long long)c.s[1].t_begin_ns, (unsigned long long)c.s[1].t_end_ns,
                 (unsigned long long)t_act, (unsigned long long)lm_end1);
    }
    mc_attrib_free(a);
    /* CPU steps are not touched by copies */
    memset(&c, 0, sizeof c);
    a = mc_attrib_new(&m, capture, &c);
    name_tensors(a, NULL);
    gemm_device = -1;
    now_ns = 1000000;
    step(feed, a, 6, 2, EXF0, 7);
    MC_CHECK(c.n == 1 && mc_attrib_gpu_sync(a, 42, -1, now_ns, now_ns + 5000) == 0, "CPU step held or extended");
    mc_attrib_free(a);
    mc_model_free(&m);
}


/* Contexts over a serving-like sequence of steps (hand-derived; docs/attribution.md §5):
 * the running sequences are kept oldest first; a prefill appends newcomers; a smaller decode
 * drops the oldest; more sequences than running with the last prompt length = mixed join. */
struct ctx_cap { int n; char kind[12][8]; int64_t ctx[12][8]; int64_t nctx[12]; uint64_t kv[12]; };
static void ctx_capture(const struct mc_step *s, void *user)
{
    struct ctx_cap *c = user;
    if (c->n >= 12) return;
    snprintf(c->kind[c->n], sizeof c->kind[0], "%s", mc_step_kind_name(s->kind));
    c->nctx[c->n] = s->n_context;
    for (int64_t i = 0; i < s->n_context && i < 8; i++) c->ctx[c->n][i] = s->context[i];
    c->kv[c->n] = s->kv_read;
    c->n++;
}

static void test_context_rules(void)
{
    struct mc_model m;
    char err[256];
    MC_CHECK(mc_model_parse_config(TINY, &m, err, sizeof err) == 0, "%s", err);
    struct ctx_cap c;
    memset(&c, 0, sizeof c);
    struct mc_attrib *a = mc_attrib_new(&m, ctx_capture, &c);
    name_tensors(a, NULL);
    now_ns = 1000000;
    static const int TB[8][2] = {{16, 2}, {2, 2}, {24, 3}, {8, 1}, {4, 4}, {12, 5}, {5, 5}, {3, 3}};
    for (int i = 0; i < 8; i++) {
        int T = TB[i][0], ex[2][4] = {{T, T, 0, 0}, {0, 0, T, T}};
        step(feed, a, T, TB[i][1], (const int (*)[4])ex, 7);
    }
    mc_attrib_finish(a);
    static const char *kinds[8] = {"prefill", "decode", "prefill", "prefill", "decode", "mixed", "decode", "decode"};
    static const int64_t want[8][5] = {{8, 8}, {9, 9}, {8, 8, 8}, {8}, {9, 9, 9, 9}, {10, 10, 10, 10, 8},
                                        {11, 11, 11, 11, 9}, {12, 12, 10}};
    MC_CHECK(c.n == 8, "steps %d", c.n);
    for (int i = 0; i < 8 && i < c.n; i++) {
        MC_CHECK(!strcmp(c.kind[i], kinds[i]), "step %d kind %s want %s", i, c.kind[i], kinds[i]);
        MC_CHECK(c.nctx[i] == TB[i][1], "step %d sequences %lld", i, (long long)c.nctx[i]);
        for (int j = 0; j < TB[i][1]; j++)
            MC_CHECK(c.ctx[i][j] == want[i][j], "step %d seq %d context %lld want %lld", i, j,
                     (long long)c.ctx[i][j], (long long)want[i][j]);
    }
    /* last step: 2 layers x (12 + 12 + 10) x 2*1*4 elements x 4 bytes */
    MC_CHECK(c.n == 8 && c.kv[7] == 2 * 34 * 8 * 4, "kv_read %llu", (unsigned long long)c.kv[7]);
    mc_attrib_free(a);
    mc_model_free(&m);
}

/* ---------- trace writer for the CLI tests ---------- */

struct synth_ctx { struct mc_synth *w; };
static void to_file(void *ctx, const struct mc_rec_gemm *g)
{
    mc_synth_record(((struct synth_ctx *)ctx)->w, MC_REC_GEMM, g, sizeof *g);
}

static int write_trace(const char *dir)
{
    mkdir(dir, 0755);
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return 1;
    fputs(TINY, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/run", dir);
    mkdir(p, 0755);
    for (int proc = 0; proc < 2; proc++) {
        snprintf(p, sizeof p, "%s/run/host-%d.mct", dir, 100 + proc);
        struct synth_ctx c = {mc_synth_open(p)};
        if (!c.w) return 1;
        struct mc_rec_process pr;
        memset(&pr, 0, sizeof pr);
        pr.pid = 100 + proc; pr.ppid = 1;
        mc_synth_record(c.w, MC_REC_PROCESS, &pr, sizeof pr);
        name_tensors(NULL, c.w);
        now_ns = 1000000 + (uint64_t)proc * 500;   /* interleaved in time */
        run_steps(to_file, &c, 7);
        if (proc == 0) {   /* GPU kernel activity: [100, 200], [150, 300], [400, 450] ns */
            static const uint64_t kt[3][2] = {{100, 200}, {150, 300}, {400, 450}};
            for (int i = 0; i < 3; i++) {
                struct mc_rec_kernel k;
                memset(&k, 0, sizeof k);
                k.start_ns = 1000000 + kt[i][0]; k.end_ns = 1000000 + kt[i][1];
                k.device = 0; k.source = 0; k.correlation_id = (uint64_t)i + 1;
                mc_synth_record(c.w, MC_REC_KERNEL, &k, sizeof k);
            }
        }
        if (mc_synth_close(c.w)) return 1;
    }
    return 0;
}

/* ---------- report.json writer ---------- */

/* report_json_write against two independent references: cJSON's own printer for the
 * sections (the head must be cJSON_Print of the document without its last "\n}"), and
 * cJSON's parser for the whole file (sections and spooled steps must read back intact). */
static void test_json_writer(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "schema_version", 1);
    cJSON *o = cJSON_AddObjectToObject(root, "run");
    cJSON_AddStringToObject(o, "dir", "a \"quoted\"\tpath\n");
    cJSON_AddObjectToObject(o, "empty");
    cJSON *in = cJSON_AddObjectToObject(o, "nested");
    cJSON_AddNumberToObject(in, "big", 12345678901234.0);
    cJSON_AddNumberToObject(in, "frac", 0.1 + 0.2);
    cJSON_AddItemToObject(in, "arr", cJSON_CreateIntArray((const int[]){1, 2, 3}, 3));
    cJSON_AddArrayToObject(root, "notes");
    cJSON_AddBoolToObject(root, "flag", 1);
    char *want_head = cJSON_Print(root);
    cJSON *summaries = cJSON_AddArrayToObject(root, "steps");   /* what the renderers read: not written */
    cJSON_AddItemToArray(summaries, cJSON_CreateNumber(99));

    struct report_steps steps;
    memset(&steps, 0, sizeof steps);
    steps.records = tmpfile();
    MC_CHECK(steps.records != NULL, "tmpfile");
    if (!steps.records || !want_head) return;
    fputs("{\"step\": 0, \"kind\": \"prefill\"},\n{\"step\": 1, \"kind\": \"decode\"}", steps.records);
    struct report_doc doc = {root, &steps};
    FILE *out = tmpfile();
    MC_CHECK(report_json_write(&doc, out) == 0, "write");
    long n = ftell(out);
    char *text = calloc(1, (size_t)n + 1);
    rewind(out);
    MC_CHECK(fread(text, 1, (size_t)n, out) == (size_t)n, "read back");
    size_t hl = strlen(want_head) - 2;   /* without "\n}" */
    MC_CHECK(!strncmp(text, want_head, hl) && !strncmp(text + hl, ",\n\t\"steps\": [\n", 13),
             "head differs from cJSON_Print:\n%s\n---\n%s", text, want_head);
    cJSON *back = cJSON_Parse(text);
    MC_CHECK(back != NULL, "report.json does not parse:\n%s", text);
    const cJSON *st = cJSON_GetObjectItem(back, "steps");
    MC_CHECK(cJSON_GetArraySize(st) == 2 && !strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(st, 1), "kind")->valuestring, "decode"),
             "steps not read back");
    MC_CHECK(cJSON_Compare(cJSON_GetObjectItem(back, "run"), cJSON_GetObjectItem(root, "run"), 1), "run section differs");
    cJSON_Delete(back);
    free(text);
    free(want_head);
    fclose(out);
    fclose(steps.records);
    cJSON_Delete(root);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-trace")) return write_trace(argv[2]);
    MC_RUN(test_config_mixtral);
    MC_RUN(test_config_qwen2);
    MC_RUN(test_config_qwen3_olmoe);
    MC_RUN(test_config_deepseek);
    MC_RUN(test_config_errors);
    MC_RUN(test_names);
    MC_RUN(test_percentiles);
    MC_RUN(test_segment_shape_only);
    MC_RUN(test_segment_named);
    MC_RUN(test_segment_unknown_and_open);
    MC_RUN(test_route_counts);
    MC_RUN(test_router_tap);
    MC_RUN(test_context_rules);
    MC_RUN(test_gpu_step_times);
    MC_RUN(test_hw);
    MC_RUN(test_json_writer);
    return MC_TEST_EXIT();
}
