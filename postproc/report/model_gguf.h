/* GGUF model descriptions for `moecap report --model MODEL.gguf` (model_gguf.c). */
#ifndef MOECAP_REPORT_MODEL_GGUF_H
#define MOECAP_REPORT_MODEL_GGUF_H

#include <stdint.h>
#include "report/model.h"

/* Fills m from the GGUF file's metadata and tensor table (tensors: absolute file offsets,
 * exact byte spans; dtype MC_DT_UNKNOWN for block-quantized types). 0, or -1 with err. */
int mc_model_load_gguf(const char *path, struct mc_model *m, char *err, size_t errlen);

#endif
