/* Tests of moe-ref's public engine API (reference-engine/engine.h) that the command-line
 * tests cannot reach: chunked prefill equals one-shot prefill, a sequence's logits do not
 * depend on which other sequences share the step, argument errors leave sequences
 * untouched, step kinds, and the byte-level tokenizer. Uses a tiny model made by
 * `moe-ref gen` (needs $BUILD/bin/moe-ref). */
#include "engine.h"
#include "mc_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char model_dir[256];
static mr_model *model;

static double max_rel(const float *a, const float *b, int n)
{
    double md = 0, mr = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md) md = d;
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    return mr > 0 ? md / mr : md;
}

static void test_tokenizer(void)
{
    int32_t ids[16];
    int n = mr_tok_encode("Hi\n~", 4, 256, ids, 16);
    MC_CHECK(n == 4 && ids[0] == 72 && ids[1] == 105 && ids[2] == 10 && ids[3] == 126,
             "encode gave n=%d", n);
    char out[16];
    MC_CHECK(mr_tok_decode(ids, n, out, sizeof out) == 4 && !strcmp(out, "Hi\n~"), "round trip '%s'", out);
    int32_t odd[3] = { 300, 7, 200 };   /* ' ' + 300 % 95 = '/', ' ' + 7 = '\'', ' ' + 200 % 95 = '*' */
    MC_CHECK(mr_tok_decode(odd, 3, out, sizeof out) == 3 && !strcmp(out, "/'*"), "decode '%s'", out);
    MC_CHECK(mr_tok_decode(odd, 3, out, 3) == -1, "cap too small must fail");
    n = mr_tok_encode("\xff", 1, 100, ids, 16);   /* 255 % 100 */
    MC_CHECK(n == 1 && ids[0] == 55, "small vocab id %d", ids[0]);
}

static void test_load_errors(void)
{
    char err[256] = "";
    mr_model *m = mr_model_load("/nonexistent/moe-ref-model", err, sizeof err);
    MC_CHECK(m == NULL && strstr(err, "/nonexistent/moe-ref-model"), "err '%s'", err);
}

static const int32_t prompt[7] = { 5, 77, 3, 190, 42, 42, 9 };

static void test_chunked_prefill(void)
{
    char err[256];
    mr_engine *e = mr_engine_create(model, 1, err, sizeof err);
    MC_CHECK(e != NULL, "%s", err);
    if (!e) return;
    int V = mr_model_config(model)->vocab;
    mr_seq *a = mr_seq_create(e, 32), *b = mr_seq_create(e, 32);
    const int32_t *toks[1] = { prompt };
    int cnt[1] = { 7 };
    int32_t next_a, next_b;
    MC_CHECK(mr_step(e, &a, toks, cnt, 1, &next_a, NULL) == 0, "%s", mr_engine_error(e));
    float *la = malloc((size_t)V * sizeof *la);
    memcpy(la, mr_engine_logits(e), (size_t)V * sizeof *la);
    struct mr_step_info info;
    mr_engine_last_step(e, &info);
    MC_CHECK(!strcmp(info.kind, "prefill") && info.tokens == 7 && info.sequences == 1,
             "kind %s tokens %d", info.kind, info.tokens);

    /* same prompt in chunks of 3 and 4: the second chunk is a "mixed" step */
    cnt[0] = 3;
    MC_CHECK(mr_step(e, &b, toks, cnt, 1, &next_b, NULL) == 0, "%s", mr_engine_error(e));
    toks[0] = prompt + 3;
    cnt[0] = 4;
    FILE *gt = tmpfile();
    MC_CHECK(mr_step(e, &b, toks, cnt, 1, &next_b, gt) == 0, "%s", mr_engine_error(e));
    mr_engine_last_step(e, &info);
    MC_CHECK(!strcmp(info.kind, "mixed"), "chunk kind %s", info.kind);
    double r = max_rel(mr_engine_logits(e), la, V);
    MC_CHECK(r < 1e-5, "chunked vs one-shot prefill logits differ: %g", r);
    MC_CHECK(next_a == next_b, "next %d vs %d", next_a, next_b);
    MC_CHECK(mr_seq_len(a) == 7 && mr_seq_len(b) == 7, "lens %d %d", mr_seq_len(a), mr_seq_len(b));
    char line[4096] = "";
    rewind(gt);
    MC_CHECK(fgets(line, sizeof line, gt) && strstr(line, "\"kind\": \"mixed\"") &&
             strstr(line, "\"context\": [7]") && strstr(line, "\"seq_tokens\": [4]"),
             "ground truth line: %.200s", line);
    fclose(gt);

    /* decode a alone, then b together with a fresh sequence c: b's logits must equal a's */
    toks[0] = &next_a;
    cnt[0] = 1;
    MC_CHECK(mr_step(e, &a, toks, cnt, 1, &next_a, NULL) == 0, "%s", mr_engine_error(e));
    memcpy(la, mr_engine_logits(e), (size_t)V * sizeof *la);
    mr_seq *c = mr_seq_create(e, 32);
    mr_seq *bc[2] = { c, b };
    const int32_t *t2[2] = { prompt + 1, &next_b };
    int c2[2] = { 5, 1 };
    int32_t nx[2];
    MC_CHECK(mr_step(e, bc, t2, c2, 2, nx, NULL) == 0, "%s", mr_engine_error(e));
    mr_engine_last_step(e, &info);
    MC_CHECK(!strcmp(info.kind, "mixed") && info.tokens == 6, "kind %s tokens %d", info.kind, info.tokens);
    r = max_rel(mr_engine_logits(e) + V, la, V);
    MC_CHECK(r < 1e-5, "batched vs alone logits differ: %g", r);
    MC_CHECK(nx[1] == next_a, "next %d vs %d", nx[1], next_a);

    mr_seq_free(a);
    mr_seq_free(b);
    mr_seq_free(c);
    free(la);
    mr_engine_free(e);
}

