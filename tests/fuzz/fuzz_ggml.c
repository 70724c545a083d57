/* Fuzz target: `moecap report RUN --model X.gguf` end to end, the llama.cpp attribution
 * (postproc/report/model_gguf.c, attrib_ggml.c). The input is a GGUF file followed by a
 * trace: it is cut at the first trace magic "MOECAPT\0" (none: all GGUF, an empty trace);
 * the GGUF part becomes --model, the rest RUN/fuzz.mct. Seeds: tests/fuzz/make_hostile_gguf.py
 * --corpus (a tiny Mixtral-style "llama" with experts, and qwen2moe; F32 and Q8_0).
 * Oracles: no crash or sanitizer report; exit 0 or 2; when the report succeeds, report.json
 * is valid UTF-8 JSON and every step is consistent with itself: bytes.total and flops.total
 * are the sums of their parts, no figure is negative or beyond the 5 x 2^60 the attributor's
 * saturation allows (a wrapped sum shows up here), the experts listed per layer are distinct,
 * in range, one token count each, and as many in all as activated_experts. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz/fuzz_common.h"

static struct fuzz_run r;
static char model[600];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_run_init(&r, "ggml");
    snprintf(model, sizeof model, "%s/model.gguf", r.dir);
    return 0;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) abort();
    double x = v->valuedouble;
    if (!(x >= 0 && x <= 5.0 * 1152921504606846976.0)) abort();   /* [0, 5 x 2^60] */
    return x;
}

static void same(double sum, double total)
{
    if (sum - total > 1e-9 * total || total - sum > 1e-9 * total) abort();
}

static void check_step(const cJSON *s, double experts)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "bytes"), *f = cJSON_GetObjectItemCaseSensitive(s, "flops");
    same(num(b, "dense_weights") + num(b, "routed_expert_weights") + num(b, "shared_expert_weights") +
         num(b, "kv_read") + num(b, "kv_written"), num(b, "total"));
    same(num(f, "gemm") + num(f, "attention"), num(f, "total"));
    double listed = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "layers")) {
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(l, "experts"), *tk = cJSON_GetObjectItemCaseSensitive(l, "tokens_per_expert");
        if (!ex) continue;   /* a dense layer */
        if (cJSON_GetArraySize(ex) != cJSON_GetArraySize(tk)) abort();
        double prev = -1;
        const cJSON *e;
        cJSON_ArrayForEach(e, ex) {
            if (!cJSON_IsNumber(e) || e->valuedouble <= prev || e->valuedouble >= experts) abort();
            prev = e->valuedouble;
            listed++;
        }
        cJSON_ArrayForEach(e, tk) if (!cJSON_IsNumber(e) || e->valuedouble <= 0) abort();
    }
    if (listed != num(s, "activated_experts")) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unlink(r.out_json);
    static const char magic[8] = "MOECAPT";   /* with its NUL: 8 bytes */
    const uint8_t *t = memmem(data, size, magic, sizeof magic);
    size_t gguf_len = t ? (size_t)(t - data) : size;
    if (fuzz_write_file(model, data, gguf_len) != 0 || fuzz_write_file(r.trace, data + gguf_len, size - gguf_len) != 0) abort();
    char *argv[] = {"report", r.run, "--model", model, "--hw", r.hw, "--format", "json", "--quiet", NULL};
    int rc = fuzz_report_quiet(9, argv);
    if (rc != 0 && rc != 2) abort();
    if (rc == 0) {
        cJSON *j = fuzz_read_report(r.out_json);
        double experts = num(cJSON_GetObjectItemCaseSensitive(j, "model"), "num_experts");
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(j, "steps")) check_step(s, experts);
        if (!cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "run"), "llama_cpp")) abort();
        cJSON_Delete(j);
    }
    return 0;
}
