/* The report document (see report_doc.h): sections in schema order. */
#include "report/report_doc.h"
#include "report/system_class.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/client_view.h"
#include "bench/lmeval.h"
#include "report/report_ggml.h"
#include "report/report_sections.h"

static void add_definitions(cJSON *root)
{
    cJSON *defs = cJSON_AddObjectToObject(root, "definitions");
    cJSON_AddStringToObject(defs, "s_mbu", "bytes read+written by the step (dense weights + activated expert weights + KV read + KV written) / step time / (devices x peak memory bandwidth)");
    cJSON_AddStringToObject(defs, "s_mfu", "FLOPs of the step (GEMMs actually executed + causal attention) / step time / (devices x dense peak FLOPS of the compute dtype)");
    cJSON_AddStringToObject(defs, "mbu", "as s_mbu with every routed expert of every MoE layer counted as read");
    cJSON_AddStringToObject(defs, "mfu", "as s_mfu with every token counted through every expert");
    cJSON_AddStringToObject(defs, "step_time", "first GEMM of the step begins -> lm_head GEMM ends (host CLOCK_MONOTONIC)");
    cJSON_AddStringToObject(defs, "ttft_server", "prefill step time (server side; client TTFT adds queueing and network)");
    cJSON_AddStringToObject(defs, "tpot_server", "decode step time (server side)");
    cJSON_AddStringToObject(defs, "aggregates", "totals over totals: sum of bytes or FLOPs / sum of step times; percentiles nearest-rank over steps");
}

static void add_run(cJSON *root, struct report_doc_input *in)
{
    struct report_replay *rp = in->replay;
    const struct report_steps *r = in->steps;
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    cJSON_AddStringToObject(run, "dir", in->run_dir);
    cJSON *tf = cJSON_AddArrayToObject(run, "trace_files");
    for (size_t i = 0; i < in->n_trace_files; i++) cJSON_AddItemToArray(tf, cJSON_CreateString(in->trace_files[i]));
    cJSON_AddItemToObject(run, "processes", rp->processes);
    rp->processes = NULL;
    cJSON_AddNumberToObject(run, "records", (double)rp->records);
    cJSON_AddNumberToObject(run, "gemm_records", (double)rp->gemm_records);
    cJSON_AddNumberToObject(run, "gemm_unattributed", (double)in->attrib->unattributed);
    cJSON_AddNumberToObject(run, "step_marks", (double)rp->step_marks);
    cJSON_AddNumberToObject(run, "dropped_events", (double)rp->dropped);
    cJSON_AddItemToObject(run, "truncated_files", rp->truncated_files);
    rp->truncated_files = NULL;
    cJSON_AddNumberToObject(run, "span_s", r->last_end > r->first_begin ? (double)(r->last_end - r->first_begin) / 1e9 : 0);
    report_attribution_json(run, in->attrib);
    if (rp->ga) report_ggml_json(run, in->notes, rp->ga);   /* llama.cpp runs */
}

static void add_gpu_kernels(cJSON *agg, const struct report_kernels *k, const struct report_steps *r)
{
    if (!k->count) return;
    cJSON *gk = cJSON_AddObjectToObject(agg, "gpu_kernels");
    cJSON_AddNumberToObject(gk, "count", (double)k->count);
    cJSON_AddNumberToObject(gk, "kernel_time_s", k->sum_ns / 1e9);
    cJSON_AddNumberToObject(gk, "busy_s", k->busy_ns / 1e9);
    cJSON_AddNumberToObject(gk, "first_to_last_s", (double)(k->last_ns - k->first_ns) / 1e9);
    double span = (double)(r->last_end - r->first_begin);
    if (span > 0) cJSON_AddNumberToObject(gk, "busy_fraction_of_step_span", report_div0(k->busy_ns, span));
}

/* The notes the report adds after the traces' own: attribution, contexts, drops, peaks. */
static void add_report_notes(struct report_doc_input *in)
{
    const struct report_steps *r = in->steps;
    char msg[512];
    report_attrib_notes(in->notes, in->attrib, in->model);
    if (r->ctx_inexact_steps) {
        snprintf(msg, sizeof msg, "%d step(s) have per-sequence contexts that the trace cannot determine "
                 "(ragged prefill or sequences leaving a batch): KV bytes are exact, prefill attention "
                 "FLOPs assume the most even split (docs/attribution.md)", r->ctx_inexact_steps);
        report_add_note(in->notes, "warning", msg);
    }
    if (in->replay->dropped) {
        snprintf(msg, sizeof msg, "the shim reported %" PRIu64 " dropped events: results undercount", in->replay->dropped);
        report_add_note(in->notes, "warning", msg);
    }
    if (r->peak <= 0) {
        snprintf(msg, sizeof msg, "hardware profile %s has no peak FLOPS for %s: S-MFU/MFU omitted",
                 in->hw->name, r->compute_key[0] ? r->compute_key : "the compute dtype");
        report_add_note(in->notes, "warning", msg);
    }
}