static void test_step_errors(void)
{
    char err[256];
    mr_engine *e = mr_engine_create(model, 1, err, sizeof err);
    mr_engine *e2 = mr_engine_create(model, 1, err, sizeof err);
    if (!e || !e2) { MC_CHECK(0, "engine: %s", err); return; }
    int V = mr_model_config(model)->vocab;
    mr_seq *s = mr_seq_create(e, 8), *o = mr_seq_create(e2, 8);
    int32_t nx[2];
    mr_seq *dup[2] = { s, s };
    const int32_t *t2[2] = { prompt, prompt };
    int c2[2] = { 2, 2 };
    MC_CHECK(mr_step(e, dup, t2, c2, 2, nx, NULL) == -1 && strstr(mr_engine_error(e), "twice"),
             "duplicate: %s", mr_engine_error(e));
    mr_seq *so[2] = { s, o };
    MC_CHECK(mr_step(e, so, t2, c2, 2, nx, NULL) == -1 && strstr(mr_engine_error(e), "belong"),
             "foreign: %s", mr_engine_error(e));
    int32_t bad[2] = { 1, V };
    const int32_t *tb[1] = { bad };
    int c1[1] = { 2 };
    MC_CHECK(mr_step(e, &s, tb, c1, 1, nx, NULL) == -1 && strstr(mr_engine_error(e), "out of range"),
             "token range: %s", mr_engine_error(e));
    const int32_t *tl[1] = { prompt };
    int c9[1] = { 9 };
    MC_CHECK(mr_step(e, &s, tl, c9, 1, nx, NULL) == -1 && strstr(mr_engine_error(e), "max length"),
             "max len: %s", mr_engine_error(e));
    int c0[1] = { 0 };
    MC_CHECK(mr_step(e, &s, tl, c0, 1, nx, NULL) == -1, "zero tokens accepted");
    MC_CHECK(mr_seq_len(s) == 0, "failed steps changed the sequence (len %d)", mr_seq_len(s));
    /* after the errors, a valid step still works and fills the sequence exactly */
    int c8[1] = { 7 };
    MC_CHECK(mr_step(e, &s, tl, c8, 1, nx, NULL) == 0 && mr_seq_len(s) == 7, "%s", mr_engine_error(e));
    mr_seq_free(s);
    mr_seq_free(o);
    mr_engine_free(e);
    mr_engine_free(e2);
}

int main(void)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(model_dir, sizeof model_dir, "/tmp/moe-ref-api-XXXXXX");
    if (!mkdtemp(model_dir)) { printf("not ok - mkdtemp\n"); return 1; }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/bin/moe-ref gen --arch deepseek_v2 --layers 3 --out %s --seed 3",
             build, model_dir);
    if (system(cmd) != 0) { printf("not ok - %s\n", cmd); return 1; }
    char err[256];
    model = mr_model_load(model_dir, err, sizeof err);
    if (!model) { printf("not ok - load: %s\n", err); return 1; }
    MC_RUN(test_tokenizer);
    MC_RUN(test_load_errors);
    MC_RUN(test_chunked_prefill);
    MC_RUN(test_step_errors);
    mr_model_free(model);
    snprintf(cmd, sizeof cmd, "rm -rf %s", model_dir);
    if (system(cmd) != 0) printf("# could not remove %s\n", model_dir);
    return MC_TEST_EXIT();
}
