/* The one writer of report.json (see report_json.h). */
#include "report/report_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "report/report_doc.h"
#include "trace/utf8.h"

static void put_u64(FILE *o, const char *k, uint64_t v) { fprintf(o, "\"%s\": %" PRIu64, k, v); }
static void put_dbl(FILE *o, const char *k, double v)
{
    if (!isfinite(v)) fprintf(o, "\"%s\": null", k);
    else fprintf(o, "\"%s\": %.9g", k, v);
}

/* The ids (or token counts) of one MoE layer's activated experts: c[e] > 0. */
static void put_active(FILE *o, const int64_t *c, int64_t n, int counts)
{
    int first = 1;
    for (int64_t e = 0; e < n; e++)
        if (c[e]) { fprintf(o, "%s%" PRId64, first ? "" : ", ", counts ? c[e] : e); first = 0; }
}

void report_json_step(FILE *o, const struct mc_step *s, const struct mc_model *m, const struct report_step_figures *f)
{
    fprintf(o, "{\"step\": %" PRIu64 ", \"kind\": \"%s\", \"pid\": %d, \"tid\": %d, ", s->index,
            mc_step_kind_name(s->kind), s->pid, s->tid);
    fprintf(o, "\"tokens\": %" PRId64 ", \"sequences\": %" PRId64 ", \"context\": [", s->tokens, s->sequences);
    for (int64_t i = 0; i < s->n_context; i++) fprintf(o, "%s%" PRId64, i ? ", " : "", s->context[i]);
    fprintf(o, "], \"context_exact\": %s, ", s->context_exact ? "true" : "false");
    put_u64(o, "t_begin_ns", s->t_begin_ns); fputs(", ", o);
    put_u64(o, "t_end_ns", s->t_end_ns); fputs(", ", o);
    put_u64(o, "wall_ns", s->t_end_ns - s->t_begin_ns); fputs(", ", o);
    put_dbl(o, "time_s", f->time_s); fputs(", ", o);
    put_u64(o, "gemm_calls", s->gemm_calls); fputs(", ", o);
    put_u64(o, "unattributed_gemm_calls", s->unattributed_calls); fputs(", ", o);
    fputs("\"layers\": [", o);
    /* model layer -> its MoE ordinal, once per step (not a search per layer: L^2 at 1024 layers) */
    int ord_of[MC_MODEL_MAX_LAYERS];
    for (int64_t l = 0; l < m->layers && l < MC_MODEL_MAX_LAYERS; l++) ord_of[l] = -1;
    for (int i = s->n_moe; i-- > 0;)
        if (s->moe_layers[i] >= 0 && s->moe_layers[i] < m->layers && s->moe_layers[i] < MC_MODEL_MAX_LAYERS)
            ord_of[s->moe_layers[i]] = i;   /* the first ordinal of a layer wins, as the search did */
    for (int64_t l = 0; l < m->layers && l < MC_MODEL_MAX_LAYERS; l++) {
        int ord = ord_of[l];
        if (l) fputs(", ", o);
        if (ord < 0) { fprintf(o, "{\"layer\": %" PRId64 ", \"dense\": true}", l); continue; }
        const int64_t *c = s->counts + (int64_t)ord * s->n_experts;
        fprintf(o, "{\"layer\": %" PRId64 ", \"experts\": [", l);
        put_active(o, c, s->n_experts, 0);
        fputs("], \"tokens_per_expert\": [", o);
        put_active(o, c, s->n_experts, 1);
        fputs("]}", o);
    }
    fputs("], ", o);
    put_u64(o, "activated_experts", (uint64_t)s->activated); fputs(", \"bytes\": {", o);
    put_u64(o, "dense_weights", s->bytes_dense); fputs(", ", o);
    put_u64(o, "routed_expert_weights", s->bytes_routed); fputs(", ", o);
    put_u64(o, "shared_expert_weights", s->bytes_shared); fputs(", ", o);
    put_u64(o, "kv_read", s->kv_read); fputs(", ", o);
    put_u64(o, "kv_written", s->kv_written); fputs(", ", o);
    put_u64(o, "total", f->bytes); fputs(", ", o);
    put_u64(o, "all_experts_total", s->bytes_all_experts); fputs("}, \"flops\": {", o);
    put_u64(o, "gemm", s->flops_gemm); fputs(", ", o);
    put_u64(o, "attention", s->flops_attention); fputs(", ", o);
    put_u64(o, "total", f->flops); fputs(", ", o);
    put_u64(o, "all_experts_total", s->flops_all_experts); fputs(", ", o);
    put_u64(o, "unattributed_gemm", s->flops_unattributed); fputs("}, ", o);
    put_dbl(o, "s_mbu", f->s_mbu); fputs(", ", o);
    put_dbl(o, "mbu", f->mbu);
    if (f->with_mfu) { fputs(", ", o); put_dbl(o, "s_mfu", f->s_mfu); fputs(", ", o); put_dbl(o, "mfu", f->mfu); }
    fputs(", \"compat\": {", o);
    put_dbl(o, "bytes", f->compat_bytes); fputs(", ", o); put_dbl(o, "flops", f->compat_flops); fputs(", ", o);
    put_dbl(o, "s_mbu", f->compat_s_mbu);
    if (f->with_mfu) { fputs(", ", o); put_dbl(o, "s_mfu", f->compat_s_mfu); }
    fputs("}", o);   /* the step object stays open: the caller adds its own members and closes it */
}

/* One section (a member of the document's top-level object) at depth 1: cJSON's printer
 * formats the value at depth 0, and every line after the first gets one more tab. */
static void put_section(FILE *o, const cJSON *item)
{
    char *text = cJSON_Print(item);
    fprintf(o, "\t\"%s\":\t", item->string);
    for (const char *p = text ? text : "null"; *p; p++) {
        fputc(*p, o);
        if (*p == '\n') fputc('\t', o);
    }
    free(text);
}

int report_json_write(const struct report_doc *doc, FILE *o)
{
    fputs("{\n", o);
    int first = 1;
    for (const cJSON *it = doc->root->child; it; it = it->next) {
        if (!strcmp(it->string, "steps")) continue;   /* the renderers' summaries: written in full below */
        if (!first) fputs(",\n", o);
        put_section(o, it);
        first = 0;
    }
    fputs(",\n\t\"steps\": [\n", o);
    FILE *sp = doc->steps->records;
    rewind(sp);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, sp)) > 0) fwrite(buf, 1, n, o);
    fputs("\n\t]\n}\n", o);
    return ferror(sp) || ferror(o) ? -1 : 0;
}

static void repair_string(char **s)
{
    if (!*s || mc_utf8_valid(*s, strlen(*s))) return;
    char *r = mc_utf8_sanitize(*s, strlen(*s));
    if (!r) { (*s)[0] = 0; return; }   /* out of memory: empty beats invalid */
    /* cJSON frees with its own hooks: memory from the same allocator (the default hooks) */
    cJSON_free(*s);
    *s = r;
}

void report_json_repair(cJSON *item)
{
    for (; item; item = item->next) {
        if (item->string && !(item->type & cJSON_StringIsConst)) repair_string(&item->string);
        if (cJSON_IsString(item) && !(item->type & cJSON_IsReference)) repair_string(&item->valuestring);
        if (item->child) report_json_repair(item->child);
    }
}
