/* Trace synthesiser: writes .mct files from tests and benchmarks (no shim needed), e.g. to
 * feed the post-processor a trace with exactly known content.
 *
 *     struct mc_synth *w = mc_synth_open("t.mct");
 *     uint32_t s = mc_synth_string(w, "model.safetensors");
 *     struct mc_rec_gemm g = {0};
 *     g.m = 1; g.n = 64; g.k = 32; g.api = MC_API_CBLAS_SGEMM;
 *     mc_synth_record(w, MC_REC_GEMM, &g, sizeof g);   // header filled in here
 *     mc_synth_close(w);                                  // 0 = all written
 */
#ifndef MOECAP_TRACE_SYNTH_H
#define MOECAP_TRACE_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include "moecap/trace_format.h"

struct mc_synth;

/* Creates (truncates) path and writes the file header. NULL on error (errno set). */
struct mc_synth *mc_synth_open(const char *path);

/* Writes a MC_REC_STRING with the next id (1, 2, ...) and returns that id (0 on error). */
uint32_t mc_synth_string(struct mc_synth *w, const char *text);

/* Writes a record: `rec` points at `size` bytes beginning with a struct mc_rec_header
 * (whose type/size are overwritten); `var`/`var_len` are appended after it (may be NULL);
 * the total is zero padded to a multiple of 8. Returns 0 or -1. */
int mc_synth_record_var(struct mc_synth *w, uint16_t type, const void *rec, size_t size,
                        const void *var, size_t var_len);
int mc_synth_record(struct mc_synth *w, uint16_t type, const void *rec, size_t size);

/* Writes raw bytes (to build corrupt files on purpose). */
int mc_synth_raw(struct mc_synth *w, const void *bytes, size_t n);

/* Closes; returns 0 if every write succeeded, -1 otherwise. */
int mc_synth_close(struct mc_synth *w);

#endif
