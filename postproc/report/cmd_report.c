/* `moecap report RUN_DIR --model M --hw H [--out DIR] [--format json,md,html,perfetto]`: the
 * driver. It parses the options, loads the model and hardware profile, opens the run's
 * traces (report_input.h), runs the naming pass and the main pass (report_replay.h) that
 * feeds the attributor and the step table (report_steps.h), checks that the trace fits the
 * model, builds the report document once (report_doc.h) and writes it: report.json by the
 * one JSON writer (report_json.h), report.md / report.html by the renderers from the same
 * document (render/render.h), cap_metrics.json and the Perfetto timeline by its views
 * (export/; the timeline also watches the main pass). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "report/report_cost.h"
#include "export/moecap_compat.h"
#include "export/perfetto.h"
#include "hw/hw_profile.h"
#include "render/render.h"
#include "report/attrib.h"
#include "report/attrib_ggml.h"
#include "report/model.h"
#include "report/report_doc.h"
#include "report/report_input.h"
#include "report/report_json.h"
#include "report/report_replay.h"
#include "report/report_sections.h"
#include "report/report_steps.h"
#include "trace/safe_file.h"
#include "trace/trace_reader.h"

static void usage(FILE *o)
{
    fprintf(o,
        "usage: moecap report RUN_DIR --model MODEL_DIR|config.json --hw NAME|FILE\n"
        "                     [--out DIR] [--format LIST] [--perfetto-max N] [--devices N]\n"
        "                     [--lm-eval FILE] [--no-names] [--quiet]\n"
        "\n"
        "Reconstructs forward steps, layers and activated experts from the run's traces\n"
        "(RUN_DIR/*.mct, merged by timestamp) and the model's config.json (+ safetensors\n"
        "headers when present), and writes report.json (schema: docs/report-schema.md),\n"
        "report.md and report.html with S-MBU, S-MFU, dense MBU/MFU, bytes and FLOPs per\n"
        "step, server-side TTFT/TPOT, throughput, and the expert-load matrix. When RUN_DIR\n"
        "holds a `moecap bench` request log (requests.jsonl), its client-side latency and\n"
        "accuracy are joined in as the \"client\" section. Options of every command:\n"
        "docs/cli.md.\n"
        "\n"
        "  --model PATH     model directory (config.json [+ *.safetensors]), a config.json, or\n"
        "                   the GGUF file a llama.cpp run loaded (docs/llama.md)\n"
        "  --hw NAME|FILE   hardware profile: data/hardware/NAME.json or a file\n"
        "  --out DIR        output directory (default: RUN_DIR)\n"
        "  --format LIST    any of json,md,html,perfetto (default: json,md,html); json is\n"
        "                   always written, and cap_metrics.json (MoE-CAP's result shape);\n"
        "                   perfetto: report.perfetto.json, a timeline for ui.perfetto.dev\n"
        "  --perfetto-max N events per kind (GEMMs, layers, kernels, counters) drawn one by\n"
        "                   one in the timeline before aggregating (default 200000)\n"
        "  --devices N      devices in the utilisation denominators (default: those the trace's\n"
        "                   GEMMs ran on: GPUs, or one per host for CPU GEMMs)\n"
        "  --lm-eval FILE   add accuracy from an lm-evaluation-harness results JSON\n"
        "  --quiet          no progress on stderr\n"
        "  --no-names       ignore tensor names (attribute by shape and position only; a check)\n");
    mc_cost_report_usage(o);
    fprintf(o,
        "\n"
        "Exit status: 0 ok, 2 bad input (unknown model/hardware, no or unreadable traces,\n"
        "a trace that does not match the model).\n");
}

struct report_opts {
    const char *run_dir, *model_path, *hw_spec, *out_dir, *formats, *lmeval_path;
    int devices, quiet, no_names;
    struct mc_cost_opts cost;       /* --cost, --whatif-hw */
    long long perfetto_max;
};

