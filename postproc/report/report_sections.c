/* Descriptive sections of report.json and attribution messages (see report_sections.h). */
#include "report/report_sections.h"

#include <inttypes.h>
#include <string.h>

#include "trace/trace_reader.h"

void report_add_note(cJSON *notes, const char *level, const char *text)
{
    if (cJSON_GetArraySize(notes) >= REPORT_NOTE_MAX) return;
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "level", level);
    cJSON_AddStringToObject(n, "text", text);
    cJSON_AddItemToArray(notes, n);
}

void report_explain_mismatch(FILE *o, const struct mc_model *m, const struct mc_attrib_stats *ast, size_t steps,
                             int truncated)
{
    fprintf(o, "moecap report: the trace does not match the model %s: ", m->path);
    if (ast->shape_mismatch)
        fprintf(o, "%" PRIu64 " GEMMs use named weights whose shape the config does not predict (e.g. %s; "
                "config: hidden_size %lld, experts %lld x intermediate %lld, vocab %lld",
                ast->shape_mismatch, ast->mismatch_example, (long long)m->d, (long long)m->experts,
                (long long)m->f, (long long)m->vocab);
    else if (ast->structure_mismatch_steps)
        fprintf(o, "%" PRIu64 " steps lack the %s GEMMs the config predicts",
                ast->structure_mismatch_steps, m->fs > 0 ? "shared-expert (or dense FFN)" : "dense-layer FFN");
    else if (!steps)
        fprintf(o, "no forward step found (no GEMM with the lm_head shape out = vocab_size %lld x in = hidden_size %lld",
                (long long)m->vocab, (long long)m->d);
    else
        fprintf(o, "%" PRIu64 " steps do not have one router GEMM (out = %lld experts x in = %lld) per MoE layer (%lld)",
                ast->router_mismatch_steps, (long long)m->experts, (long long)m->d, (long long)m->n_moe_layers);
    if (truncated && !steps) fprintf(o, "; the trace is truncated before the first complete step");
    if (ast->implausible)
        fprintf(o, "; %" PRIu64 " GEMM record(s) or step(s) with impossible sizes were skipped as corrupt", ast->implausible);
    fprintf(o, ")\n  most frequent unattributed GEMM shapes (out x in: calls):");
    for (int i = 0; i < ast->n_unknown_shapes; i++)
        fprintf(o, " %lldx%lld: %" PRIu64 ";", (long long)ast->unknown_shape_out[i],
                (long long)ast->unknown_shape_in[i], ast->unknown_shape_count[i]);
    fprintf(o, "\n  check that --model is the model the traced program ran\n");
}

