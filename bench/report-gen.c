/* Synthetic trace for bench/report-speed.sh: a Mixtral-8x7B-shaped model (config.json with
 * its real geometry, no weights) and a .mct trace of batch-8 decode steps with named weights
 * (tensor + file-map records), one GEMM per projection / router / activated expert /
 * lm_head, plus a counter sample every 64 records — at least N records in all.
 *   report-gen DIR N      writes DIR/model/config.json and DIR/run/bench-1.mct */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trace/trace_synth.h"

enum { D = 4096, F = 14336, E = 8, K = 2, L = 32, V = 32000, H = 32, HK = 8, HD = 128, B = 8 };
static const uint64_t BASE = 0x7f0000000000ULL;
static uint64_t t_ns = 1000000000ULL, nrec;
static uint32_t rng = 12345;
static uint32_t next_rand(void) { rng = rng * 1664525u + 1013904223u; return rng >> 8; }

static uint64_t addr_of(int layer, int slot) { return BASE + ((uint64_t)layer * 64 + (uint64_t)slot) * (1ULL << 28); }

static void gemm(struct mc_synth *w, int64_t m, int64_t out, int64_t in, uint64_t wa)
{
    struct mc_rec_gemm g;
    memset(&g, 0, sizeof g);
    g.api = MC_API_CBLAS_SGEMM; g.layout = MC_LAYOUT_ROW_MAJOR; g.trans_a = MC_OP_N; g.trans_b = MC_OP_T;
    g.m = m; g.n = out; g.k = in; g.lda = in; g.ldb = in; g.ldc = out; g.batch = 1;
    g.a = 0x550000000000ULL; g.b = wa; g.c = 0x560000000000ULL;
    g.dtype_a = g.dtype_b = g.dtype_c = g.dtype_compute = MC_DT_BF16;
    g.tid = 1; g.device = -1;
    g.t_begin_ns = t_ns; t_ns += 20000; g.t_end_ns = t_ns; t_ns += 500;
    mc_synth_record(w, MC_REC_GEMM, &g, sizeof g);
    if (++nrec % 64 == 0) {
        struct mc_rec_counter c;
        memset(&c, 0, sizeof c);
        c.t_ns = t_ns; c.value = (double)nrec; c.tid = -1; c.device = -1; c.source = MC_CTR_PROC; c.cumulative = 1;
        mc_synth_record(w, MC_REC_COUNTER, &c, sizeof c);
        nrec++;
    }
}

static void tensor(struct mc_synth *w, uint32_t path, const char *name, int layer, int slot, int64_t o, int64_t i)
{
    struct mc_rec_tensor t;
    memset(&t, 0, sizeof t);
    t.file_begin = addr_of(layer, slot) - BASE;
    t.file_end = t.file_begin + (uint64_t)(o * i * 2);
    t.shape[0] = o; t.shape[1] = i; t.ndim = 2; t.dtype = MC_DT_BF16;
    t.path_str = path; t.name_str = mc_synth_string(w, name);
    mc_synth_record(w, MC_REC_TENSOR, &t, sizeof t);
    nrec += 2;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: report-gen DIR N\n"); return 2; }
    uint64_t want = strtoull(argv[2], NULL, 10);
    char p[4096];
    snprintf(p, sizeof p, "%s/model", argv[1]); mkdir(argv[1], 0755); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/model/config.json", argv[1]);
    FILE *f = fopen(p, "w");
    if (!f) { perror(p); return 1; }
    fprintf(f, "{\"model_type\":\"mixtral\",\"hidden_size\":%d,\"intermediate_size\":%d,\"num_local_experts\":%d,"
               "\"num_experts_per_tok\":%d,\"num_hidden_layers\":%d,\"vocab_size\":%d,\"num_attention_heads\":%d,"
               "\"num_key_value_heads\":%d,\"torch_dtype\":\"bfloat16\"}\n", D, F, E, K, L, V, H, HK);
    fclose(f);
    snprintf(p, sizeof p, "%s/run", argv[1]); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/run/bench-1.mct", argv[1]);
    struct mc_synth *w = mc_synth_open(p);
    if (!w) { perror(p); return 1; }
    struct mc_rec_process pr;
    memset(&pr, 0, sizeof pr);
    pr.pid = 1; pr.ppid = 0;
    mc_synth_record(w, MC_REC_PROCESS, &pr, sizeof pr);
    uint32_t path = mc_synth_string(w, "/models/mixtral/model.safetensors");
    char name[160];
    const char *attn[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    const int64_t ao[4] = {H * HD, HK * HD, HK * HD, D}, ai[4] = {D, D, D, H * HD};
    for (int l = 0; l < L; l++) {
        for (int s = 0; s < 4; s++) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", l, attn[s]);
            tensor(w, path, name, l, s, ao[s], ai[s]);
        }
        snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.gate.weight", l);
        tensor(w, path, name, l, 4, E, D);
        for (int e = 0; e < E; e++)
            for (int j = 0; j < 3; j++) {
                snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.experts.%d.w%d.weight", l, e, j + 1);
                tensor(w, path, name, l, 8 + 3 * e + j, j == 1 ? D : F, j == 1 ? F : D);
            }
    }
    tensor(w, path, "lm_head.weight", 40, 0, V, D);
    struct mc_rec_file_map fm;
    memset(&fm, 0, sizeof fm);
    fm.t_ns = t_ns; fm.addr = BASE; fm.file_offset = 0; fm.length = 1ULL << 46; fm.path_str = path; fm.device = -1;
    mc_synth_record(w, MC_REC_FILE_MAP, &fm, sizeof fm);
    nrec += 2;
    while (nrec < want) {
        /* prefill of 8 x 64 tokens every 200 steps, else a batch-8 decode step */
        static uint64_t step;
        int T = step++ % 200 == 0 ? B * 64 : B;
        for (int l = 0; l < L; l++) {
            for (int s = 0; s < 4; s++) gemm(w, T, ao[s], ai[s], addr_of(l, s));
            gemm(w, T, E, D, addr_of(l, 4));
            int cnt[E] = {0};
            for (int t = 0; t < T; t++) {
                int a = (int)(next_rand() % E), b = (int)(next_rand() % (E - 1));
                if (b >= a) b++;
                cnt[a]++; cnt[b]++;
            }
            for (int e = 0; e < E; e++) {
                if (!cnt[e]) continue;
                gemm(w, cnt[e], F, D, addr_of(l, 8 + 3 * e));
                gemm(w, cnt[e], F, D, addr_of(l, 8 + 3 * e + 2));
                gemm(w, cnt[e], D, F, addr_of(l, 8 + 3 * e + 1));
            }
        }
        gemm(w, B, V, D, addr_of(40, 0));
    }
    if (mc_synth_close(w)) { fprintf(stderr, "write failed\n"); return 1; }
    printf("%llu records\n", (unsigned long long)nrec);
    return 0;
}
