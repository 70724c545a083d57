/* The llama.cpp part of `moecap report` (report_ggml.h): the adapter's counters in
 * run.llama_cpp and the notes that say what the figures assume. */
#include "report/report_ggml.h"

#include <inttypes.h>
#include <stdio.h>

#include "report/report_sections.h"

void report_ggml_json(cJSON *run, cJSON *notes, const struct mc_ggml_attrib *ga)
{
    struct mc_ggml_stats st;
    mc_ggml_attrib_stats(ga, &st);
    cJSON *o = cJSON_AddObjectToObject(run, "llama_cpp");
    cJSON_AddNumberToObject(o, "decode_calls", (double)st.batches);
    cJSON_AddNumberToObject(o, "failed_decode_calls", (double)st.failed_batches);
    cJSON_AddNumberToObject(o, "graph_computes", (double)st.ubatches);
    cJSON_AddNumberToObject(o, "route_records", (double)st.routes);
    cJSON_AddNumberToObject(o, "matmul_records", (double)st.matmuls);
    cJSON_AddNumberToObject(o, "records_outside_decode", (double)st.outside_decode);
    cJSON_AddNumberToObject(o, "expert_products_without_routing", (double)st.routes_missing);
    cJSON_AddNumberToObject(o, "invalid_expert_ids", (double)st.invalid_ids);
    cJSON_AddNumberToObject(o, "implausible_records", (double)st.implausible);
    report_add_note(notes, "info", "llama.cpp run: one step = one llama_decode call; weight bytes count once per "
                    "graph compute (ubatch); KV bytes assume llama.cpp's default F16 cache (docs/llama.md)");
    char msg[256];
    if (st.routes_missing) {
        snprintf(msg, sizeof msg, "%" PRIu64 " expert products ran without a routing record for their layer: "
                 "their expert bytes are missing", st.routes_missing);
        report_add_note(notes, "warning", msg);
    }
    if (st.implausible) {
        snprintf(msg, sizeof msg, "%" PRIu64 " llama.cpp adapter records with impossible sizes or positions were "
                 "skipped as corrupt", st.implausible);
        report_add_note(notes, "warning", msg);
    }
    if (st.saturated) {
        snprintf(msg, sizeof msg, "%" PRIu64 " llama.cpp steps have byte or FLOP figures held at 2^60: "
                 "their records' sizes are corrupt", st.saturated);
        report_add_note(notes, "warning", msg);
    }
    if (st.invalid_ids || st.bad_layers) {
        snprintf(msg, sizeof msg, "%" PRIu64 " expert ids outside the model's experts and %" PRIu64
                 " routing records of layers the model does not have were ignored: is --model the GGUF that ran?",
                 st.invalid_ids, st.bad_layers);
        report_add_note(notes, "warning", msg);
    }
}