void report_attrib_notes(cJSON *notes, const struct mc_attrib_stats *ast, const struct mc_model *m)
{
    char msg[512];
    if (ast->unattributed) {
        snprintf(msg, sizeof msg, "%" PRIu64 " of %" PRIu64 " GEMM calls matched no weight of the model "
                 "(counted in flops.unattributed_gemm, not in S-MFU)", ast->unattributed, ast->gemms);
        report_add_note(notes, "info", msg);
    }
    if (ast->implausible) {
        snprintf(msg, sizeof msg, "%" PRIu64 " GEMM record(s) or step(s) with impossible sizes (a dimension "
                 "above 2^31-1, or more than %d sequences) were skipped as corrupt", ast->implausible,
                 MC_ATTRIB_MAX_SEQUENCES);
        report_add_note(notes, "warning", msg);
    }
    if (ast->placements_dropped) {
        snprintf(msg, sizeof msg, "placements of tensors in mapped memory exceed the bound of max(2^20, 16 x "
                 "(tensors + file maps)): %" PRIu64 " file map(s) not placed, weights there are classified by shape",
                 ast->placements_dropped);
        report_add_note(notes, "warning", msg);
    }
    if (ast->tap_missing_layers) {
        snprintf(msg, sizeof msg, "%" PRIu64 " MoE layer(s) ran their experts without GEMMs (fused kernel) and no "
                 "router-logit tap came for them: their experts are missing (set MOECAP_ROUTER_TAP or "
                 "MOECAP_MODEL for the shim)", ast->tap_missing_layers);
        report_add_note(notes, "warning", msg);
    }
    if (ast->taps_unreadable || ast->taps_unmatched) {
        snprintf(msg, sizeof msg, "%" PRIu64 " router-logit taps unreadable (dtype/size/experts), %" PRIu64
                 " never matched a router GEMM", ast->taps_unreadable, ast->taps_unmatched);
        report_add_note(notes, "warning", msg);
    }
    if (ast->topk_router_disagree || ast->topk_gemm_disagree) {
        snprintf(msg, sizeof msg, "kernel-parameter (top-k) taps disagree with %" PRIu64 " router-logit tap(s) and %"
                 PRIu64 " layer(s) of expert GEMMs (agree: %" PRIu64 ", %" PRIu64 "); the top-k tap (the kernel's own "
                 "choice) was used for fused layers", ast->topk_router_disagree, ast->topk_gemm_disagree,
                 ast->topk_router_agree, ast->topk_gemm_agree);
        report_add_note(notes, "warning", msg);
    }
    if (ast->topk_unplaced) {
        snprintf(msg, sizeof msg, "%" PRIu64 " of %" PRIu64 " kernel-parameter (top-k) taps could not be placed in a "
                 "step's MoE layer (no router GEMM before their launch, or their step was already written)",
                 ast->topk_unplaced, ast->topk_taps);
        report_add_note(notes, "warning", msg);
    }
    if (ast->topk_invalid_ids || ast->topk_ids_beyond_model) {
        snprintf(msg, sizeof msg, "%" PRIu64 " expert ids in top-k taps were outside this process's experts "
                 "(expert parallelism or padding): not counted", ast->topk_invalid_ids + ast->topk_ids_beyond_model);
        report_add_note(notes, "info", msg);
    }
    if (ast->weight_elt > 0 && m->elt && ast->weight_elt != m->elt) {
        snprintf(msg, sizeof msg, "the GEMMs read %d-byte weights while the model files say %d bytes per element: "
                 "weight, norm, embedding and KV-cache bytes use the GEMMs' element size", ast->weight_elt, m->elt);
        report_add_note(notes, "info", msg);
    }
    if (ast->open_steps_dropped) {
        snprintf(msg, sizeof msg, "%" PRIu64 " forward step(s) at the end of the trace had no lm_head GEMM and were dropped", ast->open_steps_dropped);
        report_add_note(notes, "warning", msg);
    }
    if (!ast->expert_ids_exact)
        report_add_note(notes, "warning", "some expert weights could not be named (no tensor names for their addresses): "
                 "their ids are first-seen order within the layer, not the model's expert numbers");
}