/* Returns -1 to go on, else the exit status (0 for --help, 2 for a usage error). */
static int parse_args(int argc, char **argv, struct report_opts *o)
{
    *o = (struct report_opts){.formats = "json,md,html", .devices = 0, .perfetto_max = MC_PERFETTO_DEFAULT_MAX_EVENTS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int cost_opt = mc_cost_report_option(&o->cost, argc, argv, &i);
        if (cost_opt < 0) return 2;
        if (cost_opt) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (!strcmp(a, "--no-names")) o->no_names = 1;
        else if (i + 1 < argc && !strcmp(a, "--model")) o->model_path = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--hw")) o->hw_spec = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--out")) o->out_dir = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--format")) o->formats = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--devices")) { o->devices = atoi(argv[++i]); if (o->devices < 1) o->devices = -1; }
        else if (i + 1 < argc && !strcmp(a, "--lm-eval")) o->lmeval_path = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--perfetto-max")) o->perfetto_max = atoll(argv[++i]);
        else if (a[0] == '-') { fprintf(stderr, "moecap report: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
        else if (!o->run_dir) o->run_dir = a;
        else { fprintf(stderr, "moecap report: unexpected argument '%s'\n", a); usage(stderr); return 2; }
    }
    if (!o->run_dir || !o->model_path || !o->hw_spec) {
        fprintf(stderr, "moecap report: RUN_DIR, --model and --hw are required\n");
        usage(stderr);
        return 2;
    }
    if (o->devices < 0) { fprintf(stderr, "moecap report: --devices must be >= 1\n"); return 2; }
    if (o->perfetto_max < 1) { fprintf(stderr, "moecap report: --perfetto-max must be >= 1\n"); return 2; }
    if (!o->out_dir) o->out_dir = o->run_dir;
    return -1;
}

/* Everything a report run holds, released by run_free. */
struct report_run {
    struct mc_model model;
    struct mc_hw hw;
    char **names;               /* the run's trace files */
    size_t nn;
    struct report_cursor *cur;  /* one per file, then one per further GEMM writer of a file */
    size_t ncur;
    struct mc_attrib *at;
    struct mc_ggml_attrib *ga;  /* llama.cpp runs: a GGUF --model */
    struct report_steps steps;
    struct report_replay replay;
    cJSON *notes;
    struct report_doc doc;
    struct mc_cost_report *cost;
    struct mc_perfetto *timeline;   /* --format perfetto */
    struct report_devices devices;  /* what the GEMMs ran on (the denominators' default) */
};

static void run_free(struct report_run *r)
{
    mc_perfetto_abort(r->timeline);
    report_doc_free(&r->doc);
    mc_cost_report_free(r->cost);
    cJSON_Delete(r->notes);
    report_replay_free(&r->replay);
    mc_attrib_free(r->at);
    mc_ggml_attrib_free(r->ga);
    report_steps_free(&r->steps);
    for (size_t i = 0; i < r->ncur; i++) if (r->cur[i].t) mc_trace_close(r->cur[i].t);
    for (size_t i = 0; i < r->nn; i++) free(r->names[i]);
    free(r->cur); free(r->names);
    mc_hw_free(&r->hw);
    mc_model_free(&r->model);
}

/* Model, hardware profile, trace files. 0, or -1 after a message. */
static int load_inputs(struct report_run *r, const struct report_opts *o)
{
    char err[1024];
    if (mc_model_load(o->model_path, &r->model, err, sizeof err) != 0) {
        fprintf(stderr, "moecap report: %s\n", err);
        return -1;
    }
    if (o->no_names) {
        int dt = r->model.weight_dtype, elt = r->model.elt;
        mc_model_free(&r->model);   /* drops the safetensors tables only */
        r->model.weight_dtype = dt; r->model.elt = elt;
    }
    if (mc_hw_load(o->hw_spec, &r->hw, err, sizeof err) != 0) {
        fprintf(stderr, "moecap report: %s\n", err);
        return -1;
    }
    if (report_list_traces(o->run_dir, &r->names, &r->nn) != 0) {
        fprintf(stderr, "moecap report: cannot open run directory %s: %s\n", o->run_dir, strerror(errno));
        return -1;
    }
    if (!r->nn) {
        fprintf(stderr, "moecap report: no trace files (*.mct) in %s — run the program with "
                "LD_PRELOAD=libmoecap.so MOECAP_OUT=%s first\n", o->run_dir, o->run_dir);
        return -1;
    }
    r->cur = calloc(r->nn, sizeof *r->cur);
    if (!r->cur) { fprintf(stderr, "moecap report: out of memory\n"); return -1; }
    r->ncur = r->nn;
    struct rlimit rl;   /* every trace stays open during the merge: as many descriptors as allowed */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t n_open = 0;
    for (size_t i = 0; i < r->nn; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", o->run_dir, r->names[i]);
        snprintf(r->cur[i].name, sizeof r->cur[i].name, "%s", r->names[i]);
        r->cur[i].pid = (int32_t)i;   /* until the process record says */
        r->cur[i].t = mc_trace_open(p, err, sizeof err);
        if (!r->cur[i].t) {
            /* one bad file (empty: the disk was full when the shim created it; not a regular
             * file; not a trace) must not cost the run's other traces */
            r->cur[i].status = MC_TRACE_IO_ERROR;
            fprintf(stderr, "moecap report: warning: skipped %s\n", err);
            char msg[1200];
            snprintf(msg, sizeof msg, "skipped %s", err);
            report_add_note(r->notes, "warning", msg);
            continue;
        }
        n_open++;
        report_cursor_advance(&r->cur[i]);
    }
    if (!n_open) {
        fprintf(stderr, "moecap report: none of the %zu trace file(s) in %s could be read\n", r->nn, o->run_dir);
        return -1;
    }
    return 0;
}

