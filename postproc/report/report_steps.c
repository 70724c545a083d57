/* Per-step rows and run aggregates of `moecap report` (see report_steps.h). */
#include "report/report_steps.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_json.h"
#include "report/report_stats.h"


/* MoE-CAP's reference formulas (Auto-CAP/MoE-CAP utils: basic_utils / qwen_utils), per
 * step; docs/metrics.md gives the derivation and the differences with ours. */
static void compat_step(const struct report_steps *r, const struct mc_step *s, double ctx_sum,
                        double *bytes, double *flops)
{
    const struct mc_model *m = r->m;
    double L = (double)m->layers, elt = mc_model_elt(m, s->elt);
    double attn = (double)mc_model_attn_params(m), expert = (double)mc_model_expert_params(m);
    double shared = (double)mc_model_shared_params(m);
    double act = r->n_moe ? (double)s->activated / r->n_moe : 0;
    double kv_per_tok = m->kv_lora_rank > 0 ? L * (double)(m->kv_lora_rank + m->qk_rope_dim)
                                            : 2.0 * L * (double)m->head_dim * (double)m->kv_heads;
    double kv = ctx_sum * kv_per_tok;
    double score = 2.0 * L * (double)m->heads * (double)m->head_dim * ctx_sum;
    double n_moe = (double)r->n_moe, n_dense = L - n_moe;
    double dense_ffn = 3.0 * (double)m->d * (double)m->fd;
    double mem, fl;
    switch (m->arch) {
    case MC_ARCH_QWEN2_MOE:
        mem = L * (act * expert + shared + attn) + kv;
        fl = L * (attn + expert + shared) + score;
        break;
    case MC_ARCH_QWEN3_MOE: case MC_ARCH_DEEPSEEK_V2: case MC_ARCH_DEEPSEEK_V3:
        mem = n_moe * (act * expert + shared) + n_dense * dense_ffn + L * attn + kv;
        fl = n_moe * (expert + shared) + n_dense * dense_ffn + L * attn + score;
        break;
    default:
        mem = L * (act * expert + attn) + kv;
        fl = L * (attn + expert) + score;
        break;
    }
    *bytes = mem * elt;
    /* MoE-CAP: (params + score) x 2 x tokens/s, divided by its table's peak / 2 (its
     * table holds 2:4-sparse peaks): = 2 x (...) x tokens per step against a dense peak */
    *flops = fl * 2.0 * (double)s->tokens;
}

int report_steps_init(struct report_steps *r, const struct mc_model *m, const struct mc_hw *hw, int devices)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->devices = devices;
    r->bw = hw->bandwidth_Bps;
    r->n_moe = (int)m->n_moe_layers;
    size_t cells = (size_t)r->n_moe * (size_t)m->experts;
    r->load_tokens = calloc(cells ? cells : 1, sizeof *r->load_tokens);
    r->load_act = calloc(cells ? cells : 1, sizeof *r->load_act);
    r->records = tmpfile();
    return r->records && r->load_tokens && r->load_act ? 0 : -1;
}

void report_steps_free(struct report_steps *r)
{
    if (r->records) fclose(r->records);
    free(r->rows); free(r->load_tokens); free(r->load_act);
    mc_offload_view_free(r->offload);
    mc_ep_view_free(r->ep);
    memset(r, 0, sizeof *r);
}

