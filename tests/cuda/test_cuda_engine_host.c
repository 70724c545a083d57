/* Host-side parts of the CUDA reference engine that run without a GPU: the loop style's
 * routing rule (softmax, top-k with ties to the lower index, renormalisation, DeepSeek
 * scaling and group limit) on cases worked out by hand, and mr_cuda_run failing cleanly
 * (message, no crash) where no CUDA device exists. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "mc_test.h"
#include "internal.h"
#include "cuda/cuda_engine.h"

static struct mr_config cfg(int E, int K, int norm)
{
    struct mr_config c;
    memset(&c, 0, sizeof c);
    c.arch = MR_ARCH_QWEN2_MOE;
    c.experts = E;
    c.top_k = K;
    c.norm_topk_prob = norm;
    c.routed_scaling_factor = 1.0f;
    return c;
}

static int near(double a, double b) { return fabs(a - b) < 1e-6; }

static void test_topk_softmax(void)
{
    /* logits 1, 3, 2, 0: softmax p_i = e^l_i / S, S = e + e^3 + e^2 + 1. Top-2 = experts 1, 2. */
    struct mr_config c = cfg(4, 2, 0);
    float lg[4] = { 1, 3, 2, 0 }, w[2];
    int sel[2];
    mr_cuda_route_token(&c, lg, sel, w);
    double S = exp(1) + exp(3) + exp(2) + 1;
    MC_CHECK(sel[0] == 1 && sel[1] == 2, "experts %d %d", sel[0], sel[1]);
    MC_CHECK(near(w[0], exp(3) / S) && near(w[1], exp(2) / S), "weights %g %g", w[0], w[1]);
    /* renormalised: e^3 / (e^3 + e^2) and e^2 / (e^3 + e^2) */
    c.norm_topk_prob = 1;
    mr_cuda_route_token(&c, lg, sel, w);
    MC_CHECK(near(w[0], exp(3) / (exp(3) + exp(2))) && near(w[1], exp(2) / (exp(3) + exp(2))), "renormalised");
}

static void test_ties(void)
{
    /* all equal: the lowest indices win, in order */
    struct mr_config c = cfg(6, 3, 0);
    float lg[6] = { 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f }, w[3];
    int sel[3];
    mr_cuda_route_token(&c, lg, sel, w);
    MC_CHECK(sel[0] == 0 && sel[1] == 1 && sel[2] == 2, "ties %d %d %d", sel[0], sel[1], sel[2]);
    MC_CHECK(near(w[0], 1.0 / 6), "uniform weight");
}

static void test_deepseek_groups(void)
{
    /* 8 experts in 4 groups of 2, keep the best 2 groups by their max, then top-2 inside.
     * logits: g0 {0, 1}, g1 {5, 0}, g2 {4, 4.5}, g3 {2, 3}: group maxima 1, 5, 4.5, 3 ->
     * groups 1 and 2 -> candidates 2 (5), 4 (4), 5 (4.5) -> experts 2, 5; no renorm,
     * scaling 2.5 multiplies the softmax weights (softmax over all 8 logits). */
    struct mr_config c = cfg(8, 2, 0);
    c.arch = MR_ARCH_DEEPSEEK_V2;
    c.n_group = 4;
    c.topk_group = 2;
    c.routed_scaling_factor = 2.5f;
    float lg[8] = { 0, 1, 5, 0, 4, 4.5f, 2, 3 }, w[2];
    int sel[2];
    mr_cuda_route_token(&c, lg, sel, w);
    double S = 0;
    for (int i = 0; i < 8; i++) S += exp(lg[i]);
    MC_CHECK(sel[0] == 2 && sel[1] == 5, "experts %d %d", sel[0], sel[1]);
    MC_CHECK(near(w[0], 2.5 * exp(5) / S) && near(w[1], 2.5 * exp(4.5) / S), "scaled weights %g %g", w[0], w[1]);
}

static void test_no_device(void)
{
    /* This machine has no GPU driver: the run must fail with a message, not crash. */
    struct mr_model *m = (struct mr_model *)1;   /* never dereferenced before the device check */
    int32_t p0[2] = { 1, 2 }, *prompts[1] = { p0 }, o0[1], *out[1] = { o0 };
    int plen[1] = { 2 };
    struct mr_cuda_opts o = { 0, 0, 0, 0 };   /* loop, f32, no offloading */
    char err[256] = "";
    int rc = mr_cuda_run(m, 1, prompts, plen, 1, &o, NULL, NULL, out, err, sizeof err);
    if (rc == 0) { printf("skip - test_no_device (a CUDA device is present)\n"); return; }
    MC_CHECK(rc == -2 && strstr(err, "CUDA engine: no usable CUDA device"), "clean failure: %d %s", rc, err);
}

int main(void)
{
    MC_RUN(test_topk_softmax);
    MC_RUN(test_ties);
    MC_RUN(test_deepseek_groups);
    MC_RUN(test_no_device);
    return MC_TEST_EXIT();
}
