/* `moecap report RUN_DIR --model M --hw H [--out DIR] [--format json,md,html]`:
 * merges the run's .mct traces (k-way by timestamp), reconstructs forward steps and
 * activated experts (attrib.c), computes bytes/FLOPs/S-MBU/S-MFU/latency per step and in
 * aggregate, and writes report.json (docs/report-schema.md) plus the Markdown/HTML
 * renderings. Per-step records are streamed to a temporary file, so memory holds only
 * per-step state and a few numbers per step for the percentiles. This file is the command:
 * options, the merge loop that hands records to the attributor, and the assembly of the
 * document; report_input.c reads the traces, report_steps.c the per-step rows and aggregates,
 * report_sections.c the descriptive sections and notes. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench/client_view.h"
#include "bench/lmeval.h"
#include "commands.h"
#include "moecap/trace_facts.h"
#include "render/render.h"
#include "report/attrib.h"
#include "hw/hw_profile.h"
#include "report/model.h"
#include "report/report_input.h"
#include "report/report_sections.h"
#include "report/report_steps.h"
#include "trace/trace_reader.h"

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
    char **names = NULL;
    size_t nn = 0;
    if (report_list_traces(run_dir, &names, &nn) != 0) {
        fprintf(stderr, "moecap report: cannot open run directory %s: %s\n", run_dir, strerror(errno));
        mc_hw_free(&hw); mc_model_free(&model);
        return 2;
    }
    struct report_cursor *cur = NULL;
    cJSON *root = NULL, *notes = cJSON_CreateArray();
    struct mc_attrib *at = NULL;
    struct report_steps r;
    memset(&r, 0, sizeof r);
    FILE *steps_tmp = NULL;
    if (!nn) {
        fprintf(stderr, "moecap report: no trace files (*.mct) in %s — run the program with "
                "LD_PRELOAD=libmoecap.so MOECAP_OUT=%s first\n", run_dir, run_dir);
        goto out;
    }
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
        report_cursor_advance(&cur[i]);
    }

    steps_tmp = tmpfile();
    if (!steps_tmp) { fprintf(stderr, "moecap report: cannot create a temporary file: %s\n", strerror(errno)); goto out; }
    r.m = &model; r.hw = &hw; r.devices = devices; r.bw = hw.bandwidth_Bps; r.steps_out = steps_tmp;
    at = mc_attrib_new(&model, report_on_step, &r);
    if (!at) { fprintf(stderr, "moecap report: out of memory\n"); goto out; }
    report_collect_names(at, run_dir, names, nn, no_names);
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
        struct report_cursor *c = NULL;
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
                int dt = mc_dtype_peak_key(rec->u.gemm.dtype_a) ? rec->u.gemm.dtype_a : rec->u.gemm.dtype_compute;
                const char *k = mc_dtype_peak_key(dt);
                if (!k) k = mc_dtype_peak_key(model.weight_dtype);
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
            if (mc_api_is_sync(id)) {
                if (!mc_attrib_gpu_sync(at, c->pid, x->tid, x->t_begin_ns, x->t_end_ns))
                    mc_attrib_gpu_activity(at, c->pid, x->tid, x->t_begin_ns);
            } else if (mc_api_is_launch(id)) {
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
            if (s) report_add_note(notes, rec->u.note.level >= MC_NOTE_WARNING ? "warning" : "info", s);
            break;
        }
        default: break;
        }
        if (!quiet && (nrec % (tty ? 1000000 : 5000000)) == 0)
            fprintf(stderr, tty ? "\rmoecap report: %" PRIu64 " M records, %zu steps" : "moecap report: %" PRIu64 " M records, %zu steps\n",
                    nrec / 1000000, r.n_rows);
        report_cursor_advance(c);
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
        report_add_note(notes, "warning", msg);
    }
    /* Does the trace fit the model? */
    if (!ngemm) {
        fprintf(stderr, "moecap report: the traces in %s hold no GEMM records (%" PRIu64 " records): "
                "was the program's BLAS intercepted by libmoecap.so?\n", run_dir, nrec);
        cJSON_Delete(procs); cJSON_Delete(truncated);
        goto out;
    }
    if (!r.n_rows || ast.router_mismatch_steps || ast.shape_mismatch || ast.structure_mismatch_steps) {
        report_explain_mismatch(stderr, &model, &ast, r.n_rows, cJSON_GetArraySize(truncated) > 0);
        cJSON_Delete(procs); cJSON_Delete(truncated);
        goto out;
    }
    if (r.oom) { fprintf(stderr, "moecap report: out of memory\n"); cJSON_Delete(procs); cJSON_Delete(truncated); goto out; }

    /* notes of our own */
    char msg[512];
    report_attrib_notes(notes, &ast, &model);
    if (r.ctx_inexact_steps) {
        snprintf(msg, sizeof msg, "%d step(s) have per-sequence contexts that the trace cannot determine "
                 "(ragged prefill or sequences leaving a batch): KV bytes are exact, prefill attention "
                 "FLOPs assume the most even split (docs/attribution.md)", r.ctx_inexact_steps);
        report_add_note(notes, "warning", msg);
    }
    if (dropped) {
        snprintf(msg, sizeof msg, "the shim reported %" PRIu64 " dropped events: results undercount", dropped);
        report_add_note(notes, "warning", msg);
    }
    if (r.peak <= 0) {
        snprintf(msg, sizeof msg, "hardware profile %s has no peak FLOPS for %s: S-MFU/MFU omitted",
                 hw.name, r.compute_key[0] ? r.compute_key : "the compute dtype");
        report_add_note(notes, "warning", msg);
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
    report_attribution_json(run, &ast);

    report_model_json(root, &model);

    report_hardware_json(root, &hw, devices, r.compute_key, r.peak);

    cJSON *agg = report_aggregate_json(&r);
    if (nkern) {
        cJSON *gk = cJSON_AddObjectToObject(agg, "gpu_kernels");
        cJSON_AddNumberToObject(gk, "count", (double)nkern);
        cJSON_AddNumberToObject(gk, "kernel_time_s", kern_sum_ns / 1e9);
        cJSON_AddNumberToObject(gk, "busy_s", kern_busy_ns / 1e9);
        cJSON_AddNumberToObject(gk, "first_to_last_s", (double)(kern_last - kern_first) / 1e9);
        double span = (double)(r.last_end - r.first_begin);
        if (span > 0) cJSON_AddNumberToObject(gk, "busy_fraction_of_step_span", report_div0(kern_busy_ns, span));
    }
    cJSON_AddItemToObject(root, "aggregate", agg);
    report_expert_load_json(root, &model, r.load_tokens, r.load_act, ast.expert_ids_exact);
    cJSON_AddItemToObject(root, "moecap_compat", report_compat_json(&r));
    {   /* client side (moecap bench's request log in the run directory), docs/bench.md */
        char cerr[512] = "";
        cJSON *client = mc_bench_client_view(run_dir, 1, cerr, sizeof cerr);
        if (client) cJSON_AddItemToObject(root, "client", client);
        else if (cerr[0]) {
            snprintf(msg, sizeof msg, "request log not joined: %s", cerr);
            report_add_note(notes, "warning", msg);
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