void report_on_step(const struct mc_step *s, void *user)
{
    struct report_steps *r = user;
    struct report_step_figures f;
    double t = (double)(s->t_end_ns - s->t_begin_ns) / 1e9;
    f.time_s = t;
    f.bytes = s->bytes_dense + s->bytes_routed + s->bytes_shared + s->kv_read + s->kv_written;
    f.flops = s->flops_gemm + s->flops_attention;
    double bwd = r->devices * r->bw, pkd = r->devices * r->peak;
    f.s_mbu = report_div0(report_div0((double)f.bytes, t), bwd);
    f.mbu = report_div0(report_div0((double)s->bytes_all_experts, t), bwd);
    f.s_mfu = report_div0(report_div0((double)f.flops, t), pkd);
    f.mfu = report_div0(report_div0((double)s->flops_all_experts, t), pkd);
    double ctx_sum = 0;
    for (int64_t i = 0; i < s->n_context; i++) ctx_sum += (double)s->context[i];
    compat_step(r, s, ctx_sum, &f.compat_bytes, &f.compat_flops);
    f.compat_s_mbu = report_div0(report_div0(f.compat_bytes, t), bwd);
    f.compat_s_mfu = report_div0(report_div0(f.compat_flops, t), pkd);
    f.with_mfu = r->peak > 0;
    if (!s->context_exact) r->ctx_inexact_steps++;

    if (s->index) fputs(",\n", r->records);
    report_json_step(r->records, s, r->m, &f);
    mc_offload_step(r->offload, s, r->records);
    mc_ep_view_step(r->ep, s, r->records);
    fputc('}', r->records);

    for (int i = 0; i < s->n_moe && r->load_tokens; i++)
        for (int64_t e = 0; e < s->n_experts; e++) {
            int64_t c = s->counts[(int64_t)i * s->n_experts + e];
            r->load_tokens[(int64_t)i * s->n_experts + e] += (uint64_t)c;
            r->load_act[(int64_t)i * s->n_experts + e] += c > 0;
        }

    struct totals *ts[2] = {&r->all, &r->by_kind[s->kind < MC_STEP_KINDS ? s->kind : MC_STEP_MIXED]};
    for (int i = 0; i < 2; i++) {
        struct totals *x = ts[i];
        x->steps++; x->tokens += (uint64_t)s->tokens; x->seqs += (uint64_t)s->sequences; x->time_s += t;
        x->b_dense += (double)s->bytes_dense; x->b_routed += (double)s->bytes_routed;
        x->b_shared += (double)s->bytes_shared; x->kv_r += (double)s->kv_read; x->kv_w += (double)s->kv_written;
        x->b_all += (double)s->bytes_all_experts; x->f_gemm += (double)s->flops_gemm;
        x->f_att += (double)s->flops_attention; x->f_all += (double)s->flops_all_experts;
        x->f_unattr += (double)s->flops_unattributed;
    }
    if (!r->first_begin || s->t_begin_ns < r->first_begin) r->first_begin = s->t_begin_ns;
    if (s->t_end_ns > r->last_end) r->last_end = s->t_end_ns;
    if (r->n_rows == r->cap_rows) {
        size_t nc = r->cap_rows ? r->cap_rows * 2 : 1024;
        void *p = realloc(r->rows, nc * sizeof *r->rows);
        if (!p) { r->oom = 1; return; }
        r->rows = p; r->cap_rows = nc;
    }
    r->rows[r->n_rows++] = (struct step_row){t, f.s_mbu, f.s_mfu, f.mbu, f.mfu, f.compat_s_mbu, f.compat_s_mfu,
                                             (double)f.bytes, (double)f.flops, s->t_begin_ns, (int32_t)s->tokens,
                                             (int32_t)s->sequences, (int32_t)s->activated, (uint8_t)s->kind};
}

/* ---------- aggregates ---------- */

static cJSON *dist(const struct report_steps *r, size_t off, int kind_filter)
{
    size_t n = 0;
    double *v = malloc((r->n_rows ? r->n_rows : 1) * sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < r->n_rows; i++)
        if (kind_filter < 0 || r->rows[i].kind == kind_filter)
            v[n++] = *(const double *)((const char *)&r->rows[i] + off);
    if (!n) { free(v); return NULL; }
    struct mc_dist d;
    mc_dist_compute(v, n, &d);
    free(v);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)n);
    cJSON_AddNumberToObject(o, "mean", d.mean);
    cJSON_AddNumberToObject(o, "min", d.min);
    cJSON_AddNumberToObject(o, "p50", d.p50);
    cJSON_AddNumberToObject(o, "p90", d.p90);
    cJSON_AddNumberToObject(o, "p99", d.p99);
    cJSON_AddNumberToObject(o, "max", d.max);
    return o;
}

static void add_util(const struct report_steps *r, cJSON *o, const struct totals *x)
{
    double bw = r->devices * r->bw, pk = r->devices * r->peak;
    double b = x->b_dense + x->b_routed + x->b_shared + x->kv_r + x->kv_w;
    cJSON_AddNumberToObject(o, "s_mbu", report_div0(report_div0(b, x->time_s), bw));
    cJSON_AddNumberToObject(o, "mbu", report_div0(report_div0(x->b_all, x->time_s), bw));
    if (pk > 0) {
        cJSON_AddNumberToObject(o, "s_mfu", report_div0(report_div0(x->f_gemm + x->f_att, x->time_s), pk));
        cJSON_AddNumberToObject(o, "mfu", report_div0(report_div0(x->f_all, x->time_s), pk));
    }
}

