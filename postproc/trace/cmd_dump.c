/* `moecap dump FILE.mct [--summary]`: every record as one JSON line with strings resolved,
 * or counts per record type and per GEMM api. Built on the trace reader library; bad input
 * gives a clear message and exit status 2, never a crash. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "trace/trace_reader.h"
#include "trace/trace_symbols.h"
#include "trace/utf8.h"

/* "key":"text" for a string id (null when unresolved; the id is printed too). Text from a
 * trace is untrusted: escaped, invalid UTF-8 replaced (utf8.h). */
static void put_str_field(FILE *o, struct mc_trace *t, const char *key, uint32_t id)
{
    fprintf(o, ",\"%s\":%u,\"%s_text\":", key, id, key);
    const char *s = mc_trace_str(t, id);
    if (s) mc_utf8_put_json(o, s, (size_t)-1);
    else fputs("null", o);
}

static void put_double(FILE *o, const char *key, double v)
{
    if (v != v || v > 1e308 || v < -1e308) fprintf(o, ",\"%s\":null", key);
    else fprintf(o, ",\"%s\":%.17g", key, v);
}

#define U64(k, v) fprintf(o, ",\"" k "\":%" PRIu64, (uint64_t)(v))
#define I64(k, v) fprintf(o, ",\"" k "\":%" PRId64, (int64_t)(v))
#define HEX(k, v) fprintf(o, ",\"" k "\":\"0x%" PRIx64 "\"", (uint64_t)(v))

static struct mc_symtab *g_syms; /* --symbolize */

static void dump_process(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_process *p = &r->u.process;
    I64("pid", p->pid); I64("ppid", p->ppid);
    U64("monotonic_ns", p->monotonic_ns); U64("realtime_ns", p->realtime_ns);
    put_str_field(o, t, "host_str", p->host_str);
    put_str_field(o, t, "exe_str", p->exe_str);
    U64("argc", p->argc);
    fputs(",\"argv\":[", o);
    const char *a = r->var, *end = a ? a + r->var_len : NULL;
    for (uint32_t i = 0; a && a < end && i < p->argc; i++) {
        size_t n = strnlen(a, (size_t)(end - a));
        if (i) fputc(',', o);
        mc_utf8_put_json(o, a, n);
        a += n + 1;
    }
    fputc(']', o);
}

static void dump_string(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    U64("id", r->u.string.id);
    fputs(",\"text\":", o);
    mc_utf8_put_json(o, r->var ? r->var : "", r->var_len);
}

static void dump_thread(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    I64("tid", r->u.thread.tid); put_str_field(o, t, "name_str", r->u.thread.name_str);
    U64("start_ns", r->u.thread.start_ns);
}

static void dump_gemm(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_gemm *g = &r->u.gemm;
    fprintf(o, ",\"api\":\"%s\"", mc_api_name(g->api));
    U64("t_begin_ns", g->t_begin_ns); U64("t_end_ns", g->t_end_ns);
    I64("m", g->m); I64("n", g->n); I64("k", g->k);
    I64("lda", g->lda); I64("ldb", g->ldb); I64("ldc", g->ldc);
    I64("batch", g->batch); I64("stride_a", g->stride_a); I64("stride_b", g->stride_b); I64("stride_c", g->stride_c);
    HEX("a", g->a); HEX("b", g->b); HEX("c", g->c); HEX("stream", g->stream);
    put_double(o, "alpha", g->alpha); put_double(o, "beta", g->beta);
    I64("tid", g->tid); I64("device", g->device); U64("callsite", g->callsite);
    fprintf(o, ",\"dtype_a\":\"%s\",\"dtype_b\":\"%s\",\"dtype_c\":\"%s\",\"dtype_compute\":\"%s\"",
            mc_dtype_name(g->dtype_a), mc_dtype_name(g->dtype_b), mc_dtype_name(g->dtype_c),
            mc_dtype_name(g->dtype_compute));
    fprintf(o, ",\"layout\":\"%s\",\"trans_a\":%u,\"trans_b\":%u",
            g->layout == MC_LAYOUT_ROW_MAJOR ? "row" : "col", g->trans_a, g->trans_b);
}

