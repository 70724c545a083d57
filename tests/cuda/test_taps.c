/* Tests of kernel-parameter tap descriptions (cupti/taps.c): the shipped data/taps files
 * parse; their patterns select the right kernels, checked against symbol names g++ gives
 * for the same template signatures (vLLM's vllm::moe::topkGatingSoftmax / moeTopK and
 * SGLang's global kernels, declared as in their sources and instantiated; `nm` output
 * pasted below); expressions read launch parameters as hand-computed; bad files are
 * rejected with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mc_test.h"
#include "moecap/trace_format.h"
#include "taps.h"

/* g++ -c mangle.cpp; nm mangle.o (instantiations: <4,16,4,16,32,int|unsigned|long>,
 * moeTopK<256,int>; SGLang <float,4,16,4,16>, moeTopK<256>, moeTopKFast<256>). */
static const char *VLLM_TOPK_I32 = "_ZN4vllm3moe17topkGatingSoftmaxILi4ELi16ELi4ELi16ELi32EiEEvPKfPKbPfiPT4_Piiii";
static const char *VLLM_TOPK_U32 = "_ZN4vllm3moe17topkGatingSoftmaxILi4ELi16ELi4ELi16ELi32EjEEvPKfPKbPfiPT4_Piiii";
static const char *VLLM_TOPK_I64 = "_ZN4vllm3moe17topkGatingSoftmaxILi4ELi16ELi4ELi16ELi32ElEEvPKfPKbPfiPT4_Piiii";
static const char *VLLM_MOETOPK_I32 = "_ZN4vllm3moe7moeTopKILi256EiEEvPKfPKbPfPT0_Piiiii";
static const char *SGL_TOPK = "_Z17topkGatingSoftmaxIfLi4ELi16ELi4ELi16EEvPKT_PKbPfiPiiiibfPKf";
static const char *SGL_MOETOPK = "_Z7moeTopKILi256EEvPfPKbS0_Piiiiib";
static const char *SGL_MOETOPK_FAST = "_Z11moeTopKFastILi256EEvPfPKbS0_Piiiiib";

static struct mc_tap taps[64];
static int ntaps;

static const struct mc_tap *match(const char *name)
{
    for (int i = 0; i < ntaps; i++)
        if (mc_tap_matches(&taps[i], name)) return &taps[i];
    return NULL;
}

static void test_shipped_files(void)
{
    char err[256] = "", path[1024];
    const char *root = getenv("MOECAP_ROOT");
    snprintf(path, sizeof path, "%s/data/taps", root ? root : ".");
    int n = mc_taps_load_path(path, taps, 64, &ntaps, err, sizeof err);
    MC_CHECK(n == 9, "9 taps (5 vLLM + 3 SGLang + 1 moe-ref), got %d: %s", n, err);
    const struct mc_tap *t = match(VLLM_TOPK_I32);
    MC_CHECK(t && !strcmp(t->name, "vllm.topkGatingSoftmax.i32") && t->ids_type == MC_DT_I32 &&
             t->ids_param == 4, "vllm i32 -> %s", t ? t->name : "none");
    t = match(VLLM_TOPK_U32);
    MC_CHECK(t && t->ids_type == MC_DT_U32, "vllm u32 -> %s", t ? t->name : "none");
    t = match(VLLM_TOPK_I64);
    MC_CHECK(t && t->ids_type == MC_DT_I64, "vllm i64 -> %s", t ? t->name : "none");
    t = match(VLLM_MOETOPK_I32);
    MC_CHECK(t && !strcmp(t->name, "vllm.moeTopK.i32") && t->ids_param == 3, "vllm moeTopK -> %s", t ? t->name : "none");
    t = match(SGL_TOPK);
    MC_CHECK(t && !strcmp(t->name, "sglang.topkGatingSoftmax") && t->ids_param == 4, "sglang topk -> %s", t ? t->name : "none");
    t = match(SGL_MOETOPK);
    MC_CHECK(t && !strcmp(t->name, "sglang.moeTopK"), "sglang moeTopK -> %s", t ? t->name : "none");
    t = match(SGL_MOETOPK_FAST);
    MC_CHECK(t && !strcmp(t->name, "sglang.moeTopKFast"), "sglang fast -> %s", t ? t->name : "none");
    /* moe-ref's fused top-k kernel is extern "C": its name is not mangled. */
    t = match("mr_fused_topk");
    MC_CHECK(t && !strcmp(t->name, "moe-ref.fused_topk") && t->ids_param == 4, "moe-ref -> %s", t ? t->name : "none");
    MC_CHECK(match("_Z14fused_moe_kernelPvS_") == NULL, "unrelated kernel untapped");
    MC_CHECK(match("_ZN4vllm3moe10moeSoftmaxILi256EEvPKfPKbPfi") == NULL, "softmax kernel untapped");
}