/* Does the trace fit the model? 0, or -1 after saying why not. */
static int check_fit(const struct report_run *r, const struct report_opts *o, const struct mc_attrib_stats *ast)
{
    if (!r->replay.gemm_records && !(r->ga && r->steps.n_rows)) {
        fprintf(stderr, "moecap report: the traces in %s hold no GEMM records (%" PRIu64 " records): "
                "was the program's BLAS intercepted by libmoecap.so?\n", o->run_dir, r->replay.records);
        return -1;
    }
    if (!r->steps.n_rows || ast->router_mismatch_steps || ast->shape_mismatch || ast->structure_mismatch_steps) {
        report_explain_mismatch(stderr, &r->model, ast, r->steps.n_rows, cJSON_GetArraySize(r->replay.truncated_files) > 0);
        return -1;
    }
    if (r->steps.oom) { fprintf(stderr, "moecap report: out of memory\n"); return -1; }
    return 0;
}

/* OUT_DIR/name written by fn through a new file renamed over it (safe_file.h): a symlink
 * planted there is replaced, never followed; a failed write leaves the previous file. */
static int write_output(const char *dir, const char *name, int (*fn)(const void *, FILE *), const void *what)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct mc_out out;
    if (mc_out_open(&out, p) != 0) {
        fprintf(stderr, "moecap report: cannot write %s: %s\n", p, strerror(errno));
        return -1;
    }
    int rc = fn(what, out.f);
    if (mc_out_close(&out, rc == 0) != 0) rc = -1;
    if (rc) fprintf(stderr, "moecap report: writing %s failed%s%s\n", p, errno ? ": " : "", errno ? strerror(errno) : "");
    return rc;
}

static int write_json(const void *doc, FILE *f) { return report_json_write(doc, f); }
static int write_md(const void *root, FILE *f) { return mc_render_markdown(root, f); }
static int write_html(const void *root, FILE *f) { return mc_render_html(root, f); }

/* report.json, the views of the same document (MoE-CAP's cap_metrics, the timeline), then the renderings. */
static int write_outputs(struct report_run *r, const struct report_opts *o)
{
    mkdir(o->out_dir, 0755);
    if (write_output(o->out_dir, "report.json", write_json, &r->doc) != 0) return -1;
    if (!o->quiet) fprintf(stderr, "moecap report: %zu steps from %" PRIu64 " records -> %s/report.json\n",
                           r->steps.n_rows, r->replay.records, o->out_dir);
    char err[1024];
    int vrc = moecap_cap_metrics_write(&r->doc, o->out_dir, err, sizeof err);
    if (!vrc && r->timeline) { vrc = mc_perfetto_finish(r->timeline, &r->doc, err, sizeof err); r->timeline = NULL; }
    if (vrc) { fprintf(stderr, "moecap report: %s\n", err); return -1; }
    if (strstr(o->formats, "md") && write_output(o->out_dir, "report.md", write_md, r->doc.root) != 0) return -1;
    if (strstr(o->formats, "html") && write_output(o->out_dir, "report.html", write_html, r->doc.root) != 0) return -1;
    return 0;
}