static void dump_kernel(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_kernel *k = &r->u.kernel;
    U64("start_ns", k->start_ns); U64("end_ns", k->end_ns); HEX("stream", k->stream);
    U64("correlation_id", k->correlation_id); U64("graph_id", k->graph_id);
    put_str_field(o, t, "name_str", k->name_str); I64("device", k->device);
    fprintf(o, ",\"grid\":[%u,%u,%u],\"block\":[%u,%u,%u]", k->grid[0], k->grid[1], k->grid[2],
            k->block[0], k->block[1], k->block[2]);
    U64("shared_mem", k->shared_mem); U64("source", k->source);
}

static void dump_memcpy(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_memcpy *m = &r->u.memcpy;
    U64("start_ns", m->start_ns); U64("end_ns", m->end_ns); U64("bytes", m->bytes);
    HEX("src", m->src); HEX("dst", m->dst); HEX("stream", m->stream);
    U64("correlation_id", m->correlation_id); I64("device", m->device);
    U64("kind", m->kind); U64("async", m->async); U64("source", m->source);
}

static void dump_alloc(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_alloc *a = &r->u.alloc;
    U64("t_ns", a->t_ns); HEX("ptr", a->ptr); U64("bytes", a->bytes); I64("device", a->device);
    U64("is_free", a->is_free); U64("api", a->api);
}

static void dump_file_map(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_file_map *m = &r->u.file_map;
    U64("t_ns", m->t_ns); HEX("addr", m->addr); U64("file_offset", m->file_offset);
    U64("length", m->length); put_str_field(o, t, "path_str", m->path_str);
    I64("device", m->device); U64("how", m->how);
}

static void dump_tensor(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_tensor *x = &r->u.tensor;
    U64("file_begin", x->file_begin); U64("file_end", x->file_end);
    put_str_field(o, t, "path_str", x->path_str); put_str_field(o, t, "name_str", x->name_str);
    fprintf(o, ",\"dtype\":\"%s\",\"shape\":[", mc_dtype_name(x->dtype));
    for (uint32_t i = 0; i < x->ndim && i < 8; i++) fprintf(o, "%s%" PRId64, i ? "," : "", x->shape[i]);
    fputc(']', o);
}

static void dump_step_mark(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_step_mark *s = &r->u.step_mark;
    U64("t_ns", s->t_ns); U64("step_id", s->step_id); I64("tokens", s->tokens);
    I64("sequences", s->sequences); put_str_field(o, t, "adapter_str", s->adapter_str);
    fprintf(o, ",\"kind\":\"%s\"", s->kind == MC_STEP_MARK_BEGIN ? "begin" : s->kind == MC_STEP_MARK_END ? "end" : "?");
}

static void dump_counter(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_counter *c = &r->u.counter;
    U64("t_ns", c->t_ns); put_double(o, "value", c->value);
    put_str_field(o, t, "name_str", c->name_str); put_str_field(o, t, "unit_str", c->unit_str);
    I64("tid", c->tid); I64("device", c->device); U64("source", c->source); U64("cumulative", c->cumulative);
}

static void dump_dropped(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    U64("t_ns", r->u.dropped.t_ns); U64("count", r->u.dropped.count);
    put_str_field(o, t, "reason_str", r->u.dropped.reason_str);
}

static void dump_callsite(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    U64("id", r->u.callsite.id); U64("depth", r->u.callsite.depth);
    fputs(",\"pcs\":[", o);
    size_t n = r->var_len / 8;
    for (size_t i = 0; i < n; i++) {
        uint64_t pc;
        memcpy(&pc, (const char *)r->var + 8 * i, 8);
        fprintf(o, "%s\"0x%" PRIx64 "\"", i ? "," : "", pc);
    }
    fputc(']', o);
    if (g_syms) {
        fputs(",\"frames\":[", o);
        for (size_t i = 0; i < n; i++) {
            uint64_t pc;
            char sym[600];
            memcpy(&pc, (const char *)r->var + 8 * i, 8);
            mc_symtab_lookup(g_syms, pc, sym, sizeof sym);
            if (i) fputc(',', o);
            mc_utf8_put_json(o, sym, sizeof sym);
        }
        fputc(']', o);
    }
}

