/* `moecap report RUN_DIR --model M --hw H [--out DIR] [--format json,md,html]`:
 * merges the run's .mct traces (k-way by timestamp), reconstructs forward steps and
 * activated experts (attrib.c), computes bytes/FLOPs/S-MBU/S-MFU/latency per step and in
 * aggregate, and writes report.json (docs/report-schema.md) plus the Markdown/HTML
 * renderings. Per-step records are streamed to a temporary file, so memory holds only
 * per-step state and a few numbers per step for the percentiles. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench/client_view.h"
#include "bench/lmeval.h"
#include "commands.h"
#include "render/render.h"
#include "report/attrib.h"
#include "report/hwprof.h"
#include "report/model.h"
#include "report/report_stats.h"
#include "trace/trace_reader.h"

#define NOTE_MAX 64

struct step_row {             /* what stays in memory per step */
    double time_s, s_mbu, s_mfu, mbu, mfu, c_smbu, c_smfu, bytes, flops;
    uint64_t t_begin;
    int32_t tokens, sequences, activated;
    uint8_t kind;             /* 0 prefill, 1 decode, 2 mixed */
};

struct totals {
    uint64_t steps, tokens, seqs;
    double time_s;
    double b_dense, b_routed, b_shared, kv_r, kv_w, b_all, f_gemm, f_att, f_all, f_unattr;
};

struct rep {
    const struct mc_model *m;
    struct mc_hw *hw;
    int devices;
    double bw, peak;           /* peak 0 = unknown */
    char compute_key[8];
    FILE *steps_out;           /* temporary: per-step JSON objects */
    struct step_row *rows; size_t n_rows, cap_rows;
    struct totals all, by_kind[3];
    uint64_t *load_tokens, *load_act;   /* n_moe x E */
    uint64_t first_begin, last_end;
    int ctx_inexact_steps;
    int n_moe;
    const int *moe_layers;
    int oom;
};

static double div0(double a, double b) { return b > 0 ? a / b : 0; }

/* MoE-CAP's reference formulas (Auto-CAP/MoE-CAP utils: basic_utils / qwen_utils), per
 * step; docs/metrics.md gives the derivation and the differences with ours. */
static void compat_step(const struct rep *r, const struct mc_step *s, double ctx_sum,
                        double *bytes, double *flops)
{
    const struct mc_model *m = r->m;
    double L = (double)m->layers, elt = s->elt ? s->elt : m->elt ? m->elt : 4;
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

static void put_u64(FILE *o, const char *k, uint64_t v) { fprintf(o, "\"%s\": %" PRIu64, k, v); }
static void put_dbl(FILE *o, const char *k, double v)
{
    if (!isfinite(v)) fprintf(o, "\"%s\": null", k);
    else fprintf(o, "\"%s\": %.9g", k, v);
}

static void on_step(const struct mc_step *s, void *user)
{
    struct rep *r = user;
    const struct mc_model *m = r->m;
    double t = (double)(s->t_end_ns - s->t_begin_ns) / 1e9;
    uint64_t bytes = s->bytes_dense + s->bytes_routed + s->bytes_shared + s->kv_read + s->kv_written;
    uint64_t flops = s->flops_gemm + s->flops_attention;
    double bwd = r->devices * r->bw, pkd = r->devices * r->peak;
    double smbu = div0(div0((double)bytes, t), bwd);
    double mbu = div0(div0((double)s->bytes_all_experts, t), bwd);
    double smfu = div0(div0((double)flops, t), pkd), mfu = div0(div0((double)s->flops_all_experts, t), pkd);
    double ctx_sum = 0;
    for (int64_t i = 0; i < s->n_context; i++) ctx_sum += (double)s->context[i];
    double cb, cf;
    compat_step(r, s, ctx_sum, &cb, &cf);
    double c_smbu = div0(div0(cb, t), bwd), c_smfu = div0(div0(cf, t), pkd);
    int kind = !strcmp(s->kind, "prefill") ? 0 : !strcmp(s->kind, "decode") ? 1 : 2;
    if (!s->context_exact) r->ctx_inexact_steps++;

    FILE *o = r->steps_out;
    if (s->index) fputs(",\n", o);
    fprintf(o, "{\"step\": %" PRIu64 ", \"kind\": \"%s\", \"pid\": %d, \"tid\": %d, ", s->index, s->kind, s->pid, s->tid);
    fprintf(o, "\"tokens\": %" PRId64 ", \"sequences\": %" PRId64 ", \"context\": [", s->tokens, s->sequences);
    for (int64_t i = 0; i < s->n_context; i++) fprintf(o, "%s%" PRId64, i ? ", " : "", s->context[i]);
    fprintf(o, "], \"context_exact\": %s, ", s->context_exact ? "true" : "false");
    put_u64(o, "t_begin_ns", s->t_begin_ns); fputs(", ", o);
    put_u64(o, "t_end_ns", s->t_end_ns); fputs(", ", o);
    put_u64(o, "wall_ns", s->t_end_ns - s->t_begin_ns); fputs(", ", o);
    put_dbl(o, "time_s", t); fputs(", ", o);
    put_u64(o, "gemm_calls", s->gemm_calls); fputs(", ", o);
    put_u64(o, "unattributed_gemm_calls", s->unattributed_calls); fputs(", ", o);
    fputs("\"layers\": [", o);
    for (int64_t l = 0; l < m->layers; l++) {
        int ord = -1;
        for (int i = 0; i < s->n_moe; i++) if (s->moe_layers[i] == l) { ord = i; break; }
        if (l) fputs(", ", o);
        if (ord < 0) { fprintf(o, "{\"layer\": %" PRId64 ", \"dense\": true}", l); continue; }
        const int64_t *c = s->counts + (int64_t)ord * s->n_experts;
        fprintf(o, "{\"layer\": %" PRId64 ", \"experts\": [", l);
        int first = 1;
        for (int64_t e = 0; e < s->n_experts; e++)
            if (c[e]) { fprintf(o, "%s%" PRId64, first ? "" : ", ", e); first = 0; }
        fputs("], \"tokens_per_expert\": [", o);
        first = 1;
        for (int64_t e = 0; e < s->n_experts; e++)
            if (c[e]) { fprintf(o, "%s%" PRId64, first ? "" : ", ", c[e]); first = 0; }
        fputs("]}", o);
        for (int64_t e = 0; e < s->n_experts && r->load_tokens; e++) {
            r->load_tokens[(int64_t)ord * s->n_experts + e] += (uint64_t)c[e];
            r->load_act[(int64_t)ord * s->n_experts + e] += c[e] > 0;
        }
    }
    fputs("], ", o);
    put_u64(o, "activated_experts", (uint64_t)s->activated); fputs(", \"bytes\": {", o);
    put_u64(o, "dense_weights", s->bytes_dense); fputs(", ", o);
    put_u64(o, "routed_expert_weights", s->bytes_routed); fputs(", ", o);
    put_u64(o, "shared_expert_weights", s->bytes_shared); fputs(", ", o);
    put_u64(o, "kv_read", s->kv_read); fputs(", ", o);
    put_u64(o, "kv_written", s->kv_written); fputs(", ", o);
    put_u64(o, "total", bytes); fputs(", ", o);
    put_u64(o, "all_experts_total", s->bytes_all_experts); fputs("}, \"flops\": {", o);
    put_u64(o, "gemm", s->flops_gemm); fputs(", ", o);
    put_u64(o, "attention", s->flops_attention); fputs(", ", o);
    put_u64(o, "total", flops); fputs(", ", o);
    put_u64(o, "all_experts_total", s->flops_all_experts); fputs(", ", o);
    put_u64(o, "unattributed_gemm", s->flops_unattributed); fputs("}, ", o);
    put_dbl(o, "s_mbu", smbu); fputs(", ", o);
    put_dbl(o, "mbu", mbu);
    if (r->peak > 0) { fputs(", ", o); put_dbl(o, "s_mfu", smfu); fputs(", ", o); put_dbl(o, "mfu", mfu); }
    fputs(", \"compat\": {", o);
    put_dbl(o, "bytes", cb); fputs(", ", o); put_dbl(o, "flops", cf); fputs(", ", o);
    put_dbl(o, "s_mbu", c_smbu);
    if (r->peak > 0) { fputs(", ", o); put_dbl(o, "s_mfu", c_smfu); }
    fputs("}}", o);

    struct totals *ts[2] = {&r->all, &r->by_kind[kind]};
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
    r->rows[r->n_rows++] = (struct step_row){t, smbu, smfu, mbu, mfu, c_smbu, c_smfu, (double)bytes, (double)flops,
                                             s->t_begin_ns, (int32_t)s->tokens, (int32_t)s->sequences,
                                             (int32_t)s->activated, (uint8_t)kind};
}

/* ---------- aggregates ---------- */

static cJSON *dist(const struct rep *r, size_t off, int kind_filter)
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

static void add_util(const struct rep *r, cJSON *o, const struct totals *x)
{
    double bw = r->devices * r->bw, pk = r->devices * r->peak;
    double b = x->b_dense + x->b_routed + x->b_shared + x->kv_r + x->kv_w;
    cJSON_AddNumberToObject(o, "s_mbu", div0(div0(b, x->time_s), bw));
    cJSON_AddNumberToObject(o, "mbu", div0(div0(x->b_all, x->time_s), bw));
    if (pk > 0) {
        cJSON_AddNumberToObject(o, "s_mfu", div0(div0(x->f_gemm + x->f_att, x->time_s), pk));
        cJSON_AddNumberToObject(o, "mfu", div0(div0(x->f_all, x->time_s), pk));
    }
}

static cJSON *totals_json(const struct rep *r, const struct totals *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "steps", (double)x->steps);
    cJSON_AddNumberToObject(o, "tokens", (double)x->tokens);
    cJSON_AddNumberToObject(o, "time_s", x->time_s);
    add_util(r, o, x);
    return o;
}