static int run_report(struct report_run *r, const struct report_opts *o)
{
    r->notes = cJSON_CreateArray();
    if (!r->notes || load_inputs(r, o) != 0) return -1;
    r->at = mc_attrib_new(&r->model, report_on_step, &r->steps);
    if (!r->at) { fprintf(stderr, "moecap report: out of memory\n"); return -1; }
    if (r->model.from_gguf && !(r->ga = mc_ggml_attrib_new(&r->model, report_on_step, &r->steps))) {
        fprintf(stderr, "moecap report: out of memory\n");
        return -1;
    }
    struct report_file_writers *wr = calloc(r->nn, sizeof *wr);
    if (!wr) { fprintf(stderr, "moecap report: out of memory\n"); return -1; }
    report_collect_names(r->at, o->run_dir, r->names, r->nn, o->no_names, &r->devices, wr);
    for (size_t i = 0; i < r->nn; i++) {   /* multi-threaded GEMM issuers: one cursor per thread */
        if (!r->cur[i].t) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", o->run_dir, r->names[i]);
        if (report_writer_cursors(p, i, &wr[i], &r->cur, &r->ncur) != 0) {
            report_file_writers_free(wr, r->nn);
            fprintf(stderr, "moecap report: cannot reopen %s by thread\n", p);
            return -1;
        }
    }
    report_file_writers_free(wr, r->nn);
    /* the denominators' devices: what the GEMMs ran on, unless --devices says */
    int devices = report_devices_choose(&r->devices, o->devices);
    char err[1024];
    if (!(r->cost = mc_cost_report_new(&o->cost, &r->hw, devices, err, sizeof err))) {
        fprintf(stderr, "moecap report: %s\n", err);
        return -1;
    }
    if (report_steps_init(&r->steps, &r->model, &r->hw, devices) != 0) {
        fprintf(stderr, "moecap report: cannot create a temporary file: %s\n", strerror(errno));
        return -1;
    }
    {   /* offload traffic: routed experts read into memory (docs/attribution.md §7) */
        size_t n_loads = 0;
        struct mc_expert_load *loads = mc_attrib_expert_loads(r->at, &n_loads);
        r->steps.offload = mc_offload_view_new(&r->model, loads, n_loads, r->steps.devices * r->steps.bw);
        r->steps.ep = mc_ep_view_new(&r->model);
    }

    int failed;
    r->timeline = mc_perfetto_for_report(o->formats, o->out_dir, (uint64_t)o->perfetto_max, r->at, &failed, err, sizeof err);
    if (failed) { fprintf(stderr, "moecap report: %s\n", err); return -1; }

    r->replay = (struct report_replay){.at = r->at, .ga = r->ga, .model = &r->model, .hw = &r->hw, .steps = &r->steps,
                                       .notes = r->notes, .quiet = o->quiet, .cost = r->cost,
                                       .observe = r->timeline ? mc_perfetto_record : NULL, .observe_user = r->timeline};
    report_replay_run(&r->replay, r->cur, r->ncur);
    struct mc_attrib_stats ast;
    mc_attrib_stats(r->at, &ast);
    if (check_fit(r, o, &ast) != 0) return -1;

    struct report_doc_input in = {
        .run_dir = o->run_dir, .trace_files = r->names, .n_trace_files = r->nn, .replay = &r->replay,
        .attrib = &ast, .model = &r->model, .hw = &r->hw, .devices = devices, .device_census = &r->devices, .steps = &r->steps,
        .lmeval_path = o->lmeval_path, .notes = r->notes,
        .step_summaries = strstr(o->formats, "md") || strstr(o->formats, "html"), .cost = r->cost};
    int brc = report_doc_build(&r->doc, &in, err, sizeof err);
    r->notes = in.notes;   /* taken over by the document unless the build failed first */
    if (brc != 0) { fprintf(stderr, "moecap report: %s\n", err); return -1; }
    report_json_repair(r->doc.root);   /* text from traces and file names: valid UTF-8 */
    return write_outputs(r, o);
}

int mc_cmd_report(int argc, char **argv)
{
    struct report_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    struct report_run r;
    memset(&r, 0, sizeof r);
    rc = run_report(&r, &o) == 0 ? 0 : 2;
    run_free(&r);
    return rc;
}
