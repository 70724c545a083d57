/* Kernel-parameter taps (cupti/collector.c): limits of the MC_REC_TOPK_TAP record, whose
 * layout (struct mc_rec_topk_tap) is part of the trace contract in trace_format.h. */
#ifndef MOECAP_TOPK_TAP_H
#define MOECAP_TOPK_TAP_H

#include <stdint.h>
#include "moecap/trace_format.h"

#define MC_TOPK_TAP_MAX_EXPERTS 4096

/* struct mc_rec_topk_tap and MC_REC_TOPK_TAP: include/moecap/trace_format.h */

#endif