void report_attribution_json(cJSON *run, const struct mc_attrib_stats *ast)
{
    cJSON *attr = cJSON_AddObjectToObject(run, "attribution");
    cJSON_AddStringToObject(attr, "names", ast->shape_weights == 0 ? "tensor" : ast->named_weights == 0 ? "shape" : "mixed");
    cJSON_AddStringToObject(attr, "expert_ids", ast->expert_ids_exact ? "exact" : "order");
    cJSON_AddNumberToObject(attr, "named_weights", (double)ast->named_weights);
    cJSON_AddNumberToObject(attr, "shape_weights", (double)ast->shape_weights);
    cJSON_AddNumberToObject(attr, "router_taps", (double)ast->taps);
    cJSON_AddNumberToObject(attr, "implausible_records", (double)ast->implausible);
    cJSON_AddNumberToObject(attr, "helper_thread_gemms", (double)ast->helper_gemms);
    {   /* how GPU weight addresses were named (docs/attribution.md §3b) and the top-k taps (§4c) */
        cJSON *nb = cJSON_AddObjectToObject(attr, "named_by");
        cJSON_AddNumberToObject(nb, "host_file_map", (double)ast->named_host);
        cJSON_AddNumberToObject(nb, "device_file_map", (double)ast->named_device_map);
        cJSON_AddNumberToObject(nb, "host_to_device_copy", (double)ast->named_device_copy);
        cJSON_AddNumberToObject(nb, "expert_device_range", (double)ast->expert_range_weights);
        cJSON_AddNumberToObject(nb, "expert_first_seen_order", (double)ast->order_weights);
        if (ast->weight_elt > 0) cJSON_AddNumberToObject(attr, "gemm_weight_bytes_per_element", ast->weight_elt);
        if (ast->topk_taps) {
            cJSON *tk = cJSON_AddObjectToObject(attr, "topk_taps");
            cJSON_AddNumberToObject(tk, "records", (double)ast->topk_taps);
            cJSON_AddNumberToObject(tk, "placed_by_launch", (double)ast->topk_by_launch);
            cJSON_AddNumberToObject(tk, "placed_by_arrival_time", (double)ast->topk_by_time);
            cJSON_AddNumberToObject(tk, "used_for_layers", (double)ast->topk_used);
            cJSON_AddNumberToObject(tk, "unplaced", (double)ast->topk_unplaced);
            cJSON_AddNumberToObject(tk, "agree_with_router_taps", (double)ast->topk_router_agree);
            cJSON_AddNumberToObject(tk, "disagree_with_router_taps", (double)ast->topk_router_disagree);
            cJSON_AddNumberToObject(tk, "agree_with_expert_gemms", (double)ast->topk_gemm_agree);
            cJSON_AddNumberToObject(tk, "disagree_with_expert_gemms", (double)ast->topk_gemm_disagree);
            cJSON_AddNumberToObject(tk, "ids_not_local", (double)(ast->topk_invalid_ids + ast->topk_ids_beyond_model));
        }
    }
}

void report_model_json(cJSON *root, const struct mc_model *m)
{
    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "path", m->path);
    cJSON_AddStringToObject(mo, "architecture", m->arch_name);
    cJSON_AddStringToObject(mo, "model_type", m->model_type);
    cJSON_AddNumberToObject(mo, "hidden_size", (double)m->d);
    cJSON_AddNumberToObject(mo, "num_layers", (double)m->layers);
    cJSON *ml = cJSON_AddArrayToObject(mo, "moe_layers"), *dl = cJSON_AddArrayToObject(mo, "dense_layers");
    for (int64_t l = 0; l < m->layers; l++)
        cJSON_AddItemToArray(m->is_moe[l] ? ml : dl, cJSON_CreateNumber((double)l));
    cJSON_AddNumberToObject(mo, "num_experts", (double)m->experts);
    cJSON_AddNumberToObject(mo, "top_k", (double)m->top_k);
    cJSON_AddNumberToObject(mo, "moe_intermediate_size", (double)m->f);
    if (m->fd > 0 && m->n_moe_layers < m->layers) cJSON_AddNumberToObject(mo, "intermediate_size", (double)m->fd);
    cJSON_AddNumberToObject(mo, "shared_experts", (double)m->n_shared);
    cJSON_AddNumberToObject(mo, "shared_intermediate_size", (double)m->fs);
    cJSON_AddNumberToObject(mo, "num_heads", (double)m->heads);
    cJSON_AddNumberToObject(mo, "num_kv_heads", (double)m->kv_heads);
    cJSON_AddNumberToObject(mo, "head_dim", (double)m->head_dim);
    cJSON_AddNumberToObject(mo, "vocab_size", (double)m->vocab);
    cJSON_AddBoolToObject(mo, "tie_word_embeddings", m->tie_embeddings);
    cJSON_AddStringToObject(mo, "weight_dtype", mc_dtype_name((unsigned)m->weight_dtype));
    cJSON_AddNumberToObject(mo, "bytes_per_element", m->elt);
    cJSON_AddNumberToObject(mo, "expert_bytes", (double)mc_model_expert_params(m) * m->elt);
    {
        double L = (double)m->layers, nm = (double)m->n_moe_layers;
        double dense = L * (double)(mc_model_attn_params(m) + mc_model_norm_params(m))
                       + nm * (double)m->experts * (double)m->d
                       + (L - nm) * 3.0 * (double)m->d * (double)m->fd
                       + (double)m->vocab * (double)m->d * (m->tie_embeddings ? 1 : 2) + (double)m->d;
        double routed = nm * (double)m->experts * (double)mc_model_expert_params(m);
        double shared = nm * (double)(mc_model_shared_params(m) + (m->shared_gate ? m->d : 0));
        cJSON *p = cJSON_AddObjectToObject(mo, "params");
        cJSON_AddNumberToObject(p, "total", dense + routed + shared);
        cJSON_AddNumberToObject(p, "dense", dense);
        cJSON_AddNumberToObject(p, "routed_experts", routed);
        cJSON_AddNumberToObject(p, "shared_experts", shared);
        cJSON_AddNumberToObject(p, "activated_per_token", dense + shared + nm * (double)m->top_k * (double)mc_model_expert_params(m));
    }
}

