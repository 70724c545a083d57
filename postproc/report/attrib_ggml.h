/* Forward steps of llama.cpp runs (ggml adapter records: LLAMA_BATCH, GGML_ROUTE,
 * GGML_MATMUL) turned into the same `struct mc_step` the GEMM attributor (attrib.h) gives,
 * so `moecap report` writes the same report for llama.cpp as for any other engine. One step
 * = one llama_decode call; docs/llama.md gives the byte and FLOP rules. */
#ifndef MOECAP_REPORT_ATTRIB_GGML_H
#define MOECAP_REPORT_ATTRIB_GGML_H

#include <stdint.h>
#include "report/attrib.h"
#include "report/model.h"
#include "trace/trace_reader.h"

struct mc_ggml_attrib;

struct mc_ggml_stats {
    uint64_t batches, failed_batches;   /* llama_decode calls seen; those that returned non-zero */
    uint64_t steps;                     /* steps delivered */
    uint64_t routes, matmuls;
    uint64_t outside_decode;            /* graph records of no llama_decode call (step id 0) */
    uint64_t routes_missing;            /* MUL_MAT_ID products whose layer's routing was not seen */
    uint64_t invalid_ids;               /* expert ids outside [0, experts) */
    uint64_t bad_layers;                /* routing of a layer the model does not have */
    uint64_t ubatches;                  /* graph computes over all steps */
    uint64_t implausible;               /* records (or batch sequences) with impossible sizes or
                                           positions, or a second batch record of one step: skipped */
    uint64_t saturated;                 /* steps with a figure held at 2^60 (corrupt sizes summed) */
};

struct mc_ggml_attrib *mc_ggml_attrib_new(const struct mc_model *m, mc_step_cb cb, void *user);
/* Any record; those that are not the adapter's are ignored. */
void mc_ggml_attrib_record(struct mc_ggml_attrib *a, int32_t pid, const struct mc_trace_rec *rec);
/* Delivers the steps, in order of their begin time, to the callback. */
void mc_ggml_attrib_finish(struct mc_ggml_attrib *a);
void mc_ggml_attrib_stats(const struct mc_ggml_attrib *a, struct mc_ggml_stats *st);
void mc_ggml_attrib_free(struct mc_ggml_attrib *a);

/* The KV cache element size the report assumes for llama.cpp (its default cache type, F16). */
#define MC_GGML_KV_ELT 2

#endif