/* Client side: `moecap bench`'s request log in the run directory (docs/bench.md). */
static void add_client(cJSON *root, struct report_doc_input *in)
{
    char cerr[512] = "", msg[512];
    cJSON *client = NULL;
    /* the run directory is not ours: a FIFO (or device) named like the request log must not
     * block the report */
    static const char *const logs[] = {"requests.jsonl", "bench-summary.json"};
    for (size_t i = 0; i < 2 && !cerr[0]; i++) {
        char lp[4200];
        struct stat st;
        snprintf(lp, sizeof lp, "%s/%s", in->run_dir, logs[i]);
        if (stat(lp, &st) == 0 && !S_ISREG(st.st_mode))
            snprintf(cerr, sizeof cerr, "%.400s is not a regular file", lp);
    }
    if (!cerr[0]) client = mc_bench_client_view(in->run_dir, 1, cerr, sizeof cerr);
    if (client) cJSON_AddItemToObject(root, "client", client);
    else if (cerr[0]) {
        snprintf(msg, sizeof msg, "request log not joined: %s", cerr);
        report_add_note(in->notes, "warning", msg);
    }
}

int report_doc_build(struct report_doc *doc, struct report_doc_input *in, char *err, size_t errlen)
{
    const struct report_steps *r = in->steps;
    add_report_notes(in);
    cJSON *root = cJSON_CreateObject();
    doc->root = root;
    doc->steps = r;
    cJSON_AddNumberToObject(root, "schema_version", 1);
    cJSON *gen = cJSON_AddObjectToObject(root, "generator");
    cJSON_AddStringToObject(gen, "name", "moecap report");
    cJSON_AddStringToObject(gen, "version", "0.1");
    add_definitions(root);
    add_run(root, in);
    report_model_json(root, in->model);
    report_hardware_json(root, in->hw, in->devices, r->compute_key, r->peak);
    if (in->device_census) report_devices_json(in->device_census, cJSON_GetObjectItemCaseSensitive(root, "hardware"));
    cJSON *agg = report_aggregate_json(r);
    add_gpu_kernels(agg, &in->replay->kernels, r);
    cJSON_AddItemToObject(root, "aggregate", agg);
    report_expert_load_json(root, in->model, r->load_tokens, r->load_act, in->attrib->expert_ids_exact);
    cJSON *offl = mc_offload_json(r->offload);
    if (offl) cJSON_AddItemToObject(root, "offload", offl);
    cJSON *epj = mc_ep_view_json(r->ep);
    if (epj) cJSON_AddItemToObject(root, "expert_parallel", epj);
    cJSON_AddItemToObject(root, "system_class",
                          mc_system_class_json(r->offload, in->attrib, in->model, in->replay->n_gemm_pids,
                                               mc_offload_step_processes(r->offload),
                                               __builtin_popcountll(in->replay->gemm_devices)));
    cJSON_AddItemToObject(root, "moecap_compat", report_compat_json(r));
    add_client(root, in);
    if (in->lmeval_path) {
        cJSON *acc = NULL;
        char lerr[512] = "";
        if (mc_lmeval_read(in->lmeval_path, &acc, lerr, sizeof lerr) != 0 || !acc) {
            snprintf(err, errlen, "--lm-eval %s: %s", in->lmeval_path, lerr);
            return -1;
        }
        cJSON_AddItemToObject(root, "lm_eval", acc);
    }
    if (in->cost) mc_cost_report_sections(in->cost, root, r, in->notes);
    cJSON_AddItemToObject(root, "notes", in->notes);
    in->notes = NULL;
    if (in->step_summaries) cJSON_AddItemToObject(root, "steps", report_step_summaries_json(r));
    return 0;
}

void report_doc_free(struct report_doc *doc)
{
    cJSON_Delete(doc->root);
    doc->root = NULL;
}
