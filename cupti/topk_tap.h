/* Trace record written by kernel-parameter taps (cupti/collector.c). Proposed for
 * include/moecap/trace_format.h (owned by the shim engineer); kept here until merged.
 * MC_REC_TOPK_TAP: one tapped launch of a top-k routing kernel: `rows` tokens chose `k`
 * experts each; counts[e] = (token, slot) pairs routed to local expert e (0 <= e <
 * experts); `invalid` = ids outside [0, experts) (experts handled elsewhere under expert
 * parallelism, or padding). Payload: uint32_t counts[experts], padded to 8. */
#ifndef MOECAP_TOPK_TAP_H
#define MOECAP_TOPK_TAP_H

#include <stdint.h>
#include "moecap/trace_format.h"

#ifndef MC_REC_TOPK_TAP
#define MC_REC_TOPK_TAP 40   /* 18 is MC_REC_GEMM_CPU; 40 leaves room for the core's own additions */
#endif
#define MC_TOPK_TAP_MAX_EXPERTS 4096

struct mc_rec_topk_tap {
    struct mc_rec_header h;
    uint64_t t_ns;                  /* host time the ids arrived (after the kernel ran) */
    uint64_t correlation_id;        /* CUPTI correlation id of the launch */
    int64_t rows, k;
    int64_t experts;                /* length of counts[] */
    int64_t invalid;
    uint32_t kernel_str, tap_str;   /* kernel (mangled) name, tap name */
    int32_t device;
    uint32_t pad;
    /* uint32_t counts[experts], then padding to 8 */
};

#endif
