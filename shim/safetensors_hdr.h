/* safetensors header parsing (shim/safetensors_hdr.c): used by the weight-file
 * interposer; also unit-tested on its own. */
#ifndef MOECAP_SAFETENSORS_HDR_H
#define MOECAP_SAFETENSORS_HDR_H

#include <stddef.h>
#include <stdint.h>
#include "moecap/trace_format.h"

struct mc_st_tensor {
    char name[512];       /* truncated when longer */
    int dtype;            /* enum mc_dtype */
    uint32_t ndim;        /* may exceed 8; only 8 stored */
    int64_t shape[8];
    uint64_t begin, end;  /* data_offsets: relative to the end of the header */
};
typedef void (*mc_st_cb)(void *arg, const struct mc_st_tensor *t);

/* Parses the JSON header text (len bytes, not NUL-terminated). Calls cb per tensor.
 * Returns the number of tensors, or -1 for malformed JSON (tensors seen before the error
 * were already passed to cb). */
int mc_st_parse(const char *json, size_t len, mc_st_cb cb, void *arg);

#endif
