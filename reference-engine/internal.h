/* moe-ref internals shared by the engine's source files (model loader, forward pass,
 * commands): the loaded model layout and small helpers. Not a public API. */
#ifndef MOE_REF_INTERNAL_H
#define MOE_REF_INTERNAL_H

#include "engine.h"

#include <stdarg.h>
#include <stdint.h>
#include <time.h>

/* One mmap'ed safetensors file. */
struct mr_file {
    char *path;
    void *map;
    size_t size;
    const unsigned char *data;   /* start of the data section (8 + header length) */
    size_t data_size;
};

/* One tensor of the model (all files together), sorted by name for lookup. */
struct mr_tensor {
    char *name;
    char dtype[8];
    int ndim;
    int64_t shape[8];
    const void *ptr;              /* inside the mmap'ed data section */
    size_t nbytes;
    int file;                     /* index into mr_model.files */
    size_t file_offset;           /* absolute offset of the data in its file */
};

/* Weights of one decoder layer: pointers into the mmap'ed files (row-major [out, in]). */
struct mr_layer_w {
    const float *attn_norm, *ffn_norm;
    const float *q, *k, *v, *o;
    int dense;
    const float *gate, *up, *down;          /* dense FFN, dense layers only */
    const float *router;                    /* [E, d] */
    const float **eg, **eu, **ed;           /* routed experts [E] each */
    const float *sg, *su, *sd;              /* shared expert(s), fused: [fs, d], [fs, d], [d, fs] */
    const float *sgate;                     /* qwen2_moe shared_expert_gate [1, d] */
};

struct mr_model {
    struct mr_config cfg;
    char *dir;
    struct mr_file *files;
    int nfiles;
    struct mr_tensor *tensors;
    int ntensors;
    const float *embed, *final_norm, *lm_head;
    struct mr_layer_w *lw;
    size_t weight_bytes;          /* all expected tensors together */
};

/* Formats into err (never NULL-terminated-overflowing) and returns NULL, for loaders. */
void mr_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline uint64_t mr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: the deterministic generator behind gen's weights and synthetic prompts. */
static inline uint64_t mr_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Top-k routing of one token from its router logits (HF semantics per architecture);
 * ties go to the lower expert index. Writes K expert ids and weights (routing.c). */
void mr_route_token(const struct mr_config *c, const float *logit, int *sel, float *w);

/* Commands dispatched by main.c. */
int mr_cmd_gen(int argc, char **argv);
int mr_cmd_run(int argc, char **argv);
int mr_cmd_serve(int argc, char **argv);   /* reference-engine/serve/ */
int mr_cmd_gguf(int argc, char **argv);    /* GGUF export for llama.cpp */

/* Parses a non-negative int option value; returns -1 (and prints) when malformed. */
int mr_parse_int(const char *opt, const char *s, long min, long max, long *out);

#endif