static cJSON *means(const struct rep *r, int kind, int compat)
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

static cJSON *aggregate_json(const struct rep *r)
{
    const struct totals *x = &r->all;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "steps", (double)x->steps);
    cJSON_AddNumberToObject(a, "prefill_steps", (double)r->by_kind[0].steps);
    cJSON_AddNumberToObject(a, "decode_steps", (double)r->by_kind[1].steps);
    cJSON_AddNumberToObject(a, "mixed_steps", (double)r->by_kind[2].steps);
    cJSON_AddNumberToObject(a, "tokens", (double)x->tokens);
    cJSON_AddNumberToObject(a, "prefill_tokens", (double)r->by_kind[0].tokens);
    cJSON_AddNumberToObject(a, "decode_tokens", (double)r->by_kind[1].tokens);
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
    cJSON_AddNumberToObject(tp, "total", div0((double)x->tokens, x->time_s));
    cJSON_AddNumberToObject(tp, "output", div0((double)x->seqs, x->time_s));
    cJSON_AddNumberToObject(tp, "prefill", div0((double)r->by_kind[0].tokens, r->by_kind[0].time_s));
    cJSON_AddNumberToObject(tp, "decode", div0((double)r->by_kind[1].tokens, r->by_kind[1].time_s));
    add_opt(a, "step_time_s", dist(r, offsetof(struct step_row, time_s), -1));
    add_opt(a, "s_mbu_dist", dist(r, offsetof(struct step_row, s_mbu), -1));
    if (r->peak > 0) add_opt(a, "s_mfu_dist", dist(r, offsetof(struct step_row, s_mfu), -1));
    add_opt(a, "ttft_server_s", dist(r, offsetof(struct step_row, time_s), 0));
    add_opt(a, "tpot_server_s", dist(r, offsetof(struct step_row, time_s), 1));
    const char *kn[3] = {"prefill", "decode", "mixed"};
    for (int k = 0; k < 3; k++)
        if (r->by_kind[k].steps) cJSON_AddItemToObject(a, kn[k], totals_json(r, &r->by_kind[k]));
    return a;
}