static void dump_mapping(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_mapping *m = &r->u.mapping;
    HEX("start", m->start); HEX("end", m->end); U64("file_offset", m->file_offset);
    put_str_field(o, t, "path_str", m->path_str); U64("prot", m->prot);
}

static void dump_api(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    const struct mc_rec_api *a = &r->u.api;
    fprintf(o, ",\"api\":\"%s\"", mc_api_name(a->api));
    U64("t_begin_ns", a->t_begin_ns); U64("t_end_ns", a->t_end_ns); HEX("arg0", a->arg0); HEX("arg1", a->arg1);
    U64("correlation_id", a->correlation_id); I64("tid", a->tid); I64("device", a->device);
    put_str_field(o, t, "name_str", a->name_str); U64("result", a->result);
}

static void dump_router_tap(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_router_tap *x = &r->u.router_tap;
    U64("t_ns", x->t_ns); U64("gemm_seq", x->gemm_seq); I64("tokens", x->tokens); I64("experts", x->experts);
    I64("tid", x->tid); fprintf(o, ",\"dtype\":\"%s\"", mc_dtype_name(x->dtype)); U64("layout", x->layout);
    U64("payload_bytes", r->var_len);
}

/* A record's variable part as a JSON array of u32 (counts per expert). */
static void dump_u32_array(FILE *o, const char *key, const struct mc_trace_rec *r)
{
    fprintf(o, ",\"%s\":[", key);
    for (size_t i = 0; i < r->var_len / 4; i++) {
        uint32_t c;
        memcpy(&c, (const char *)r->var + 4 * i, 4);
        fprintf(o, "%s%u", i ? "," : "", c);
    }
    fputc(']', o);
}

static void dump_topk_tap(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    /* counts[e] = (token, slot) pairs the tapped top-k kernel routed to local expert e */
    const struct mc_rec_topk_tap *x = &r->u.topk_tap;
    U64("t_ns", x->t_ns); U64("correlation_id", x->correlation_id); I64("rows", x->rows); I64("k", x->k);
    I64("experts", x->experts); I64("invalid", x->invalid); I64("device", x->device);
    put_str_field(o, t, "kernel_str", x->kernel_str); put_str_field(o, t, "tap_str", x->tap_str);
    dump_u32_array(o, "counts", r);
}

/* llama.cpp adapter records (docs/llama.md) */
static void dump_llama_batch(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_llama_batch *x = &r->u.llama_batch;
    U64("t_begin_ns", x->t_begin_ns); U64("t_end_ns", x->t_end_ns); U64("step_id", x->step_id);
    I64("tokens", x->tokens); I64("tid", x->tid); I64("result", x->result); U64("outputs", x->outputs);
    fputs(",\"seqs\":[", o);
    for (size_t i = 0; i < r->var_len / sizeof(struct mc_llama_seq); i++) {
        struct mc_llama_seq q;
        memcpy(&q, (const char *)r->var + i * sizeof q, sizeof q);
        fprintf(o, "%s{\"seq_id\":%d,\"tokens\":%d,\"pos_first\":%d,\"pos_last\":%d}", i ? "," : "",
                q.seq_id, q.tokens, q.pos_first, q.pos_last);
    }
    fputc(']', o);
}

static void dump_ggml_route(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_ggml_route *x = &r->u.ggml_route;
    U64("t_ns", x->t_ns); U64("step_id", x->step_id); I64("layer", x->layer); I64("tid", x->tid);
    I64("rows", x->rows); I64("k", x->k); I64("experts", x->experts); I64("invalid", x->invalid);
    dump_u32_array(o, "counts", r);
}

