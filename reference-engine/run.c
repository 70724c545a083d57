/* `moe-ref run`: load a model, build prompts (token-id file, text file through the
 * byte-level tokenizer, or synthetic ids from a seed), run batched prefill then greedy
 * decode with mr_step, print each sequence's generated ids, and optionally write the
 * ground truth (docs/ground-truth.md) and the logits of every step (for tests). */
#include "internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "offload.h"
#include "cuda/cuda_dispatch.h"   /* --device cuda: dlopen's the CUDA engine */

struct prompts { int n; int32_t **ids; int *len; };

static void free_prompts(struct prompts *p)
{
    for (int i = 0; i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->len);
    memset(p, 0, sizeof *p);
}

static int push_prompt(struct prompts *p, int32_t *ids, int len)
{
    int32_t **ni = realloc(p->ids, (size_t)(p->n + 1) * sizeof *ni);
    if (!ni) return -1;
    p->ids = ni;
    int *nl = realloc(p->len, (size_t)(p->n + 1) * sizeof *nl);
    if (!nl) return -1;
    p->len = nl;
    p->ids[p->n] = ids;
    p->len[p->n] = len;
    p->n++;
    return 0;
}

/* One prompt per non-empty line: token ids separated by blanks (text = 0), or raw text
 * encoded byte by byte (text = 1; the newline is not part of the prompt). */
static int read_prompts(const char *path, int text, int vocab, struct prompts *p)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "moe-ref run: %s: cannot open prompts file: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
        int len = 0;
        if (!ids) { rc = -1; break; }
        if (text) {
            len = mr_tok_encode(line, (size_t)n, vocab, ids, (int)n);
        } else {
            char *s = line, *end;
            for (;;) {
                while (*s == ' ' || *s == '\t') s++;
                if (!*s) break;
                errno = 0;
                long v = strtol(s, &end, 10);
                if (end == s || errno || v < 0 || v >= vocab || (*end && *end != ' ' && *end != '\t')) {
                    fprintf(stderr, "moe-ref run: %s:%d: expected token ids in [0, %d) "
                            "separated by spaces (use --text-prompts for text)\n", path, lineno, vocab);
                    rc = -1;
                    break;
                }
                ids[len++] = (int32_t)v;
                s = end;
            }
        }
        if (rc) { free(ids); break; }
        if (len == 0) { free(ids); continue; }
        if (push_prompt(p, ids, len)) { free(ids); rc = -1; break; }
    }
    free(line);
    fclose(f);
    if (!rc && p->n == 0) {
        fprintf(stderr, "moe-ref run: %s: no prompts\n", path);
        rc = -1;
    }
    return rc;
}

static void run_usage(FILE *f)
{
    fprintf(f,
        "usage: moe-ref run --model DIR [--prompts FILE | --text-prompts FILE |\n"
        "                   --batch B --prompt-len P] --gen N [options]\n"
        "  --prompts FILE        one prompt per line: token ids separated by spaces\n"
        "  --text-prompts FILE   one prompt per line: text, byte-level tokenizer\n"
        "  --batch B --prompt-len P   B synthetic prompts of P ids drawn from --seed (default 1)\n"
        "  --gen N               tokens to generate per sequence (prefill gives the first)\n"
        "  --stagger S           sequence i joins at step i*S (mixed prefill+decode steps)\n"
        "  --threads T           engine threads (default 1): independent weight products (a\n"
        "                        layer's experts, its q/k/v) run at once, one BLAS thread each\n"
        "  --ground-truth FILE   one JSON line per step (docs/ground-truth.md)\n"
        "  --dump-logits FILE    one JSON line per step with each sequence's last-token logits\n"
        "  --print-text          print generated text (byte-level decode) instead of ids\n"
        "  --gemm                every product calls cblas_sgemm, also with one row (default:\n"
        "                        single-row products call cblas_sgemv, which streams the weight)\n"
        "  --gemv                single-row products call cblas_sgemv (the default)\n"
        "  --device cpu|cuda     cuda: the CUDA engine (libmoeref-cuda.so, built where nvcc exists)\n"
        "  --moe loop|fused      cuda: one cuBLAS GEMM per expert, or top-k + grouped kernels\n"
        "  --dtype f32|bf16      cuda: weight/KV precision (default f32)\n"
        "  --expert-budget B     keep routed experts in slots of at most B bytes (or P%% of all\n"
        "                        routed expert bytes), read from the weights file on demand\n"
        "  --expert-parallel N   N worker processes compute the routed experts (expert x in\n"
        "                        worker x %% N), activations exchanged through shared memory\n"
        "  --offload ondemand|swapmoe   with --expert-budget: load a missing expert before use\n"
        "                        (LRU; default, results unchanged), or route to resident\n"
        "                        experts only and swap them between steps (results change)\n");
}

