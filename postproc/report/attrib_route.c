/* The routing rule on router logits (docs/attribution.md §4b): logits decoded from
 * f32 / bf16 / f16 / f64, the model's top-k (with DeepSeek's group limit), and a tapped
 * layer's counts applied to a step's experts, bytes and FLOPs. */
#include "report/attrib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- router-logit taps: routing rule, matching, steps waiting for taps ---------- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (!man) bits = sign;
        else {   /* subnormal */
            exp = 127 - 15 + 1;
            while (!(man & 1024)) { man <<= 1; exp--; }
            bits = sign | exp << 23 | (man & 1023) << 13;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | man << 13;
    else bits = sign | (exp + 127 - 15) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float logit_at(const void *data, int dtype, size_t i)
{
    const unsigned char *p = data;
    float f;
    uint16_t h;
    switch (dtype) {
    case MC_DT_F32: memcpy(&f, p + 4 * i, 4); return f;
    case MC_DT_BF16: { memcpy(&h, p + 2 * i, 2); uint32_t b = (uint32_t)h << 16; memcpy(&f, &b, 4); return f; }
    case MC_DT_F16: memcpy(&h, p + 2 * i, 2); return half_to_float(h);
    case MC_DT_F64: { double d; memcpy(&d, p + 8 * i, 8); return (float)d; }
    default: return 0;
    }
}

/* The model's top-k rule on router logits (softmax / sigmoid are monotone, so the order of
 * the logits decides): optional DeepSeek group limit (groups ranked by their best expert),
 * then top_k experts, ties to the lower index (moe-ref's rule). Adds (token, slot) pairs
 * per expert to cnt[E]. Returns 0, -1 when the tap cannot be read. */
int mc_route_counts(const struct mc_model *m, int64_t tokens, int64_t experts, int dtype, int layout,
                    const void *data, size_t len, int64_t *cnt)
{
    int esz = dtype == MC_DT_F32 ? 4 : dtype == MC_DT_F64 ? 8 : (dtype == MC_DT_BF16 || dtype == MC_DT_F16) ? 2 : 0;
    /* tokens x experts x esz must fit in the payload: divided, not multiplied (a hostile
     * tokens count would wrap the product) */
    if (!esz || experts != m->experts || tokens <= 0 || experts <= 0 || experts > 4096 ||
        (uint64_t)tokens > len / ((size_t)experts * (size_t)esz))
        return -1;
    float lg[4096];
    unsigned char allowed[4096], taken[4096];
    int64_t E = experts, K = m->top_k;
    int64_t G = m->n_group, TG = m->topk_group;
    int grouped = G > 1 && TG > 0 && TG < G && E % G == 0 && G <= 64;
    for (int64_t t = 0; t < tokens; t++) {
        for (int64_t e = 0; e < E; e++) {
            size_t i = layout == MC_LAYOUT_COL_MAJOR ? (size_t)(e * tokens + t) : (size_t)(t * E + e);
            lg[e] = logit_at(data, dtype, i);
            allowed[e] = 1;
            taken[e] = 0;
        }
        if (grouped) {
            int64_t gs = E / G;
            float gmax[64];
            unsigned char gsel[64];
            for (int64_t g = 0; g < G; g++) {
                gmax[g] = lg[g * gs]; gsel[g] = 0;
                for (int64_t e = g * gs; e < (g + 1) * gs; e++) if (lg[e] > gmax[g]) gmax[g] = lg[e];
            }
            for (int64_t r = 0; r < TG; r++) {
                int64_t best = -1;
                for (int64_t g = 0; g < G; g++) if (!gsel[g] && (best < 0 || gmax[g] > gmax[best])) best = g;
                if (best >= 0) gsel[best] = 1;
            }
            for (int64_t e = 0; e < E; e++) allowed[e] = gsel[e / gs];
        }
        for (int64_t r = 0; r < K && r < E; r++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++) if (allowed[e] && !taken[e] && (best < 0 || lg[e] > lg[best])) best = e;
            if (best < 0) for (int64_t e = 0; e < E; e++) if (!taken[e]) { best = e; break; }
            if (best < 0) break;
            taken[best] = 1;
            cnt[best]++;
        }
    }
    return 0;
}

/* Counts of a tapped MoE layer into a step: experts, tokens, and the fused kernels' bytes
 * and FLOPs (the same as one gate/up/down GEMM per activated expert would have). */
void attrib_apply_tap(const struct mc_model *m, const int64_t *tap, int64_t *counts, int32_t *touched,
                      int64_t *n_touched, int64_t *activated, uint64_t *b_routed, uint64_t *f_routed,
                      uint64_t *f_gemm, int64_t base, int elt)
{
    elt = mc_model_elt(m, elt);
    uint64_t eb = (uint64_t)mc_model_expert_params(m) * (uint64_t)elt;
    for (int64_t e = 0; e < m->experts; e++) {
        int64_t c = tap[e];
        if (c <= 0 || counts[base + e]) continue;
        counts[base + e] = c;
        if (touched) touched[(*n_touched)++] = (int32_t)(base + e);
        if (activated) (*activated)++;
        *b_routed += eb;
        uint64_t fl = 2ull * (uint64_t)c * (uint64_t)mc_model_expert_params(m);
        *f_routed += fl;
        *f_gemm += fl;
    }
}