static void dump_ggml_matmul(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_ggml_matmul *x = &r->u.ggml_matmul;
    U64("t_ns", x->t_ns); U64("step_id", x->step_id); I64("tid", x->tid);
    fprintf(o, ",\"op\":\"%s\",\"w_name\":", x->op == MC_GGML_MUL_MAT_ID ? "mul_mat_id" : "mul_mat");
    mc_utf8_put_json(o, x->w_name, sizeof x->w_name);   /* untrusted bytes: escaped, repaired */
    U64("w_type", x->w_type); U64("w_type_size", x->w_type_size); U64("w_blck_size", x->w_blck_size);
    fprintf(o, ",\"w_ne\":[%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "]", x->w_ne[0], x->w_ne[1], x->w_ne[2], x->w_ne[3]);
    fprintf(o, ",\"w_nb\":[%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]", x->w_nb[0], x->w_nb[1], x->w_nb[2], x->w_nb[3]);
    fprintf(o, ",\"x_ne\":[%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "]", x->x_ne[0], x->x_ne[1], x->x_ne[2], x->x_ne[3]);
    I64("ids_k", x->ids_k); I64("ids_rows", x->ids_rows); HEX("w_addr", x->w_addr);
}

static void dump_note(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    U64("t_ns", r->u.note.t_ns); put_str_field(o, t, "text_str", r->u.note.text_str);
    fprintf(o, ",\"level\":\"%s\"", r->u.note.level == MC_NOTE_ERROR ? "error" : r->u.note.level == MC_NOTE_WARNING ? "warning" : "info");
}

static void dump_clock(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    const struct mc_rec_clock *c = &r->u.clock;
    unsigned i = c->latest & 1;
    U64("tsc0", c->tsc0); U64("ns0", c->ns0); U64("tsc1", c->pair[i].tsc); U64("ns1", c->pair[i].ns);
}

static void dump_ring(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    U64("ring_id", r->u.ring.ring_id); U64("ring_bytes", r->u.ring.ring_bytes);
    U64("head", r->u.ring.head); U64("tail", r->u.ring.tail);
}

static void dump_ring_copy(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    (void)t;
    U64("ring_id", r->u.ring_copy.ring_id); U64("pos", r->u.ring_copy.pos); U64("len", r->u.ring_copy.len);
}

/* Records the reader never hands out: PAD (not asked for) and the compact CPU GEMM (always
 * expanded to gemm). The dispatch below has a function for every record type of the list. */
static void dump_pad(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r) { (void)o; (void)t; (void)r; }
static void dump_gemm_cpu(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r) { dump_gemm(o, t, r); }

/* One record as a JSON line: header fields, then the type's own (dump_<name>). */
static void dump_record(FILE *o, struct mc_trace *t, const struct mc_trace_rec *r)
{
    fprintf(o, "{\"off\":%" PRIu64 ",\"type\":\"%s\",\"size\":%u", r->offset, mc_rec_type_name(r->type), r->size);
    switch (r->type) {
#define DUMP_(NAME, num, tag, name, var) case MC_REC_##NAME: dump_##name(o, t, r); break;
    MC_RECORD_LIST(DUMP_)
#undef DUMP_
    default: break;   /* a newer writer's type: header fields only */
    }
    fputs("}\n", o);
}

static void usage(FILE *o)
{
    fprintf(o, "usage: moecap dump FILE.mct [--summary] [--symbolize]\n"
               "  prints every record of a moecap trace as one JSON line (strings resolved);\n"
               "  --summary prints counts per record type and per GEMM api instead;\n"
               "  --symbolize adds \"frames\" (function+offset (file)) to call-site records, from the\n"
               "  trace's mapping records and the mapped files' ELF symbols (same machine/files).\n"
               "exit status: 0 = whole file read, 2 = bad usage, unreadable, corrupt or truncated file\n");
}