static cJSON *totals_json(const struct report_steps *r, const struct totals *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "steps", (double)x->steps);
    cJSON_AddNumberToObject(o, "tokens", (double)x->tokens);
    cJSON_AddNumberToObject(o, "time_s", x->time_s);
    add_util(r, o, x);
    return o;
}

static cJSON *means(const struct report_steps *r, int kind, int compat)
{
    double a = 0, b = 0;
    size_t n = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        if (r->rows[i].kind != kind) continue;
        a += compat ? r->rows[i].c_smbu : r->rows[i].s_mbu;
        b += compat ? r->rows[i].c_smfu : r->rows[i].s_mfu;
        n++;
    }
    if (!n) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "steps", (double)n);
    cJSON_AddNumberToObject(o, "s_mbu", a / (double)n);
    if (r->peak > 0) cJSON_AddNumberToObject(o, "s_mfu", b / (double)n);
    return o;
}

static void add_opt(cJSON *o, const char *k, cJSON *v) { if (v) cJSON_AddItemToObject(o, k, v); }

cJSON *report_aggregate_json(const struct report_steps *r)
{
    const struct totals *x = &r->all;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "steps", (double)x->steps);
    cJSON_AddNumberToObject(a, "prefill_steps", (double)r->by_kind[MC_STEP_PREFILL].steps);
    cJSON_AddNumberToObject(a, "decode_steps", (double)r->by_kind[MC_STEP_DECODE].steps);
    cJSON_AddNumberToObject(a, "mixed_steps", (double)r->by_kind[MC_STEP_MIXED].steps);
    cJSON_AddNumberToObject(a, "tokens", (double)x->tokens);
    cJSON_AddNumberToObject(a, "prefill_tokens", (double)r->by_kind[MC_STEP_PREFILL].tokens);
    cJSON_AddNumberToObject(a, "decode_tokens", (double)r->by_kind[MC_STEP_DECODE].tokens);
    cJSON_AddNumberToObject(a, "output_tokens", (double)x->seqs);
    cJSON_AddNumberToObject(a, "time_s", x->time_s);
    cJSON_AddNumberToObject(a, "span_s", r->last_end > r->first_begin ? (double)(r->last_end - r->first_begin) / 1e9 : 0);
    cJSON *b = cJSON_AddObjectToObject(a, "bytes");
    cJSON_AddNumberToObject(b, "dense_weights", x->b_dense);
    cJSON_AddNumberToObject(b, "routed_expert_weights", x->b_routed);
    cJSON_AddNumberToObject(b, "shared_expert_weights", x->b_shared);
    cJSON_AddNumberToObject(b, "kv_read", x->kv_r);
    cJSON_AddNumberToObject(b, "kv_written", x->kv_w);
    cJSON_AddNumberToObject(b, "total", x->b_dense + x->b_routed + x->b_shared + x->kv_r + x->kv_w);
    cJSON_AddNumberToObject(b, "all_experts_total", x->b_all);
    cJSON *f = cJSON_AddObjectToObject(a, "flops");
    cJSON_AddNumberToObject(f, "gemm", x->f_gemm);
    cJSON_AddNumberToObject(f, "attention", x->f_att);
    cJSON_AddNumberToObject(f, "total", x->f_gemm + x->f_att);
    cJSON_AddNumberToObject(f, "all_experts_total", x->f_all);
    cJSON_AddNumberToObject(f, "unattributed_gemm", x->f_unattr);
    add_util(r, a, x);
    cJSON *tp = cJSON_AddObjectToObject(a, "tokens_per_s");
    cJSON_AddNumberToObject(tp, "total", report_div0((double)x->tokens, x->time_s));
    cJSON_AddNumberToObject(tp, "output", report_div0((double)x->seqs, x->time_s));
    const struct totals *pre = &r->by_kind[MC_STEP_PREFILL], *dec = &r->by_kind[MC_STEP_DECODE];
    cJSON_AddNumberToObject(tp, "prefill", report_div0((double)pre->tokens, pre->time_s));
    cJSON_AddNumberToObject(tp, "decode", report_div0((double)dec->tokens, dec->time_s));
    add_opt(a, "step_time_s", dist(r, offsetof(struct step_row, time_s), -1));
    add_opt(a, "s_mbu_dist", dist(r, offsetof(struct step_row, s_mbu), -1));
    if (r->peak > 0) add_opt(a, "s_mfu_dist", dist(r, offsetof(struct step_row, s_mfu), -1));
    add_opt(a, "ttft_server_s", dist(r, offsetof(struct step_row, time_s), MC_STEP_PREFILL));
    add_opt(a, "tpot_server_s", dist(r, offsetof(struct step_row, time_s), MC_STEP_DECODE));
    for (int k = 0; k < MC_STEP_KINDS; k++)
        if (r->by_kind[k].steps) cJSON_AddItemToObject(a, mc_step_kind_name(k), totals_json(r, &r->by_kind[k]));
    return a;
}

