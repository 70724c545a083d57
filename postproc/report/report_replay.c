/* The main pass of `moecap report` (see report_replay.h). */
#include "report/report_replay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moecap/trace_facts.h"
#include "report/report_sections.h"

/* The first GEMM's operand type picks the peak FLOPS (bf16 x bf16 with f32 accumulation
 * runs at the bf16 tensor-core rate); the accumulation type only when the operands' is
 * unknown, the model's weight type when both are. Its weight operand's element size stands
 * in for the model's when the model files did not say. */
static void first_gemm(struct report_replay *rp, const struct mc_rec_gemm *g)
{
    int dt = mc_dtype_peak_key(g->dtype_a) ? g->dtype_a : g->dtype_compute;
    const char *k = mc_dtype_peak_key(dt);
    if (!k) k = mc_dtype_peak_key(rp->model->weight_dtype);
    if (k) {
        snprintf(rp->steps->compute_key, sizeof rp->steps->compute_key, "%s", k);
        rp->steps->peak = mc_hw_peak_flops(rp->hw, k);
    }
    if (!rp->model->elt) { rp->model->elt = mc_dtype_bytes(g->dtype_b); rp->model->weight_dtype = g->dtype_b; }
}

static void on_process(struct report_replay *rp, struct report_cursor *c, const struct mc_trace_rec *rec)
{
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
    if (rp->cost) mc_cost_report_host(rp->cost, p->pid, s);
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
    cJSON_AddItemToArray(rp->processes, o);
}

/* Synchronising calls close a GPU step; launches open one. CUPTI's own activity records
 * (MC_APICLASS_CUPTI) arrive late and are not used. */
static void on_api(struct report_replay *rp, int32_t pid, const struct mc_rec_api *x)
{
    if (mc_api_is_sync(x->api)) {
        if (!mc_attrib_gpu_sync(rp->at, pid, x->tid, x->t_begin_ns, x->t_end_ns))
            mc_attrib_gpu_activity(rp->at, pid, x->tid, x->t_begin_ns);
    } else if (mc_api_is_launch(x->api)) {
        mc_attrib_gpu_activity(rp->at, pid, x->tid, x->t_begin_ns);
    }
}

/* Host-side copies (source 1) mark GPU step boundaries: a synchronous device->host copy can
 * end a step; CUPTI's device-side copy records are not host boundaries. */
static void on_memcpy(struct report_replay *rp, int32_t pid, const struct mc_rec_memcpy *x)
{
    if (x->source != 1) return;
    if (x->kind == MC_COPY_D2H && !x->async && mc_attrib_gpu_sync(rp->at, pid, -1, x->start_ns, x->end_ns)) return;
    mc_attrib_gpu_activity(rp->at, pid, -1, x->start_ns);
}

static void on_kernel(struct report_kernels *kt, const struct mc_rec_kernel *k)
{
    if (k->end_ns <= k->start_ns || k->source != 0) return;   /* launch-interposition records carry no duration */
    kt->count++;
    kt->sum_ns += (double)(k->end_ns - k->start_ns);
    if (k->start_ns >= kt->busy_end_ns) kt->busy_ns += (double)(k->end_ns - k->start_ns);
    else if (k->end_ns > kt->busy_end_ns) kt->busy_ns += (double)(k->end_ns - kt->busy_end_ns);
    if (k->end_ns > kt->busy_end_ns) kt->busy_end_ns = k->end_ns;
    if (!kt->first_ns || k->start_ns < kt->first_ns) kt->first_ns = k->start_ns;
    if (k->end_ns > kt->last_ns) kt->last_ns = k->end_ns;
}

/* Which processes and GPU devices issued GEMMs (the run's class, system_class.c). */
static void note_gemm_process(struct report_replay *rp, int32_t pid, int32_t device)
{
    if (device >= 0 && device < 64) rp->gemm_devices |= 1ull << device;
    for (int k = 0; k < rp->n_gemm_pids; k++) if (rp->gemm_pids[k] == pid) return;
    if (rp->n_gemm_pids < 64) rp->gemm_pids[rp->n_gemm_pids++] = pid;
}