void report_hardware_json(cJSON *root, const struct mc_hw *hw, int devices, const char *compute_key, double peak)
{
    cJSON *h = cJSON_AddObjectToObject(root, "hardware");
    cJSON_AddStringToObject(h, "name", hw->name);
    if (hw->kind) cJSON_AddStringToObject(h, "kind", hw->kind);
    if (hw->model) cJSON_AddStringToObject(h, "model", hw->model);
    cJSON_AddStringToObject(h, "profile_path", hw->path);
    cJSON_AddNumberToObject(h, "devices", devices);
    cJSON_AddNumberToObject(h, "memory_bandwidth_Bps", hw->bandwidth_Bps);
    if (compute_key[0]) cJSON_AddStringToObject(h, "compute_dtype", compute_key);
    if (peak > 0) cJSON_AddNumberToObject(h, "peak_flops", peak);
    cJSON_AddBoolToObject(h, "measured", hw->measured);
    cJSON_AddStringToObject(h, "peaks", hw->measured ? "measured" : "spec");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(hw->json, "source");
    if (src) cJSON_AddItemToObject(h, "source", cJSON_Duplicate(src, 1));
}

void report_expert_load_json(cJSON *root, const struct mc_model *m, const uint64_t *load_tokens, const uint64_t *load_act,
                             int ids_exact)
{
    cJSON *el = cJSON_AddObjectToObject(root, "expert_load");
    cJSON *ell = cJSON_AddArrayToObject(el, "layers");
    cJSON *elt_ = cJSON_AddArrayToObject(el, "tokens"), *ela = cJSON_AddArrayToObject(el, "activations");
    cJSON_AddNumberToObject(el, "num_experts", (double)m->experts);
    for (int i = 0, k = 0; i < m->layers; i++) {
        if (!m->is_moe[i]) continue;
        cJSON_AddItemToArray(ell, cJSON_CreateNumber(i));
        cJSON *rt = cJSON_CreateArray(), *ra = cJSON_CreateArray();
        for (int64_t e = 0; e < m->experts; e++) {
            cJSON_AddItemToArray(rt, cJSON_CreateNumber((double)load_tokens[(int64_t)k * m->experts + e]));
            cJSON_AddItemToArray(ra, cJSON_CreateNumber((double)load_act[(int64_t)k * m->experts + e]));
        }
        cJSON_AddItemToArray(elt_, rt);
        cJSON_AddItemToArray(ela, ra);
        k++;
    }
    cJSON_AddStringToObject(el, "expert_ids", ids_exact ? "exact" : "order");
}
