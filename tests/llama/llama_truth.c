/* The independent truth for llama.cpp runs: a small C program on the npm-prebuilt libllama
 * that registers its own scheduler eval callback (llama_context_params.cb_eval), asks for
 * each `ffn_moe_topk-<layer>` tensor, and writes the experts every computed token row chose,
 * one JSON line per computed routing tensor, then one per llama_decode call:
 *   {"decode": N, "ubatch": U, "layer": L, "rows": R, "ids": [[k ids] x R]}
 *   {"decode": N, "tokens": T, "sequences": B, "ubatches": n}
 * The tensor is a strided view of the argsort result (rows nb[1] apart), read row by row.
 *
 *   llama_truth MODEL.gguf --prompts FILE --gen N [--ubatch U] [--threads T]
 *               [--follow FILE] [--truth OUT.jsonl] [--mixed] [--no-callback] [--time]
 * --prompts: one prompt per line, token ids separated by spaces (one sequence each).
 * Decode 0 prefills every sequence; each later decode gives each sequence one token: its greedy
 * choice (ties to the lower id), or with --follow the ids of that file (one line per sequence,
 * as `moe-ref run` prints them), so two engines are fed identical tokens. --mixed: sequence i
 * joins at decode i (its prefill shares the decode with the others' tokens).
 * --no-callback: no eval callback at all (a plain llama.cpp program, for overhead measurements);
 * --time: decode throughput on stderr: tokens per second of llama_decode wall time and per second
 * of process CPU time (every decode after the first; CPU time is steadier on a shared machine).
 * stdout: one line per sequence with its generated ids. Exit 0 ok, 2 usage, 1 llama.cpp error. */
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

#define MAXSEQ 64

struct truth {
    FILE *out;
    int decode, ubatch, last_layer;
};

/* One line per computed ffn_moe_topk tensor; a layer number not above the previous one
 * starts the decode's next ubatch (graph compute). */
static bool on_eval(struct ggml_tensor *t, bool ask, void *ud)
{
    struct truth *tr = ud;
    if (strncmp(t->name, "ffn_moe_topk-", 13) != 0) return false;
    if (ask) return true;
    int layer = atoi(t->name + 13);
    if (t->type != GGML_TYPE_I32 || !tr->out) return true;
    if (layer <= tr->last_layer) tr->ubatch++;
    tr->last_layer = layer;
    int64_t k = t->ne[0], rows = t->ne[1];
    fprintf(tr->out, "{\"decode\": %d, \"ubatch\": %d, \"layer\": %d, \"rows\": %lld, \"ids\": [",
            tr->decode, tr->ubatch, layer, (long long)rows);
    for (int64_t r = 0; r < rows; r++) {
        int32_t ids[256];
        if (k > 256) { fprintf(stderr, "llama_truth: k > 256\n"); exit(1); }
        /* strided view: rows are nb[1] bytes apart */
        ggml_backend_tensor_get(t, ids, (size_t)r * t->nb[1], (size_t)k * sizeof(int32_t));
        fputs(r ? ", [" : "[", tr->out);
        for (int64_t j = 0; j < k; j++) fprintf(tr->out, "%s%d", j ? ", " : "", ids[j]);
        fputc(']', tr->out);
    }
    fputs("]}\n", tr->out);
    return true;
}