cJSON *report_compat_json(const struct report_steps *r)
{
    const struct mc_model *m = r->m;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "method", "MoE-CAP reference formulas (arXiv 2412.07067, Auto-CAP/MoE-CAP): "
                            "L x (activated experts per layer x expert size + attention size) + KV cache, "
                            "per-step values averaged over steps");
    static const enum mc_step_kind phases[2] = {MC_STEP_PREFILL, MC_STEP_DECODE};
    cJSON *ours = cJSON_CreateObject();
    for (int i = 0; i < 2; i++) {
        add_opt(c, mc_step_kind_name(phases[i]), means(r, phases[i], 1));
        add_opt(ours, mc_step_kind_name(phases[i]), means(r, phases[i], 0));
    }
    cJSON_AddItemToObject(c, "ours", ours);
    cJSON *d = cJSON_AddArrayToObject(c, "differences");
    char buf[512];
    if (m->top_k > 1) {
        snprintf(buf, sizeof buf, "S-MFU: MoE-CAP counts one expert (expert size) per token per layer; "
                 "each token really goes through top_k = %lld experts, so its routed-expert FLOPs are "
                 "%lld x smaller than executed", (long long)m->top_k, (long long)m->top_k);
        cJSON_AddItemToArray(d, cJSON_CreateString(buf));
    }
    cJSON_AddItemToArray(d, cJSON_CreateString(
        "S-MBU: MoE-CAP leaves out the router, lm_head, norms, gathered embedding rows and the KV "
        "cache written by the step; moecap counts every weight byte the step reads plus KV read and written"));
    if (m->arch == MC_ARCH_MIXTRAL || m->arch == MC_ARCH_OLMOE || m->arch == MC_ARCH_QWEN2_MOE) {
        if (r->n_moe < m->layers)
            cJSON_AddItemToArray(d, cJSON_CreateString(
                "MoE-CAP's formula for this architecture charges experts to every layer, including dense ones"));
    }
    cJSON_AddItemToArray(d, cJSON_CreateString(
        "Attention FLOPs: MoE-CAP multiplies the step's context-length sum (2 x L x H x hd x ctx) by the "
        "tokens of the step; moecap counts 4 x H x hd x ctx(token) per token and layer (causal)"));
    return c;
}

cJSON *report_step_summaries_json(const struct report_steps *r)
{
    cJSON *steps = cJSON_CreateArray();
    for (size_t i = 0; i < r->n_rows; i++) {
        const struct step_row *x = &r->rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)i);
        cJSON_AddStringToObject(o, "kind", mc_step_kind_name(x->kind));
        cJSON_AddNumberToObject(o, "tokens", x->tokens);
        cJSON_AddNumberToObject(o, "sequences", x->sequences);
        cJSON_AddNumberToObject(o, "t_begin_ns", (double)x->t_begin);
        cJSON_AddNumberToObject(o, "time_s", x->time_s);
        cJSON_AddNumberToObject(o, "activated_experts", x->activated);
        cJSON *bo = cJSON_AddObjectToObject(o, "bytes"), *fo = cJSON_AddObjectToObject(o, "flops");
        cJSON_AddNumberToObject(bo, "total", x->bytes);
        cJSON_AddNumberToObject(fo, "total", x->flops);
        cJSON_AddNumberToObject(o, "s_mbu", x->s_mbu);
        cJSON_AddNumberToObject(o, "mbu", x->mbu);
        if (r->peak > 0) { cJSON_AddNumberToObject(o, "s_mfu", x->s_mfu); cJSON_AddNumberToObject(o, "mfu", x->mfu); }
        cJSON_AddItemToArray(steps, o);
    }
    return steps;
}
