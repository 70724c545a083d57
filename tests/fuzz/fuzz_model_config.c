/* Fuzz target: config.json (model description) parsing of `moecap report`
 * (mc_model_parse_config). Oracles: an accepted model has positive dimensions within the
 * documented bounds, and the derived sizes it feeds the attribution do not overflow. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct mc_model m;
    char err[512];
    if (mc_model_parse_config(text, &m, err, sizeof err) == 0) {
        if (m.d <= 0 || m.layers <= 0 || m.layers > MC_MODEL_MAX_LAYERS || m.experts <= 0 ||
            m.experts > MC_MODEL_MAX_EXPERTS || m.top_k > m.experts || m.vocab <= 0 || m.heads <= 0)
            abort();
        /* derived sizes: must be computable without overflow (UBSan would trap) */
        volatile int64_t x = mc_model_attn_params(&m) + mc_model_expert_params(&m) + mc_model_shared_params(&m) +
                             mc_model_norm_params(&m) + mc_model_kv_elems_per_token(&m);
        (void)x;
        mc_model_free(&m);
    }
    free(text);
    return 0;
}