static void on_record(struct report_replay *rp, struct report_cursor *c, const struct mc_trace_rec *rec)
{
    switch (rec->type) {
    case MC_REC_GEMM:
        if (!rp->gemm_records++) first_gemm(rp, &rec->u.gemm);
        mc_attrib_gemm(rp->at, c->pid, &rec->u.gemm);
        note_gemm_process(rp, c->pid, rec->u.gemm.device);
        break;
    case MC_REC_PROCESS: on_process(rp, c, rec); break;
    case MC_REC_TOPK_TAP: {
        const struct mc_rec_topk_tap *t = &rec->u.topk_tap;
        mc_attrib_topk_tap(rp->at, c->pid, t->correlation_id, t->t_ns, t->rows, t->k, t->invalid,
                           (const uint32_t *)rec->var, (int64_t)(rec->var_len / 4));
        break;
    }
    case MC_REC_ROUTER_TAP: {
        const struct mc_rec_router_tap *t = &rec->u.router_tap;
        mc_attrib_router_tap(rp->at, c->pid, t->tid, t->t_ns, t->tokens, t->experts, t->dtype, t->layout,
                             rec->var, rec->var_len);
        break;
    }
    case MC_REC_API: on_api(rp, c->pid, &rec->u.api); break;
    case MC_REC_MEMCPY: on_memcpy(rp, c->pid, &rec->u.memcpy); break;
    case MC_REC_KERNEL: on_kernel(&rp->kernels, &rec->u.kernel); break;
    case MC_REC_LLAMA_BATCH: case MC_REC_GGML_ROUTE: case MC_REC_GGML_MATMUL:
        if (rp->ga) mc_ggml_attrib_record(rp->ga, c->pid, rec);
        break;
    case MC_REC_COUNTER: {
        const struct mc_rec_counter *x = &rec->u.counter;
        if (rp->cost)
            mc_cost_report_counter(rp->cost, c->pid, mc_trace_str(c->t, x->name_str), mc_trace_str(c->t, x->unit_str),
                                   x->device, x->cumulative, x->t_ns, x->value);
        break;
    }
    case MC_REC_DROPPED: rp->dropped += rec->u.dropped.count; break;
    case MC_REC_STEP_MARK: rp->step_marks++; break;
    case MC_REC_NOTE: {
        const char *s = mc_trace_str(c->t, rec->u.note.text_str);
        if (s) report_add_note(rp->notes, rec->u.note.level >= MC_NOTE_WARNING ? "warning" : "info", s);
        break;
    }
    default: break;   /* TENSOR, FILE_MAP, ALLOC: taken by the naming pass (report_input.c) */
    }
}

void report_replay_run(struct report_replay *rp, struct report_cursor *cur, size_t n)
{
    rp->processes = cJSON_CreateArray();
    rp->truncated_files = cJSON_CreateArray();
    int tty = isatty(2);
    for (;;) {
        struct report_cursor *c = NULL;
        for (size_t i = 0; i < n; i++)
            if (cur[i].have && (!c || cur[i].key < c->key)) c = &cur[i];
        if (!c) break;
        rp->records++;
        on_record(rp, c, &c->rec);
        if (rp->observe) rp->observe(rp->observe_user, c->t, c->pid, &c->rec);
        if (!rp->quiet && (rp->records % (tty ? 1000000 : 5000000)) == 0)
            fprintf(stderr, tty ? "\rmoecap report: %" PRIu64 " M records, %zu steps" : "moecap report: %" PRIu64 " M records, %zu steps\n",
                    rp->records / 1000000, rp->steps->n_rows);
        report_cursor_advance(c);
    }
    if (!rp->quiet && tty && rp->records >= 1000000) fputc('\n', stderr);
    mc_attrib_finish(rp->at);
    if (rp->ga) {   /* llama.cpp steps; no GEMM picked the peak: the routed experts' type does */
        mc_ggml_attrib_finish(rp->ga);
        const char *k = mc_dtype_peak_key(rp->model->weight_dtype);
        if (!rp->gemm_records && k) {
            snprintf(rp->steps->compute_key, sizeof rp->steps->compute_key, "%s", k);
            rp->steps->peak = mc_hw_peak_flops(rp->hw, k);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (cur[i].status == MC_TRACE_END || !cur[i].t) continue;   /* unopened files: noted when skipped */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: %s; records up to there were used", cur[i].name, mc_trace_error(cur[i].t));
        if (cur[i].status == MC_TRACE_TRUNCATED) cJSON_AddItemToArray(rp->truncated_files, cJSON_CreateString(cur[i].name));
        fprintf(stderr, "moecap report: warning: %s\n", msg);
        report_add_note(rp->notes, "warning", msg);
    }
}

void report_replay_free(struct report_replay *rp)
{
    cJSON_Delete(rp->processes);
    cJSON_Delete(rp->truncated_files);
    rp->processes = rp->truncated_files = NULL;
}