static cJSON *compat_json(const struct rep *r)
{
    const struct mc_model *m = r->m;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "method", "MoE-CAP reference formulas (arXiv 2412.07067, Auto-CAP/MoE-CAP): "
                            "L x (activated experts per layer x expert size + attention size) + KV cache, "
                            "per-step values averaged over steps");
    const char *kn[2] = {"prefill", "decode"};
    cJSON *ours = cJSON_CreateObject();
    for (int k = 0; k < 2; k++) {
        add_opt(c, kn[k], means(r, k, 1));
        add_opt(ours, kn[k], means(r, k, 0));
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

/* ---------- trace merge ---------- */

struct cursor {
    struct mc_trace *t;
    struct mc_trace_rec rec;
    int have;
    uint64_t key;
    int32_t pid;
    int status;
    char name[256];
};

static uint64_t rec_time(const struct mc_trace_rec *r, uint64_t prev)
{
    switch (r->type) {
    case MC_REC_GEMM: return r->u.gemm.t_begin_ns;
    case MC_REC_FILE_MAP: return r->u.file_map.t_ns;
    case MC_REC_STEP_MARK: return r->u.step_mark.t_ns;
    case MC_REC_MEMCPY: return r->u.memcpy.start_ns;
    case MC_REC_API: return r->u.api.t_begin_ns;
    case MC_REC_ALLOC: return r->u.alloc.t_ns;
    default: return prev;     /* untimed records keep the file's order */
    }
}

static void advance(struct cursor *c)
{
    c->status = mc_trace_next(c->t, &c->rec);
    c->have = c->status == MC_TRACE_RECORD;
    if (c->have) c->key = rec_time(&c->rec, c->key);
}

/* Naming facts first: every TENSOR and FILE_MAP record of every file, before any GEMM is
 * classified. Records of different threads reach a file in flush order, not time order (a
 * server's main thread maps the weights, its scheduler thread runs the steps, and the main
 * thread's ring may be written after all of the scheduler's GEMMs), so a single pass would
 * classify GEMMs by shape alone before their weights could be named. Costs one more read of
 * the files; the main pass then skips these records. */
static void collect_names(struct mc_attrib *at, const char *run_dir, char **names, size_t nn, int no_names)
{
    for (size_t i = 0; i < nn; i++) {
        char p[4096], err[256];
        snprintf(p, sizeof p, "%s/%s", run_dir, names[i]);
        struct mc_trace *t = mc_trace_open(p, err, sizeof err);
        if (!t) continue;   /* the main pass reports it */
        struct mc_trace_rec rec;
        int32_t pid = (int32_t)i;   /* as the main pass: until the process record says */
        while (mc_trace_next(t, &rec) == MC_TRACE_RECORD) {
            if (rec.type == MC_REC_PROCESS) pid = rec.u.process.pid;
            else if (rec.type == MC_REC_TENSOR && !no_names) {
                const struct mc_rec_tensor *x = &rec.u.tensor;
                mc_attrib_tensor(at, mc_trace_str(t, x->path_str), mc_trace_str(t, x->name_str),
                                 x->file_begin, x->file_end, x->shape, (int)(x->ndim > 8 ? 8 : x->ndim), x->dtype);
            } else if (rec.type == MC_REC_FILE_MAP) {
                const struct mc_rec_file_map *f = &rec.u.file_map;
                mc_attrib_file_map_t(at, pid, mc_trace_str(t, f->path_str), f->addr, f->file_offset, f->length,
                                     f->device, f->t_ns);
            } else if (rec.type == MC_REC_ALLOC) {
                const struct mc_rec_alloc *x = &rec.u.alloc;
                mc_attrib_alloc(at, pid, x->device, x->ptr, x->bytes, x->is_free, x->t_ns);
            } else if (rec.type == MC_REC_MEMCPY) {
                /* host->device copies with addresses (interposition): weight uploads name device
                 * ranges; CUPTI's copy records carry no addresses */
                const struct mc_rec_memcpy *x = &rec.u.memcpy;
                if (x->source == 1 && (x->kind == MC_COPY_H2D || x->kind == MC_COPY_UNKNOWN))
                    mc_attrib_h2d(at, pid, x->device, x->src, x->dst, x->bytes, x->start_ns);
            } else if (rec.type == MC_REC_TOPK_TAP) {
                mc_attrib_topk_expect(at, pid, rec.u.topk_tap.correlation_id);
            }
        }
        mc_trace_close(t);
    }
    /* kernel-parameter taps name their launch by CUPTI correlation id: the API activity
     * record of that id (written late, anywhere in the file) gives its thread and host time */
    for (size_t i = 0; i < nn && mc_attrib_topk_expected(at); i++) {
        char p[4096], err[256];
        snprintf(p, sizeof p, "%s/%s", run_dir, names[i]);
        struct mc_trace *t = mc_trace_open(p, err, sizeof err);
        if (!t) continue;
        struct mc_trace_rec rec;
        int32_t pid = (int32_t)i;
        while (mc_trace_next(t, &rec) == MC_TRACE_RECORD) {
            if (rec.type == MC_REC_PROCESS) pid = rec.u.process.pid;
            else if (rec.type == MC_REC_API && rec.u.api.correlation_id &&
                     (rec.u.api.api == MC_API_CUPTI_DRIVER || rec.u.api.api == MC_API_CUPTI_RUNTIME))
                mc_attrib_launch(at, pid, rec.u.api.correlation_id, rec.u.api.tid, rec.u.api.t_begin_ns);
        }
        mc_trace_close(t);
    }
    mc_attrib_names_done(at);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void usage(FILE *o)
{
    fprintf(o,
        "usage: moecap report RUN_DIR --model MODEL_DIR|config.json --hw NAME|FILE\n"
        "                     [--out DIR] [--format json,md,html] [--devices N] [--quiet]\n"
        "\n"
        "Reconstructs forward steps, layers and activated experts from the run's traces\n"
        "(RUN_DIR/*.mct, merged by timestamp) and the model's config.json (+ safetensors\n"
        "headers when present), and writes report.json (schema: docs/report-schema.md),\n"
        "report.md and report.html with S-MBU, S-MFU, dense MBU/MFU, bytes and FLOPs per\n"
        "step, server-side TTFT/TPOT, throughput, and the expert-load matrix. When RUN_DIR\n"
        "holds a `moecap bench` request log (requests.jsonl), its client-side latency and\n"
        "accuracy are joined in as the \"client\" section.\n"
        "\n"
        "  --model PATH     model directory (config.json [+ *.safetensors]) or a config.json\n"
        "  --hw NAME|FILE   hardware profile: data/hardware/NAME.json or a file\n"
        "  --out DIR        output directory (default: RUN_DIR)\n"
        "  --format LIST    any of json,md,html (default: all); json is always written\n"
        "  --devices N      devices in the utilisation denominators (default 1)\n"
        "  --lm-eval FILE   add accuracy from an lm-evaluation-harness results JSON\n"
        "  --quiet          no progress on stderr\n"
        "  --no-names       ignore tensor names (attribute by shape and position only; a check)\n"
        "\n"
        "Exit status: 0 ok, 2 bad input (unknown model/hardware, no or unreadable traces,\n"
        "a trace that does not match the model).\n");
}

static int write_text(const char *dir, const char *name, int (*fn)(const cJSON *, FILE *),
                      const cJSON *doc)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) { fprintf(stderr, "moecap report: cannot write %s: %s\n", p, strerror(errno)); return -1; }
    int rc = fn(doc, f);
    if (fclose(f) != 0) rc = -1;
    if (rc) fprintf(stderr, "moecap report: writing %s failed\n", p);
    return rc;
}

static void add_note(cJSON *notes, const char *level, const char *text)
{
    if (cJSON_GetArraySize(notes) >= NOTE_MAX) return;
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "level", level);
    cJSON_AddStringToObject(n, "text", text);
    cJSON_AddItemToArray(notes, n);
}

static const char *dtype_key(int dt)
{
    switch (dt) {
    case MC_DT_F32: return "f32";
    case MC_DT_BF16: return "bf16";
    case MC_DT_F16: return "f16";
    case MC_DT_F8E4M3: case MC_DT_F8E5M2: return "fp8";
    case MC_DT_I8: return "int8";
    case MC_DT_F64: return "f64";
    default: return NULL;
    }
}

