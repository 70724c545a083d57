/* GGUF tensor-table parsing (shim/gguf_hdr.c) for the weight-file interposer. */
#ifndef MOECAP_GGUF_HDR_H
#define MOECAP_GGUF_HDR_H

#include <stdint.h>
#include <sys/types.h>
#include "safetensors_hdr.h"

typedef ssize_t (*mc_pread_fn)(int fd, void *buf, size_t n, off_t off);

/* Reads the header of the GGUF file open as fd (with pread_fn, leaving the file offset
 * alone) and calls cb per tensor with begin/end as ABSOLUTE file offsets, shape outermost
 * first, dtype MC_DT_UNKNOWN for block-quantized types (their bytes are end - begin).
 * Returns the number of tensors, or -1 (not GGUF v2/v3, truncated, implausible). */
int mc_gguf_parse(int fd, mc_pread_fn pread_fn, uint64_t file_size, mc_st_cb cb, void *arg);

#endif