/* Reads lines of ids; returns the number of lines (at most MAXSEQ). */
static int read_lines(const char *path, int32_t **ids, int *len)
{
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); return -1; }
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0 && n < MAXSEQ) {
        int c = 0, a = 16;
        int32_t *v = malloc((size_t)a * sizeof *v);
        char *s = line, *e;
        for (;;) {
            long x = strtol(s, &e, 10);
            if (e == s) break;
            if (c == a) { a *= 2; v = realloc(v, (size_t)a * sizeof *v); }
            v[c++] = (int32_t)x;
            s = e;
        }
        if (!c) { free(v); continue; }
        ids[n] = v; len[n] = c; n++;
    }
    free(line);
    fclose(f);
    return n;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *prompts = NULL, *follow = NULL, *truth_path = NULL;
    int gen = 0, ubatch = 512, threads = 1, mixed = 0, no_callback = 0, timing = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--prompts") && i + 1 < argc) prompts = argv[++i];
        else if (!strcmp(argv[i], "--follow") && i + 1 < argc) follow = argv[++i];
        else if (!strcmp(argv[i], "--truth") && i + 1 < argc) truth_path = argv[++i];
        else if (!strcmp(argv[i], "--gen") && i + 1 < argc) gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ubatch") && i + 1 < argc) ubatch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mixed")) mixed = 1;
        else if (!strcmp(argv[i], "--no-callback")) no_callback = 1;
        else if (!strcmp(argv[i], "--time")) timing = 1;
        else if (argv[i][0] != '-' && !model_path) model_path = argv[i];
        else { fprintf(stderr, "llama_truth: bad argument '%s'\n", argv[i]); return 2; }
    }
    if (!model_path || !prompts || gen < 0 || ubatch < 1 || threads < 1) {
        fprintf(stderr, "usage: llama_truth MODEL.gguf --prompts FILE --gen N [--ubatch U] [--threads T] [--follow FILE] [--truth OUT] [--mixed]\n");
        return 2;
    }
    int32_t *pids[MAXSEQ], *fids[MAXSEQ];
    int plen[MAXSEQ], flen[MAXSEQ];
    int B = read_lines(prompts, pids, plen);
    if (B <= 0) { fprintf(stderr, "llama_truth: no prompts in %s\n", prompts); return 2; }
    if (follow) {
        int nf = read_lines(follow, fids, flen);
        if (nf != B) { fprintf(stderr, "llama_truth: --follow has %d lines, expected %d\n", nf, B); return 2; }
        for (int s = 0; s < B; s++) if (flen[s] < gen) { fprintf(stderr, "llama_truth: --follow line %d is short\n", s); return 2; }
    }
    llama_log_set(quiet_log, NULL);
    /* the CPU backends are separate libraries next to libllama */
    Dl_info di;
    if (dladdr((void *)&llama_backend_init, &di) && di.dli_fname) {   /* (llama_decode may be a profiler's) */
        char *p = strdup(di.dli_fname);
        ggml_backend_load_all_from_path(dirname(p));
        free(p);
    }
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) { fprintf(stderr, "llama_truth: cannot load %s\n", model_path); return 1; }
    int total = 0, maxp = 0;
    for (int s = 0; s < B; s++) { total += plen[s]; if (plen[s] > maxp) maxp = plen[s]; }
    struct truth tr = { .last_layer = -1 };
    if (truth_path && !(tr.out = fopen(truth_path, "w"))) { perror(truth_path); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)((maxp + gen + 2) * B + 256);
    cp.n_batch = (uint32_t)(total + B);
    cp.n_ubatch = (uint32_t)ubatch;
    cp.n_seq_max = (uint32_t)B;
    cp.n_threads = cp.n_threads_batch = threads;
    if (!no_callback) { cp.cb_eval = on_eval; cp.cb_eval_user_data = &tr; }
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "llama_truth: cannot create a context\n"); return 1; }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int V = llama_vocab_n_tokens(vocab);
    struct llama_batch batch = llama_batch_init(total + B, 0, 1);
    int32_t *out = calloc((size_t)B * (size_t)(gen + 1), sizeof *out);
    int pos[MAXSEQ] = {0}, ngen[MAXSEQ] = {0}, joined[MAXSEQ] = {0}, out_idx[MAXSEQ];
    int32_t next[MAXSEQ];
    double decode_s = 0, decode_cpu_s = 0;
    long decode_tokens = 0;
    for (int decode = 0;; decode++) {
        batch.n_tokens = 0;
        int seqs = 0;
        for (int s = 0; s < B; s++) {
            out_idx[s] = -1;
            if (!joined[s]) {
                if (mixed ? decode < s : 0) continue;
                for (int j = 0; j < plen[s]; j++) {
                    int i = batch.n_tokens++;
                    batch.token[i] = pids[s][j]; batch.pos[i] = pos[s]++;
                    batch.n_seq_id[i] = 1; batch.seq_id[i][0] = s; batch.logits[i] = j == plen[s] - 1;
                }
                joined[s] = 1;
            } else if (ngen[s] < gen) {
                int i = batch.n_tokens++;
                batch.token[i] = next[s]; batch.pos[i] = pos[s]++;
                batch.n_seq_id[i] = 1; batch.seq_id[i][0] = s; batch.logits[i] = 1;
            } else continue;
            out_idx[s] = batch.n_tokens - 1;
            seqs++;
        }
        if (!batch.n_tokens) break;
        tr.decode = decode; tr.ubatch = 0; tr.last_layer = -1;
        struct timespec t0, t1, c0, c1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_truth: llama_decode failed\n"); return 1; }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (decode > 0) {
            decode_s += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            decode_cpu_s += (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
            decode_tokens += batch.n_tokens;
        }
        if (tr.out) fprintf(tr.out, "{\"decode\": %d, \"tokens\": %d, \"sequences\": %d, \"ubatches\": %d}\n",
                            decode, batch.n_tokens, seqs, tr.ubatch + 1);
        for (int s = 0; s < B; s++) {
            if (out_idx[s] < 0 || ngen[s] >= gen) continue;
            const float *lg = llama_get_logits_ith(ctx, out_idx[s]);
            int best = 0;
            for (int v = 1; v < V; v++) if (lg[v] > lg[best]) best = v;
            out[(size_t)s * (size_t)(gen + 1) + (size_t)ngen[s]] = best;
            next[s] = follow ? fids[s][ngen[s]] : best;
            ngen[s]++;
        }
    }
    for (int s = 0; s < B; s++) {
        for (int j = 0; j < ngen[s]; j++) printf("%s%d", j ? " " : "", out[(size_t)s * (size_t)(gen + 1) + (size_t)j]);
        putchar('\n');
    }
    if (timing) fprintf(stderr, "decode: %ld tokens in %.6f s (process CPU %.6f s) = %.3f tokens/s, %.3f tokens per CPU s\n",
                        decode_tokens, decode_s, decode_cpu_s, decode_s > 0 ? (double)decode_tokens / decode_s : 0.0,
                        decode_cpu_s > 0 ? (double)decode_tokens / decode_cpu_s : 0.0);
    if (tr.out) fclose(tr.out);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    for (int s = 0; s < B; s++) { free(pids[s]); if (follow) free(fids[s]); }
    free(out);
    return 0;
}
