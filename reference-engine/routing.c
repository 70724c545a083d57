/* The routing rule of moe-ref: top-k experts of one token from its router logits, with
 * the semantics of each architecture's HF implementation (docs/reference-engine.md). One
 * host implementation, shared by the CPU engine and the CUDA engine's loop style; the
 * CUDA fused style's mr_fused_topk kernel is its device-side twin (keep them in step).
 * Plain C, no BLAS, so libmoeref-cuda.so links it too. */
#include <math.h>
#include <string.h>
#include "internal.h"

void mr_route_token(const struct mr_config *c, const float *logit, int *sel, float *w)
{
    int E = c->experts, K = c->top_k;
    double pr[E > 0 ? E : 1], mx = -INFINITY, sum = 0;
    for (int i = 0; i < E; i++) if (logit[i] > mx) mx = logit[i];
    for (int i = 0; i < E; i++) { pr[i] = exp((double)logit[i] - mx); sum += pr[i]; }
    for (int i = 0; i < E; i++) pr[i] /= sum;
    char allowed[E > 0 ? E : 1];
    memset(allowed, 1, sizeof allowed);
    if (c->n_group > 0 && c->topk_group < c->n_group) {
        /* deepseek_v2 group_limited_greedy: keep the topk_group groups with the best max */
        int gs = E / c->n_group;
        double gmax[c->n_group];
        char gsel[c->n_group];
        for (int g = 0; g < c->n_group; g++) {
            gmax[g] = -1; gsel[g] = 0;
            for (int i = g * gs; i < (g + 1) * gs; i++) if (pr[i] > gmax[g]) gmax[g] = pr[i];
        }
        for (int r = 0; r < c->topk_group; r++) {
            int best = -1;
            for (int g = 0; g < c->n_group; g++)
                if (!gsel[g] && (best < 0 || gmax[g] > gmax[best])) best = g;
            gsel[best] = 1;
        }
        for (int i = 0; i < E; i++) allowed[i] = gsel[i / gs];
    }
    char taken[E > 0 ? E : 1];
    memset(taken, 0, sizeof taken);
    double tot = 0;
    for (int r = 0; r < K; r++) {
        /* best allowed expert; with fewer allowed experts than K, HF's top-k over the
         * masked scores takes masked ones (score 0): the lowest free index here */
        int best = -1;
        for (int i = 0; i < E; i++)
            if (allowed[i] && !taken[i] && (best < 0 || pr[i] > pr[best])) best = i;
        if (best < 0) {
            for (int i = 0; i < E; i++) if (!taken[i]) { best = i; break; }
            pr[best] = 0;
        }
        taken[best] = 1;
        sel[r] = best;
        w[r] = (float)pr[best];
        tot += pr[best];
    }
    if (c->norm_topk_prob) {
        double den = tot + (c->arch == MR_ARCH_DEEPSEEK_V2 ? 1e-20 : 0.0);
        for (int r = 0; r < K; r++) w[r] = (float)(w[r] / den);
    } else if (c->arch == MR_ARCH_DEEPSEEK_V2) {
        for (int r = 0; r < K; r++) w[r] *= c->routed_scaling_factor;
    }
}