static void test_expressions(void)
{
    /* vLLM topkGatingSoftmax arguments: input, finished, output, num_rows=37, indices,
     * source_rows, k=8, start_expert=16, end_expert=48. */
    void *in = (void *)0x1, *fin = NULL, *out = (void *)0x2, *ind = (void *)0x3, *src = (void *)0x4;
    int num_rows = 37, k = 8, start = 16, end = 48;
    long long big = 5000000000LL;
    void *params[] = { &in, &fin, &out, &num_rows, &ind, &src, &k, &start, &end, &big };
    struct mc_tap_launch l = { params, 10, { 5, 2, 1 }, { 32, 4, 1 } };
    int64_t v = 0;
    MC_CHECK(mc_tap_eval("p3", &l, &v) == 0 && v == 37, "p3 = %lld", (long long)v);
    MC_CHECK(mc_tap_eval("p8 - p7", &l, &v) == 0 && v == 32, "end - start = %lld", (long long)v);
    MC_CHECK(mc_tap_eval("p3 * p6", &l, &v) == 0 && v == 296, "rows*k = %lld", (long long)v);
    MC_CHECK(mc_tap_eval("gx * gy + bx / by", &l, &v) == 0 && v == 5 * 2 + 32 / 4, "grid = %lld", (long long)v);
    MC_CHECK(mc_tap_eval("(p3 + 3) / 4", &l, &v) == 0 && v == 10, "ceil-div = %lld", (long long)v);
    MC_CHECK(mc_tap_eval("p9:i64 - 1", &l, &v) == 0 && v == 4999999999LL, "i64 = %lld", (long long)v);
    MC_CHECK(mc_tap_eval("-p6 + 10", &l, &v) == 0 && v == 2, "unary minus");
    MC_CHECK(mc_tap_eval("p10", &l, &v) == -1, "param beyond count");
    MC_CHECK(mc_tap_eval("p3 / 0", &l, &v) == -1, "division by zero");
    MC_CHECK(mc_tap_eval("p3 +", &l, &v) == -1, "dangling operator");
    MC_CHECK(mc_tap_eval("foo", &l, &v) == -1, "unknown word");
    MC_CHECK(mc_tap_eval("p3:f32", &l, &v) == -1, "unknown width");
    MC_CHECK(mc_tap_eval("", &l, &v) == -1, "empty");
}

static void test_bad_files(void)
{
    struct mc_tap t[4];
    int n = 0;
    char err[256];
    MC_CHECK(mc_taps_parse("{\"taps\": [", t, 4, &n, err, sizeof err) == -1 && n == 0, "truncated JSON");
    MC_CHECK(mc_taps_parse("[]", t, 4, &n, err, sizeof err) == -1 && strstr(err, "taps"), "no taps array: %s", err);
    MC_CHECK(mc_taps_parse("{\"taps\":[{\"name\":\"a\",\"kernel\":\"*x*\",\"ids_param\":1,\"ids_type\":\"f32\",\"rows\":\"p0\",\"k\":\"2\"}]}",
                           t, 4, &n, err, sizeof err) == -1 && strstr(err, "ids_type"), "bad type: %s", err);
    MC_CHECK(mc_taps_parse("{\"taps\":[{\"name\":\"a\",\"kernel\":\"*x*\",\"ids_param\":1,\"ids_type\":\"i32\",\"rows\":\"p0 *\",\"k\":\"2\"}]}",
                           t, 4, &n, err, sizeof err) == -1 && strstr(err, "rows"), "bad expr: %s", err);
    MC_CHECK(mc_taps_parse("{\"taps\":[{\"name\":\"a\",\"kernel\":\"*x*\",\"ids_type\":\"i32\",\"rows\":\"p0\",\"k\":\"2\"}]}",
                           t, 4, &n, err, sizeof err) == -1 && strstr(err, "ids_param"), "missing param: %s", err);
    MC_CHECK(mc_taps_parse("{\"taps\":[{\"name\":\"a\",\"kernel\":\"*x*\",\"ids_param\":1,\"ids_type\":\"i64\",\"rows\":\"gx\",\"k\":\"4\"}]}",
                           t, 4, &n, err, sizeof err) == 1 && n == 1 && t[0].ids_type == MC_DT_I64 &&
             t[0].valid_below[0] == 0, "minimal valid tap");
    MC_CHECK(mc_taps_load_path("/nonexistent/taps.json", t, 4, &n, err, sizeof err) == -1, "missing file");
}

int main(void)
{
    MC_RUN(test_shipped_files);
    MC_RUN(test_expressions);
    MC_RUN(test_bad_files);
    return MC_TEST_EXIT();
}