int mc_cmd_report(int argc, char **argv)
{
    const char *run_dir = NULL, *model_path = NULL, *hw_spec = NULL, *out_dir = NULL;
    const char *formats = "json,md,html", *lmeval_path = NULL;
    int devices = 1, quiet = 0, no_names = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--no-names")) no_names = 1;
        else if (i + 1 < argc && !strcmp(a, "--model")) model_path = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--hw")) hw_spec = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--out")) out_dir = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--format")) formats = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--devices")) devices = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(a, "--lm-eval")) lmeval_path = argv[++i];
        else if (a[0] == '-') { fprintf(stderr, "moecap report: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
        else if (!run_dir) run_dir = a;
        else { fprintf(stderr, "moecap report: unexpected argument '%s'\n", a); usage(stderr); return 2; }
    }
    if (!run_dir || !model_path || !hw_spec) {
        fprintf(stderr, "moecap report: RUN_DIR, --model and --hw are required\n");
        usage(stderr);
        return 2;
    }
    if (devices < 1) { fprintf(stderr, "moecap report: --devices must be >= 1\n"); return 2; }
    if (!out_dir) out_dir = run_dir;
    int want_md = strstr(formats, "md") != NULL, want_html = strstr(formats, "html") != NULL;

    char err[1024];
    struct mc_model model;
    if (mc_model_load(model_path, &model, err, sizeof err) != 0) {
        fprintf(stderr, "moecap report: %s\n", err);
        return 2;
    }
    if (no_names) {
        int dt = model.weight_dtype, elt = model.elt;
        mc_model_free(&model);   /* drops the safetensors tables only */
        model.weight_dtype = dt; model.elt = elt;
    }
    struct mc_hw hw;
    if (mc_hw_load(hw_spec, &hw, err, sizeof err) != 0) {
        fprintf(stderr, "moecap report: %s\n", err);
        mc_model_free(&model);
        return 2;
    }

    /* trace files */
    int rc = 2;
    DIR *d = opendir(run_dir);
    if (!d) {
        fprintf(stderr, "moecap report: cannot open run directory %s: %s\n", run_dir, strerror(errno));
        mc_hw_free(&hw); mc_model_free(&model);
        return 2;
    }
    char **names = NULL;
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".mct")) {
            char **p = realloc(names, (nn + 1) * sizeof *names);
            if (!p) break;
            names = p;
            names[nn++] = strdup(de->d_name);
        }
    }
    closedir(d);
    struct cursor *cur = NULL;
    cJSON *root = NULL, *notes = cJSON_CreateArray();
    struct mc_attrib *at = NULL;
    struct rep r;
    memset(&r, 0, sizeof r);
    FILE *steps_tmp = NULL;
    if (!nn) {
        fprintf(stderr, "moecap report: no trace files (*.mct) in %s — run the program with "
                "LD_PRELOAD=libmoecap.so MOECAP_OUT=%s first\n", run_dir, run_dir);
        goto out;
    }
    qsort(names, nn, sizeof *names, name_cmp);
    cur = calloc(nn, sizeof *cur);
    for (size_t i = 0; i < nn; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", run_dir, names[i]);
        snprintf(cur[i].name, sizeof cur[i].name, "%s", names[i]);
        cur[i].t = mc_trace_open(p, err, sizeof err);
        if (!cur[i].t) {
            fprintf(stderr, "moecap report: %s\n", err);
            goto out;
        }
        cur[i].pid = (int32_t)i;   /* until the process record says */
        advance(&cur[i]);
    }

    steps_tmp = tmpfile();
    if (!steps_tmp) { fprintf(stderr, "moecap report: cannot create a temporary file: %s\n", strerror(errno)); goto out; }
    r.m = &model; r.hw = &hw; r.devices = devices; r.bw = hw.bandwidth_Bps; r.steps_out = steps_tmp;
    at = mc_attrib_new(&model, on_step, &r);
    if (!at) { fprintf(stderr, "moecap report: out of memory\n"); goto out; }
    collect_names(at, run_dir, names, nn, no_names);
    {   /* moe layer list for the expert-load matrix */
        r.n_moe = (int)model.n_moe_layers;
        size_t cells = (size_t)r.n_moe * (size_t)model.experts;
        r.load_tokens = calloc(cells ? cells : 1, sizeof *r.load_tokens);
        r.load_act = calloc(cells ? cells : 1, sizeof *r.load_act);
    }
    int tty = isatty(2);
    uint64_t nrec = 0, ngemm = 0, dropped = 0, marks = 0;
    int have_dtype = 0;
    /* GPU kernels (CUPTI activity): count, summed duration, and busy time as the union of
     * the kernel intervals (records come about in start order per device; a kernel that
     * starts before the running end only adds its overhang) */
    uint64_t nkern = 0, kern_first = 0, kern_last = 0;
    double kern_sum_ns = 0, kern_busy_ns = 0;
    uint64_t kern_busy_end = 0;
    cJSON *procs = cJSON_CreateArray();
    for (;;) {
        struct cursor *c = NULL;
        for (size_t i = 0; i < nn; i++)
            if (cur[i].have && (!c || cur[i].key < c->key)) c = &cur[i];
        if (!c) break;
        const struct mc_trace_rec *rec = &c->rec;
        nrec++;
        switch (rec->type) {
        case MC_REC_GEMM:
            ngemm++;
            if (!have_dtype) {
                /* the operands' type picks the peak (bf16 x bf16 with f32 accumulation runs at
                 * the bf16 tensor-core rate); the accumulation type only when they are unknown */
                int dt = dtype_key(rec->u.gemm.dtype_a) ? rec->u.gemm.dtype_a : rec->u.gemm.dtype_compute;
                const char *k = dtype_key(dt);
                if (!k) k = dtype_key(model.weight_dtype);
                if (k) {
                    snprintf(r.compute_key, sizeof r.compute_key, "%s", k);
                    r.peak = mc_hw_peak_flops(&hw, k);
                }
                if (!model.elt) { model.elt = mc_dtype_bytes(rec->u.gemm.dtype_b); model.weight_dtype = rec->u.gemm.dtype_b; }
                have_dtype = 1;
            }
            mc_attrib_gemm(at, c->pid, &rec->u.gemm);
            break;
        case MC_REC_TENSOR: case MC_REC_FILE_MAP: break;   /* taken by collect_names */
        case MC_REC_PROCESS: {
            const struct mc_rec_process *p = &rec->u.process;
            c->pid = p->pid;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "file", c->name);
            cJSON_AddNumberToObject(o, "pid", p->pid);
            cJSON_AddNumberToObject(o, "ppid", p->ppid);
            const char *s = mc_trace_str(c->t, p->exe_str);
            if (s) cJSON_AddStringToObject(o, "exe", s);
            s = mc_trace_str(c->t, p->host_str);
            if (s) cJSON_AddStringToObject(o, "host", s);
            cJSON *av = cJSON_AddArrayToObject(o, "argv");
            const char *v = rec->var;
            size_t left = rec->var_len < p->argv_bytes ? rec->var_len : p->argv_bytes;
            for (uint32_t k = 0; v && k < p->argc && left > 0 && k < 64; k++) {
                size_t l = strnlen(v, left);
                char *tmp = strndup(v, l);
                if (tmp) { cJSON_AddItemToArray(av, cJSON_CreateString(tmp)); free(tmp); }
                if (l + 1 >= left) break;
                v += l + 1; left -= l + 1;
            }
            cJSON_AddItemToArray(procs, o);
            break;
        }
        case MC_REC_TOPK_TAP: {
            const struct mc_rec_topk_tap *t = &rec->u.topk_tap;
            mc_attrib_topk_tap(at, c->pid, t->correlation_id, t->t_ns, t->rows, t->k, t->invalid,
                               (const uint32_t *)rec->var, (int64_t)(rec->var_len / 4));
            break;
        }
        case MC_REC_ROUTER_TAP: {
            const struct mc_rec_router_tap *t = &rec->u.router_tap;
            mc_attrib_router_tap(at, c->pid, t->tid, t->t_ns, t->tokens, t->experts, t->dtype, t->layout,
                                 rec->var, rec->var_len);
            break;
        }
        case MC_REC_API: {
            /* Synchronising calls close a GPU step; launches and other CUDA calls open one.
             * CUPTI's own activity records (MC_API_CUPTI_*) arrive late and are not used. */
            const struct mc_rec_api *x = &rec->u.api;
            unsigned id = x->api;
            if (id == MC_API_CUDA_STREAM_SYNC || id == MC_API_CUDA_EVENT_SYNC || id == MC_API_CUDA_DEVICE_SYNC ||
                id == MC_API_CU_STREAM_SYNC || id == MC_API_CU_EVENT_SYNC || id == MC_API_CU_CTX_SYNC) {
                if (!mc_attrib_gpu_sync(at, c->pid, x->tid, x->t_begin_ns, x->t_end_ns))
                    mc_attrib_gpu_activity(at, c->pid, x->tid, x->t_begin_ns);
            } else if (id >= MC_API_CUDA_LAUNCH_KERNEL && id <= MC_API_CU_GRAPH_LAUNCH) {
                mc_attrib_gpu_activity(at, c->pid, x->tid, x->t_begin_ns);
            }
            break;
        }
        case MC_REC_MEMCPY: {
            const struct mc_rec_memcpy *x = &rec->u.memcpy;
            if (x->source != 1) break;   /* CUPTI's device-side copy records: not host boundaries */
            if (x->kind == MC_COPY_D2H && !x->async && mc_attrib_gpu_sync(at, c->pid, -1, x->start_ns, x->end_ns)) break;
            mc_attrib_gpu_activity(at, c->pid, -1, x->start_ns);
            break;
        }
        case MC_REC_KERNEL: {
            const struct mc_rec_kernel *k = &rec->u.kernel;
            if (k->end_ns <= k->start_ns || k->source != 0) break;   /* launch-interposition records carry no duration */
            nkern++;
            kern_sum_ns += (double)(k->end_ns - k->start_ns);
            if (k->start_ns >= kern_busy_end) kern_busy_ns += (double)(k->end_ns - k->start_ns);
            else if (k->end_ns > kern_busy_end) kern_busy_ns += (double)(k->end_ns - kern_busy_end);
            if (k->end_ns > kern_busy_end) kern_busy_end = k->end_ns;
            if (!kern_first || k->start_ns < kern_first) kern_first = k->start_ns;
            if (k->end_ns > kern_last) kern_last = k->end_ns;
            break;
        }
        case MC_REC_DROPPED: dropped += rec->u.dropped.count; break;
        case MC_REC_STEP_MARK: marks++; break;
        case MC_REC_NOTE: {
            const char *s = mc_trace_str(c->t, rec->u.note.text_str);
            if (s) add_note(notes, rec->u.note.level >= MC_NOTE_WARNING ? "warning" : "info", s);
            break;
        }
        default: break;
        }
        if (!quiet && (nrec % (tty ? 1000000 : 5000000)) == 0)
            fprintf(stderr, tty ? "\rmoecap report: %" PRIu64 " M records, %zu steps" : "moecap report: %" PRIu64 " M records, %zu steps\n",
                    nrec / 1000000, r.n_rows);
        advance(c);
    }
    if (!quiet && tty && nrec >= 1000000) fputc('\n', stderr);
    mc_attrib_finish(at);
    struct mc_attrib_stats ast;
    mc_attrib_stats(at, &ast);

    cJSON *truncated = cJSON_CreateArray();
    for (size_t i = 0; i < nn; i++) {
        if (cur[i].status == MC_TRACE_END) continue;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: %s; records up to there were used", cur[i].name, mc_trace_error(cur[i].t));
        if (cur[i].status == MC_TRACE_TRUNCATED) cJSON_AddItemToArray(truncated, cJSON_CreateString(cur[i].name));
        fprintf(stderr, "moecap report: warning: %s\n", msg);
        add_note(notes, "warning", msg);
    }
    /* Does the trace fit the model? */
    if (!ngemm) {
        fprintf(stderr, "moecap report: the traces in %s hold no GEMM records (%" PRIu64 " records): "
                "was the program's BLAS intercepted by libmoecap.so?\n", run_dir, nrec);
        cJSON_Delete(procs); cJSON_Delete(truncated);
        goto out;
    }
    if (!r.n_rows || ast.router_mismatch_steps || ast.shape_mismatch || ast.structure_mismatch_steps) {
        fprintf(stderr, "moecap report: the trace does not match the model %s: ", model.path);
        if (ast.shape_mismatch)
            fprintf(stderr, "%" PRIu64 " GEMMs use named weights whose shape the config does not predict (e.g. %s; "
                    "config: hidden_size %lld, experts %lld x intermediate %lld, vocab %lld",
                    ast.shape_mismatch, ast.mismatch_example, (long long)model.d, (long long)model.experts,
                    (long long)model.f, (long long)model.vocab);
        else if (ast.structure_mismatch_steps)
            fprintf(stderr, "%" PRIu64 " steps lack the %s GEMMs the config predicts",
                    ast.structure_mismatch_steps, model.fs > 0 ? "shared-expert (or dense FFN)" : "dense-layer FFN");
        else if (!r.n_rows)
            fprintf(stderr, "no forward step found (no GEMM with the lm_head shape out = vocab_size %lld x in = hidden_size %lld",
                    (long long)model.vocab, (long long)model.d);
        else
            fprintf(stderr, "%" PRIu64 " steps do not have one router GEMM (out = %lld experts x in = %lld) per MoE layer (%lld)",
                    ast.router_mismatch_steps, (long long)model.experts, (long long)model.d, (long long)model.n_moe_layers);
        if (cJSON_GetArraySize(truncated) > 0 && !r.n_rows) fprintf(stderr, "; the trace is truncated before the first complete step");
        fprintf(stderr, ")\n  most frequent unattributed GEMM shapes (out x in: calls):");
        for (int i = 0; i < ast.n_unknown_shapes; i++)
            fprintf(stderr, " %lldx%lld: %" PRIu64 ";", (long long)ast.unknown_shape_out[i],
                    (long long)ast.unknown_shape_in[i], ast.unknown_shape_count[i]);
        fprintf(stderr, "\n  check that --model is the model the traced program ran\n");
        cJSON_Delete(procs); cJSON_Delete(truncated);
        goto out;
    }
    if (r.oom) { fprintf(stderr, "moecap report: out of memory\n"); cJSON_Delete(procs); cJSON_Delete(truncated); goto out; }

    /* notes of our own */
    char msg[512];
    if (ast.unattributed) {
        snprintf(msg, sizeof msg, "%" PRIu64 " of %" PRIu64 " GEMM calls matched no weight of the model "
                 "(counted in flops.unattributed_gemm, not in S-MFU)", ast.unattributed, ast.gemms);
        add_note(notes, "info", msg);
    }
    if (ast.tap_missing_layers) {
        snprintf(msg, sizeof msg, "%" PRIu64 " MoE layer(s) ran their experts without GEMMs (fused kernel) and no "
                 "router-logit tap came for them: their experts are missing (set MOECAP_ROUTER_TAP or "
                 "MOECAP_MODEL for the shim)", ast.tap_missing_layers);
        add_note(notes, "warning", msg);
    }
    if (ast.taps_unreadable || ast.taps_unmatched) {
        snprintf(msg, sizeof msg, "%" PRIu64 " router-logit taps unreadable (dtype/size/experts), %" PRIu64
                 " never matched a router GEMM", ast.taps_unreadable, ast.taps_unmatched);
        add_note(notes, "warning", msg);
    }
    if (ast.topk_router_disagree || ast.topk_gemm_disagree) {
        snprintf(msg, sizeof msg, "kernel-parameter (top-k) taps disagree with %" PRIu64 " router-logit tap(s) and %"
                 PRIu64 " layer(s) of expert GEMMs (agree: %" PRIu64 ", %" PRIu64 "); the top-k tap (the kernel's own "
                 "choice) was used for fused layers", ast.topk_router_disagree, ast.topk_gemm_disagree,
                 ast.topk_router_agree, ast.topk_gemm_agree);
        add_note(notes, "warning", msg);
    }
    if (ast.topk_unplaced) {
        snprintf(msg, sizeof msg, "%" PRIu64 " of %" PRIu64 " kernel-parameter (top-k) taps could not be placed in a "
                 "step's MoE layer (no router GEMM before their launch, or their step was already written)",
                 ast.topk_unplaced, ast.topk_taps);
        add_note(notes, "warning", msg);
    }
    if (ast.topk_invalid_ids || ast.topk_ids_beyond_model) {
        snprintf(msg, sizeof msg, "%" PRIu64 " expert ids in top-k taps were outside this process's experts "
                 "(expert parallelism or padding): not counted", ast.topk_invalid_ids + ast.topk_ids_beyond_model);
        add_note(notes, "info", msg);
    }
    if (ast.weight_elt > 0 && model.elt && ast.weight_elt != model.elt) {
        snprintf(msg, sizeof msg, "the GEMMs read %d-byte weights while the model files say %d bytes per element: "
                 "weight, norm, embedding and KV-cache bytes use the GEMMs' element size", ast.weight_elt, model.elt);
        add_note(notes, "info", msg);
    }
    if (ast.open_steps_dropped) {
        snprintf(msg, sizeof msg, "%" PRIu64 " forward step(s) at the end of the trace had no lm_head GEMM and were dropped", ast.open_steps_dropped);
        add_note(notes, "warning", msg);
    }
    if (!ast.expert_ids_exact)
        add_note(notes, "warning", "some expert weights could not be named (no tensor names for their addresses): "
                 "their ids are first-seen order within the layer, not the model's expert numbers");
    if (r.ctx_inexact_steps) {
        snprintf(msg, sizeof msg, "%d step(s) have per-sequence contexts that the trace cannot determine "
                 "(ragged prefill or sequences leaving a batch): KV bytes are exact, prefill attention "
                 "FLOPs assume the most even split (docs/attribution.md)", r.ctx_inexact_steps);
        add_note(notes, "warning", msg);
    }
    if (dropped) {
        snprintf(msg, sizeof msg, "the shim reported %" PRIu64 " dropped events: results undercount", dropped);
        add_note(notes, "warning", msg);
    }
    if (r.peak <= 0) {
        snprintf(msg, sizeof msg, "hardware profile %s has no peak FLOPS for %s: S-MFU/MFU omitted",
                 hw.name, r.compute_key[0] ? r.compute_key : "the compute dtype");
        add_note(notes, "warning", msg);
    }

    root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "schema_version", 1);
    cJSON *gen = cJSON_AddObjectToObject(root, "generator");
    cJSON_AddStringToObject(gen, "name", "moecap report");
    cJSON_AddStringToObject(gen, "version", "0.1");
    cJSON *defs = cJSON_AddObjectToObject(root, "definitions");
    cJSON_AddStringToObject(defs, "s_mbu", "bytes read+written by the step (dense weights + activated expert weights + KV read + KV written) / step time / (devices x peak memory bandwidth)");
    cJSON_AddStringToObject(defs, "s_mfu", "FLOPs of the step (GEMMs actually executed + causal attention) / step time / (devices x dense peak FLOPS of the compute dtype)");
    cJSON_AddStringToObject(defs, "mbu", "as s_mbu with every routed expert of every MoE layer counted as read");
    cJSON_AddStringToObject(defs, "mfu", "as s_mfu with every token counted through every expert");
    cJSON_AddStringToObject(defs, "step_time", "first GEMM of the step begins -> lm_head GEMM ends (host CLOCK_MONOTONIC)");
    cJSON_AddStringToObject(defs, "ttft_server", "prefill step time (server side; client TTFT adds queueing and network)");
    cJSON_AddStringToObject(defs, "tpot_server", "decode step time (server side)");
    cJSON_AddStringToObject(defs, "aggregates", "totals over totals: sum of bytes or FLOPs / sum of step times; percentiles nearest-rank over steps");
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    cJSON_AddStringToObject(run, "dir", run_dir);
    cJSON *tf = cJSON_AddArrayToObject(run, "trace_files");
    for (size_t i = 0; i < nn; i++) cJSON_AddItemToArray(tf, cJSON_CreateString(names[i]));
    cJSON_AddItemToObject(run, "processes", procs);
    cJSON_AddNumberToObject(run, "records", (double)nrec);
    cJSON_AddNumberToObject(run, "gemm_records", (double)ngemm);
    cJSON_AddNumberToObject(run, "gemm_unattributed", (double)ast.unattributed);
    cJSON_AddNumberToObject(run, "step_marks", (double)marks);
    cJSON_AddNumberToObject(run, "dropped_events", (double)dropped);
    cJSON_AddItemToObject(run, "truncated_files", truncated);
    cJSON_AddNumberToObject(run, "span_s", r.last_end > r.first_begin ? (double)(r.last_end - r.first_begin) / 1e9 : 0);
    cJSON *attr = cJSON_AddObjectToObject(run, "attribution");
    cJSON_AddStringToObject(attr, "names", ast.shape_weights == 0 ? "tensor" : ast.named_weights == 0 ? "shape" : "mixed");
    cJSON_AddStringToObject(attr, "expert_ids", ast.expert_ids_exact ? "exact" : "order");
    cJSON_AddNumberToObject(attr, "named_weights", (double)ast.named_weights);
    cJSON_AddNumberToObject(attr, "shape_weights", (double)ast.shape_weights);
    cJSON_AddNumberToObject(attr, "router_taps", (double)ast.taps);
    {   /* how GPU weight addresses were named (docs/attribution.md §3b) and the top-k taps (§4c) */
        cJSON *nb = cJSON_AddObjectToObject(attr, "named_by");
        cJSON_AddNumberToObject(nb, "host_file_map", (double)ast.named_host);
        cJSON_AddNumberToObject(nb, "device_file_map", (double)ast.named_device_map);
        cJSON_AddNumberToObject(nb, "host_to_device_copy", (double)ast.named_device_copy);
        cJSON_AddNumberToObject(nb, "expert_device_range", (double)ast.expert_range_weights);
        cJSON_AddNumberToObject(nb, "expert_first_seen_order", (double)ast.order_weights);
        if (ast.weight_elt > 0) cJSON_AddNumberToObject(attr, "gemm_weight_bytes_per_element", ast.weight_elt);
        if (ast.topk_taps) {
            cJSON *tk = cJSON_AddObjectToObject(attr, "topk_taps");
            cJSON_AddNumberToObject(tk, "records", (double)ast.topk_taps);
            cJSON_AddNumberToObject(tk, "placed_by_launch", (double)ast.topk_by_launch);
            cJSON_AddNumberToObject(tk, "placed_by_arrival_time", (double)ast.topk_by_time);
            cJSON_AddNumberToObject(tk, "used_for_layers", (double)ast.topk_used);
            cJSON_AddNumberToObject(tk, "unplaced", (double)ast.topk_unplaced);
            cJSON_AddNumberToObject(tk, "agree_with_router_taps", (double)ast.topk_router_agree);
            cJSON_AddNumberToObject(tk, "disagree_with_router_taps", (double)ast.topk_router_disagree);
            cJSON_AddNumberToObject(tk, "agree_with_expert_gemms", (double)ast.topk_gemm_agree);
            cJSON_AddNumberToObject(tk, "disagree_with_expert_gemms", (double)ast.topk_gemm_disagree);
            cJSON_AddNumberToObject(tk, "ids_not_local", (double)(ast.topk_invalid_ids + ast.topk_ids_beyond_model));
        }
    }

    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "path", model.path);
    cJSON_AddStringToObject(mo, "architecture", model.arch_name);
    cJSON_AddStringToObject(mo, "model_type", model.model_type);
    cJSON_AddNumberToObject(mo, "hidden_size", (double)model.d);
    cJSON_AddNumberToObject(mo, "num_layers", (double)model.layers);
    cJSON *ml = cJSON_AddArrayToObject(mo, "moe_layers"), *dl = cJSON_AddArrayToObject(mo, "dense_layers");
    for (int64_t l = 0; l < model.layers; l++)
        cJSON_AddItemToArray(model.is_moe[l] ? ml : dl, cJSON_CreateNumber((double)l));
    cJSON_AddNumberToObject(mo, "num_experts", (double)model.experts);
    cJSON_AddNumberToObject(mo, "top_k", (double)model.top_k);
    cJSON_AddNumberToObject(mo, "moe_intermediate_size", (double)model.f);
    if (model.fd > 0 && model.n_moe_layers < model.layers) cJSON_AddNumberToObject(mo, "intermediate_size", (double)model.fd);
    cJSON_AddNumberToObject(mo, "shared_experts", (double)model.n_shared);
    cJSON_AddNumberToObject(mo, "shared_intermediate_size", (double)model.fs);
    cJSON_AddNumberToObject(mo, "num_heads", (double)model.heads);
    cJSON_AddNumberToObject(mo, "num_kv_heads", (double)model.kv_heads);
    cJSON_AddNumberToObject(mo, "head_dim", (double)model.head_dim);
    cJSON_AddNumberToObject(mo, "vocab_size", (double)model.vocab);
    cJSON_AddBoolToObject(mo, "tie_word_embeddings", model.tie_embeddings);
    cJSON_AddStringToObject(mo, "weight_dtype", mc_dtype_name((unsigned)model.weight_dtype));
    cJSON_AddNumberToObject(mo, "bytes_per_element", model.elt);
    cJSON_AddNumberToObject(mo, "expert_bytes", (double)mc_model_expert_params(&model) * model.elt);
    {
        double L = (double)model.layers, nm = (double)model.n_moe_layers;
        double dense = L * (double)(mc_model_attn_params(&model) + mc_model_norm_params(&model))
                       + nm * (double)model.experts * (double)model.d
                       + (L - nm) * 3.0 * (double)model.d * (double)model.fd
                       + (double)model.vocab * (double)model.d * (model.tie_embeddings ? 1 : 2) + (double)model.d;
        double routed = nm * (double)model.experts * (double)mc_model_expert_params(&model);
        double shared = nm * (double)(mc_model_shared_params(&model) + (model.shared_gate ? model.d : 0));
        cJSON *p = cJSON_AddObjectToObject(mo, "params");
        cJSON_AddNumberToObject(p, "total", dense + routed + shared);
        cJSON_AddNumberToObject(p, "dense", dense);
        cJSON_AddNumberToObject(p, "routed_experts", routed);
        cJSON_AddNumberToObject(p, "shared_experts", shared);
        cJSON_AddNumberToObject(p, "activated_per_token", dense + shared + nm * (double)model.top_k * (double)mc_model_expert_params(&model));
    }

    cJSON *h = cJSON_AddObjectToObject(root, "hardware");
    cJSON_AddStringToObject(h, "name", hw.name);
    if (hw.kind) cJSON_AddStringToObject(h, "kind", hw.kind);
    if (hw.model) cJSON_AddStringToObject(h, "model", hw.model);
    cJSON_AddStringToObject(h, "profile_path", hw.path);
    cJSON_AddNumberToObject(h, "devices", devices);
    cJSON_AddNumberToObject(h, "memory_bandwidth_Bps", hw.bandwidth_Bps);
    if (r.compute_key[0]) cJSON_AddStringToObject(h, "compute_dtype", r.compute_key);
    if (r.peak > 0) cJSON_AddNumberToObject(h, "peak_flops", r.peak);
    cJSON_AddBoolToObject(h, "measured", hw.measured);
    cJSON_AddStringToObject(h, "peaks", hw.measured ? "measured" : "spec");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(hw.json, "source");
    if (src) cJSON_AddItemToObject(h, "source", cJSON_Duplicate(src, 1));

    cJSON *agg = aggregate_json(&r);
    if (nkern) {
        cJSON *gk = cJSON_AddObjectToObject(agg, "gpu_kernels");
        cJSON_AddNumberToObject(gk, "count", (double)nkern);
        cJSON_AddNumberToObject(gk, "kernel_time_s", kern_sum_ns / 1e9);
        cJSON_AddNumberToObject(gk, "busy_s", kern_busy_ns / 1e9);
        cJSON_AddNumberToObject(gk, "first_to_last_s", (double)(kern_last - kern_first) / 1e9);
        double span = (double)(r.last_end - r.first_begin);
        if (span > 0) cJSON_AddNumberToObject(gk, "busy_fraction_of_step_span", div0(kern_busy_ns, span));
    }
    cJSON_AddItemToObject(root, "aggregate", agg);
    cJSON *el = cJSON_AddObjectToObject(root, "expert_load");
    cJSON *ell = cJSON_AddArrayToObject(el, "layers");
    cJSON *elt_ = cJSON_AddArrayToObject(el, "tokens"), *ela = cJSON_AddArrayToObject(el, "activations");
    cJSON_AddNumberToObject(el, "num_experts", (double)model.experts);
    for (int i = 0, k = 0; i < model.layers; i++) {
        if (!model.is_moe[i]) continue;
        cJSON_AddItemToArray(ell, cJSON_CreateNumber(i));
        cJSON *rt = cJSON_CreateArray(), *ra = cJSON_CreateArray();
        for (int64_t e = 0; e < model.experts; e++) {
            cJSON_AddItemToArray(rt, cJSON_CreateNumber((double)r.load_tokens[(int64_t)k * model.experts + e]));
            cJSON_AddItemToArray(ra, cJSON_CreateNumber((double)r.load_act[(int64_t)k * model.experts + e]));
        }
        cJSON_AddItemToArray(elt_, rt);
        cJSON_AddItemToArray(ela, ra);
        k++;
    }
    cJSON_AddStringToObject(el, "expert_ids", ast.expert_ids_exact ? "exact" : "order");
    cJSON_AddItemToObject(root, "moecap_compat", compat_json(&r));
    {   /* client side (moecap bench's request log in the run directory), docs/bench.md */
        char cerr[512] = "";
        cJSON *client = mc_bench_client_view(run_dir, 1, cerr, sizeof cerr);
        if (client) cJSON_AddItemToObject(root, "client", client);
        else if (cerr[0]) {
            snprintf(msg, sizeof msg, "request log not joined: %s", cerr);
            add_note(notes, "warning", msg);
        }
    }
    if (lmeval_path) {
        cJSON *acc = NULL;
        char lerr[512] = "";
        if (mc_lmeval_read(lmeval_path, &acc, lerr, sizeof lerr) == 0 && acc) {
            cJSON_AddItemToObject(root, "lm_eval", acc);
        } else {
            fprintf(stderr, "moecap report: --lm-eval %s: %s\n", lmeval_path, lerr);
            cJSON_Delete(root);
            root = NULL;
            goto out;
        }
    }
    cJSON_AddItemToObject(root, "notes", notes);
    notes = NULL;

    /* report.json: everything above, then the streamed steps */
    {
        mkdir(out_dir, 0755);
        char p[4096], tmp[4200];
        snprintf(p, sizeof p, "%s/report.json", out_dir);
        snprintf(tmp, sizeof tmp, "%s.tmp", p);
        FILE *f = fopen(tmp, "w");
        if (!f) { fprintf(stderr, "moecap report: cannot write %s: %s\n", tmp, strerror(errno)); goto out; }
        char *head = cJSON_Print(root);
        size_t hl = head ? strlen(head) : 0;
        while (hl && head[hl - 1] != '}') hl--;
        if (hl) hl--;                       /* drop the closing brace */
        while (hl && (head[hl - 1] == '\n' || head[hl - 1] == ' ' || head[hl - 1] == '\t')) hl--;
        fwrite(head, 1, hl, f);
        free(head);
        fputs(",\n\t\"steps\": [\n", f);
        rewind(steps_tmp);
        char buf[1 << 16];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, steps_tmp)) > 0) fwrite(buf, 1, n, f);
        fputs("\n\t]\n}\n", f);
        if (fclose(f) != 0 || rename(tmp, p) != 0) {
            fprintf(stderr, "moecap report: writing %s failed: %s\n", p, strerror(errno));
            goto out;
        }
        if (!quiet) fprintf(stderr, "moecap report: %zu steps from %" PRIu64 " records -> %s\n", r.n_rows, nrec, p);
    }
    /* renderers get the document with compact steps (no per-layer lists) */
    if (want_md || want_html) {
        cJSON *steps = cJSON_AddArrayToObject(root, "steps");
        static const char *kn[3] = {"prefill", "decode", "mixed"};
        for (size_t i = 0; i < r.n_rows; i++) {
            const struct step_row *x = &r.rows[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", (double)i);
            cJSON_AddStringToObject(o, "kind", kn[x->kind]);
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
            if (r.peak > 0) { cJSON_AddNumberToObject(o, "s_mfu", x->s_mfu); cJSON_AddNumberToObject(o, "mfu", x->mfu); }
            cJSON_AddItemToArray(steps, o);
        }
        if (want_md && write_text(out_dir, "report.md", mc_render_markdown, root) != 0) goto out;
        if (want_html && write_text(out_dir, "report.html", mc_render_html, root) != 0) goto out;
    }
    rc = 0;
out:
    if (steps_tmp) fclose(steps_tmp);
    cJSON_Delete(root);
    cJSON_Delete(notes);
    mc_attrib_free(at);
    free(r.rows); free(r.load_tokens); free(r.load_act);
    for (size_t i = 0; i < nn; i++) { if (cur && cur[i].t) mc_trace_close(cur[i].t); free(names[i]); }
    free(cur); free(names);
    mc_hw_free(&hw);
    mc_model_free(&model);
    return rc;
}