int mc_cmd_dump(int argc, char **argv)
{
    const char *path = NULL;
    int summary = 0, symbolize = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--summary")) summary = 1;
        else if (!strcmp(argv[i], "--symbolize")) symbolize = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else if (argv[i][0] == '-' && argv[i][1]) { fprintf(stderr, "moecap dump: unknown option '%s'\n", argv[i]); usage(stderr); return 2; }
        else if (path) { fprintf(stderr, "moecap dump: one trace file at a time\n"); usage(stderr); return 2; }
        else path = argv[i];
    }
    if (!path) { usage(stderr); return 2; }
    char err[512];
    struct mc_trace *t = mc_trace_open2(path, MC_TRACE_OPT_UNKNOWN, err, sizeof err);
    if (!t) { fprintf(stderr, "moecap dump: %s\n", err); return 2; }

    if (symbolize && !summary) {
        /* Mappings may follow the call sites that point into them: collect them first. */
        g_syms = mc_symtab_new();
        struct mc_trace *pre = mc_trace_open(path, err, sizeof err);
        struct mc_trace_rec m;
        while (pre && g_syms && mc_trace_next(pre, &m) == MC_TRACE_RECORD)
            if (m.type == MC_REC_MAPPING)
                mc_symtab_add_mapping(g_syms, m.u.mapping.start, m.u.mapping.end, m.u.mapping.file_offset,
                                      mc_trace_str(pre, m.u.mapping.path_str));
        mc_trace_close(pre);
    }
    uint64_t per_type[MC_REC_TYPE_MAX + 1] = {0}, per_api[MC_API_MAX + 1] = {0};
    uint64_t unknown = 0, gemm_flops = 0, dropped = 0;
    struct mc_trace_rec r;
    int st;
    while ((st = mc_trace_next(t, &r)) == MC_TRACE_RECORD) {
        if (mc_rec_fixed_size(r.type) == 0) {
            /* A newer writer's record type: skipped, counted, noted once in the summary. */
            unknown++;
            continue;
        }
        per_type[r.type < MC_REC_TYPE_MAX ? r.type : MC_REC_TYPE_MAX]++;
        if (r.type == MC_REC_GEMM) {
            per_api[r.u.gemm.api <= MC_API_MAX ? r.u.gemm.api : 0]++;
            gemm_flops += 2 * (uint64_t)r.u.gemm.m * (uint64_t)r.u.gemm.n * (uint64_t)r.u.gemm.k *
                          (uint64_t)(r.u.gemm.batch > 0 ? r.u.gemm.batch : 1);
        }
        if (r.type == MC_REC_DROPPED) dropped += r.u.dropped.count;
        if (!summary) dump_record(stdout, t, &r);
    }
    if (summary) {
        printf("{\"file\":");
        mc_utf8_put_json(stdout, path, (size_t)-1);
        printf(",\"version\":\"%u.%u\",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"types\":{",
               mc_trace_version_major(t), mc_trace_version_minor(t), mc_trace_records(t), mc_trace_offset(t));
        int first = 1;
        for (unsigned i = 1; i < MC_REC_TYPE_MAX; i++)
            if (per_type[i]) { printf("%s\"%s\":%" PRIu64, first ? "" : ",", mc_rec_type_name(i), per_type[i]); first = 0; }
        printf("},\"gemm_apis\":{");
        first = 1;
        for (unsigned i = 0; i <= MC_API_MAX; i++)
            if (per_api[i]) { printf("%s\"%s\":%" PRIu64, first ? "" : ",", mc_api_name(i), per_api[i]); first = 0; }
        printf("},\"gemm_flops\":%" PRIu64 ",\"dropped_events\":%" PRIu64 ",\"unknown_records\":%" PRIu64
               ",\"recovered_records\":%" PRIu64 ",\"complete\":%s}\n",
               gemm_flops, dropped, unknown, mc_trace_recovered(t), st == MC_TRACE_END ? "true" : "false");
    }
    fflush(stdout);
    if (unknown)
        fprintf(stderr, "moecap dump: note: skipped %" PRIu64 " record(s) of types this version does not know "
                        "(written by a newer moecap?)\n", unknown);
    int rc = 0;
    if (st != MC_TRACE_END) {
        fprintf(stderr, "moecap dump: %s\n", mc_trace_error(t));
        rc = 2;
    }
    mc_trace_close(t);
    mc_symtab_free(g_syms);
    g_syms = NULL;
    return rc;
}