int mr_cmd_run(int argc, char **argv)
{
    const char *model_dir = NULL, *prompts_path = NULL, *gt_path = NULL, *logits_path = NULL;
    const char *device = "cpu", *moe = "loop", *dtype = "f32";
    const char *budget_arg = NULL, *offload = NULL;
    int text = 0, print_text = 0, gemv = 1;
    long batch = 0, plen = 0, gen = -1, threads = 1, stagger = 0, eprocs = 0;
    unsigned long long seed = 1;
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"prompts", 1, 0, 'p'}, {"text-prompts", 1, 0, 'x'},
        {"batch", 1, 0, 'b'}, {"prompt-len", 1, 0, 'l'}, {"gen", 1, 0, 'n'},
        {"threads", 1, 0, 't'}, {"ground-truth", 1, 0, 'g'}, {"dump-logits", 1, 0, 'L'},
        {"seed", 1, 0, 'S'}, {"device", 1, 0, 'D'}, {"stagger", 1, 0, 's'},
        {"print-text", 0, 0, 'T'}, {"gemv", 0, 0, 'V'}, {"gemm", 0, 0, 'G'}, {"help", 0, 0, 'h'},
        {"moe", 1, 0, 'M'}, {"dtype", 1, 0, 'F'}, {"expert-budget", 1, 0, 'B'},
        {"offload", 1, 0, 'O'}, {"expert-parallel", 1, 0, 'P'}, {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': model_dir = optarg; break;
        case 'p': prompts_path = optarg; text = 0; break;
        case 'x': prompts_path = optarg; text = 1; break;
        case 'b': if (mr_parse_int("--batch", optarg, 1, 1 << 20, &batch)) return 2; break;
        case 'l': if (mr_parse_int("--prompt-len", optarg, 1, 1 << 24, &plen)) return 2; break;
        case 'n': if (mr_parse_int("--gen", optarg, 1, 1 << 24, &gen)) return 2; break;
        case 't': if (mr_parse_int("--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 's': if (mr_parse_int("--stagger", optarg, 0, 1 << 20, &stagger)) return 2; break;
        case 'g': gt_path = optarg; break;
        case 'L': logits_path = optarg; break;
        case 'D': device = optarg; break;
        case 'T': print_text = 1; break;
        case 'V': gemv = 1; break;
        case 'G': gemv = 0; break;
        case 'M': moe = optarg; break;
        case 'F': dtype = optarg; break;
        case 'B': budget_arg = optarg; break;
        case 'O': offload = optarg; break;
        case 'P': if (mr_parse_int("--expert-parallel", optarg, 1, 64, &eprocs)) return 2; break;
        case 'S': {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "moe-ref run: --seed: expected a non-negative integer\n");
                return 2;
            }
            break;
        }
        case 'h': run_usage(stdout); return 0;
        default: run_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moe-ref run: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) {
        fprintf(stderr, "moe-ref run: --device %s is not available in this build "
                "(--device cpu, or --device cuda where the CUDA engine was built with nvcc)\n", device);
        return 2;
    }
    if (!model_dir || gen < 1 || (!prompts_path && (batch < 1 || plen < 1))) {
        fprintf(stderr, "moe-ref run: need --model, --gen and either --prompts/--text-prompts "
                "or --batch with --prompt-len\n");
        run_usage(stderr);
        return 2;
    }
    enum mr_offload_policy policy = MR_OFFLOAD_NONE;
    if (mr_parse_offload("moe-ref run", budget_arg, offload, &policy)) return 2;
    if (eprocs && strcmp(device, "cpu") != 0) {
        fprintf(stderr, "moe-ref run: --expert-parallel is implemented for --device cpu only\n");
        return 2;
    }
    if (policy != MR_OFFLOAD_NONE && eprocs) {
        fprintf(stderr, "moe-ref run: --expert-budget and --expert-parallel cannot be combined\n");
        return 2;
    }
    char err[1024];
    mr_model *m = mr_model_load(model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "moe-ref run: %s\n", err);
        return 2;
    }
    const struct mr_config *c = mr_model_config(m);
    struct prompts P = {0};
    int rc = 1;
    mr_engine *e = NULL;
    mr_seq **seqs = NULL;
    FILE *gt = NULL, *lf = NULL;
    int32_t **out_ids = NULL, *next = NULL, *last = NULL;
    int *ngen = NULL, *cnt = NULL, *act = NULL;
    const int32_t **toks = NULL;
    mr_seq **aseqs = NULL;
    if (prompts_path) {
        if (read_prompts(prompts_path, text, c->vocab, &P)) { rc = 2; goto out; }
    } else {
        uint64_t st = seed ^ 0x6d6f652d72656621ull;
        for (long b = 0; b < batch; b++) {
            int32_t *ids = malloc((size_t)plen * sizeof *ids);
            if (!ids) goto oom;
            for (long j = 0; j < plen; j++) ids[j] = (int32_t)(mr_splitmix64(&st) % (uint64_t)c->vocab);
            if (push_prompt(&P, ids, (int)plen)) { free(ids); goto oom; }
        }
    }
    if (policy != MR_OFFLOAD_NONE && !strcmp(device, "cpu")) {   /* checked before any output file or step */
        uint64_t budget;
        if (mr_budget_bytes("moe-ref run", m, budget_arg, 4, &budget)) { rc = 2; goto out; }
        e = mr_engine_create(m, (int)threads, err, sizeof err);
        if (!e) { fprintf(stderr, "moe-ref run: %s\n", err); goto out; }
        int orc = mr_engine_set_offload(e, policy, budget, err, sizeof err);
        if (orc) {
            fprintf(stderr, "moe-ref run: %s\n", err);
            rc = orc == -2 ? 2 : 1;
            goto out;
        }
    }
    if (gt_path && !(gt = fopen(gt_path, "w"))) {
        fprintf(stderr, "moe-ref run: %s: cannot write ground truth: %s\n", gt_path, strerror(errno));
        rc = 2;
        goto out;
    }
    if (logits_path && !(lf = fopen(logits_path, "w"))) {
        fprintf(stderr, "moe-ref run: %s: cannot write logits: %s\n", logits_path, strerror(errno));
        rc = 2;
        goto out;
    }
    if (!strcmp(device, "cuda")) {
        rc = mr_cuda_dispatch(m, P.n, P.ids, P.len, (int)gen, stagger, moe, dtype, gt, lf, print_text, policy, budget_arg);
        goto out;
    }
    if (!e) e = mr_engine_create(m, (int)threads, err, sizeof err);
    if (!e) { fprintf(stderr, "moe-ref run: %s\n", err); goto out; }
    mr_engine_set_gemv(e, gemv);
    if (eprocs) {   /* a step holds at most every prompt at once, or one token per sequence */
        long cap = P.n;
        for (int i = 0; i < P.n; i++) cap += P.len[i];
        if (mr_engine_set_expert_parallel(e, (int)eprocs, (int)cap, err, sizeof err)) {
            fprintf(stderr, "moe-ref run: %s\n", err);
            goto out;
        }
    }
    int n = P.n;
    seqs = calloc((size_t)n, sizeof *seqs);
    aseqs = calloc((size_t)n, sizeof *aseqs);
    out_ids = calloc((size_t)n, sizeof *out_ids);
    ngen = calloc((size_t)n, sizeof *ngen);
    cnt = calloc((size_t)n, sizeof *cnt);
    act = calloc((size_t)n, sizeof *act);
    next = calloc((size_t)n, sizeof *next);
    last = calloc((size_t)n, sizeof *last);
    toks = calloc((size_t)n, sizeof *toks);
    if (!seqs || !aseqs || !out_ids || !ngen || !cnt || !act || !next || !last || !toks) goto oom;
    for (int i = 0; i < n; i++) {
        seqs[i] = mr_seq_create(e, P.len[i] + (int)gen);
        out_ids[i] = malloc((size_t)gen * sizeof **out_ids);
        if (!seqs[i] || !out_ids[i]) goto oom;
    }
    /* Step loop: sequence i joins at step i*stagger with its whole prompt, then brings its
     * last sampled token each step until it has --gen tokens. */
    for (long step = 0;; step++) {
        int na = 0, left = 0;
        for (int i = 0; i < n; i++) {
            if (ngen[i] >= gen) continue;
            left = 1;
            if (step < (long)i * stagger) continue;
            act[na] = i;
            aseqs[na] = seqs[i];
            if (mr_seq_len(seqs[i]) == 0) { toks[na] = P.ids[i]; cnt[na] = P.len[i]; }
            else { toks[na] = &last[i]; cnt[na] = 1; }
            na++;
        }
        if (!left) break;
        if (na == 0) continue;
        if (mr_step(e, aseqs, toks, cnt, na, next, gt)) {
            fprintf(stderr, "moe-ref run: %s\n", mr_engine_error(e));
            goto out;
        }
        if (lf) {
            const float *lg = mr_engine_logits(e);
            fprintf(lf, "{\"step\": %ld, \"seqs\": [", step);
            for (int a = 0; a < na; a++) fprintf(lf, "%s%d", a ? ", " : "", act[a]);
            fprintf(lf, "], \"logits\": [");
            for (int a = 0; a < na; a++) {
                fprintf(lf, "%s[", a ? ", " : "");
                for (int v = 0; v < c->vocab; v++)
                    fprintf(lf, "%s%.9g", v ? ", " : "", lg[(size_t)a * c->vocab + v]);
                fprintf(lf, "]");
            }
            fprintf(lf, "]}\n");
        }
        for (int a = 0; a < na; a++) {
            int i = act[a];
            last[i] = next[a];
            out_ids[i][ngen[i]++] = next[a];
        }
    }
    for (int i = 0; i < n; i++) {
        if (print_text) {
            char *txt = malloc((size_t)gen + 1);
            if (!txt) goto oom;
            mr_tok_decode(out_ids[i], (int)gen, txt, (size_t)gen + 1);
            printf("%s\n", txt);
            free(txt);
        } else {
            for (long j = 0; j < gen; j++) printf("%s%d", j ? " " : "", (int)out_ids[i][j]);
            printf("\n");
        }
    }
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "moe-ref run: out of memory\n");
    rc = 1;
out:
    if (gt && fclose(gt) && rc == 0) { fprintf(stderr, "moe-ref run: error writing %s\n", gt_path); rc = 1; }
    if (lf && fclose(lf) && rc == 0) { fprintf(stderr, "moe-ref run: error writing %s\n", logits_path); rc = 1; }
    if (seqs) for (int i = 0; i < P.n; i++) mr_seq_free(seqs[i]);
    if (out_ids) for (int i = 0; i < P.n; i++) free(out_ids[i]);
    free(seqs); free(aseqs); free(out_ids); free(ngen); free(cnt); free(act); free(next);
    free(last); free(toks);
    free_prompts(&P);
    mr_engine_free(e);
    mr_model_free(m);
    return rc;
}
