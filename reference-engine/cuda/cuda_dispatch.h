/* `moe-ref run --device cuda` glue, header-only so moe-ref needs no CUDA at build or link
 * time: loads libmoeref-cuda.so (MOE_REF_CUDA_LIB, else ../lib/ next to the moe-ref
 * executable) with dlopen, runs mr_cuda_run and prints the generated ids (or text) like
 * the CPU path. Returns the exit status: 0 ok, 1 run failure, 2 bad usage or CUDA
 * unavailable (no engine library, no usable device). */
#ifndef MOE_REF_CUDA_DISPATCH_H
#define MOE_REF_CUDA_DISPATCH_H

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "engine.h"
#include "offload.h"
#include "cuda/cuda_engine.h"

static inline int mr_cuda_dispatch(mr_model *m, int n, int32_t *const *prompts, const int *plen, int gen,
                                   long stagger, const char *moe, const char *dtype, FILE *gt, FILE *lf,
                                   int print_text, enum mr_offload_policy offload, const char *budget_arg)
{
    struct mr_cuda_opts o = { 0, 0, 0, 0 };
    if (!strcmp(moe, "fused")) o.fused = 1;
    else if (strcmp(moe, "loop") != 0) {
        fprintf(stderr, "moe-ref run: --moe must be loop or fused, not \"%s\"\n", moe);
        return 2;
    }
    if (!strcmp(dtype, "bf16")) o.bf16 = 1;
    else if (strcmp(dtype, "f32") != 0) {
        fprintf(stderr, "moe-ref run: --dtype must be f32 or bf16, not \"%s\"\n", dtype);
        return 2;
    }
    if (stagger) {
        fprintf(stderr, "moe-ref run: --stagger is not supported with --device cuda\n");
        return 2;
    }
    if (offload != MR_OFFLOAD_NONE) {   /* the budget is checked here, before any device work */
        const struct mr_config *c = mr_model_config(m);
        int elt = o.bf16 ? 2 : 4, nslots;
        uint64_t budget;
        char perr[512];
        if (o.fused) {
            /* fused routes on the device and its grouped kernels read every expert from one
             * [E, f, d] array: ondemand would need each layer's routing on the host (a copy and
             * a sync per layer, the loop style) and swapmoe a top-k restricted on the device */
            fprintf(stderr, "moe-ref run: --offload with --device cuda needs --moe loop (--moe fused routes on the "
                    "device and reads all experts of a layer from one array, so it cannot load the routed "
                    "experts before its kernels use them)\n");
            return 2;
        }
        if (mr_budget_bytes("moe-ref run", m, budget_arg, elt, &budget)) return 2;
        if (mr_offload_plan(m, offload, budget, 3ull * (uint64_t)c->hidden * (uint64_t)c->moe_inter * (uint64_t)elt,
                            &nslots, perr, sizeof perr)) {
            fprintf(stderr, "moe-ref run: %s\n", perr);
            return 2;
        }
        o.offload = (int)offload;
        o.expert_budget = budget;
    }
    char path[PATH_MAX];
    const char *env = getenv("MOE_REF_CUDA_LIB");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        ssize_t k = readlink("/proc/self/exe", path, sizeof path - 32);
        if (k <= 0) k = 0;
        path[k] = 0;
        char *slash = strrchr(path, '/');
        if (slash) *slash = 0;
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "/../lib/libmoeref-cuda.so");
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    mr_cuda_run_fn run = h ? (mr_cuda_run_fn)dlsym(h, "mr_cuda_run") : NULL;
    if (!run) {
        fprintf(stderr, "moe-ref run: --device cuda is not available: %s (the CUDA engine is built "
                "where nvcc exists; MOE_REF_CUDA_LIB overrides its path)\n", h ? "no mr_cuda_run" : dlerror());
        return 2;
    }
    int32_t **out = calloc((size_t)n, sizeof *out);
    int rc = out ? 0 : 1;
    for (int i = 0; i < n && !rc; i++)
        if (!(out[i] = malloc((size_t)gen * sizeof **out))) rc = 1;
    char err[512] = "";
    if (!rc) {
        int r = run((struct mr_model *)m, n, prompts, plen, gen, &o, gt, lf, out, err, sizeof err);
        if (r == -2) {          /* no GPU here: the device is unavailable, like an unknown one */
            fprintf(stderr, "moe-ref run: --device cuda is not available: %s\n", err);
            rc = 2;
        } else if (r != 0) {
            fprintf(stderr, "moe-ref run: %s\n", err);
            rc = 1;
        }
    }
    for (int i = 0; i < n && !rc; i++) {
        if (print_text) {
            char *txt = malloc((size_t)gen + 1);
            if (!txt) { rc = 1; break; }
            mr_tok_decode(out[i], gen, txt, (size_t)gen + 1);
            printf("%s\n", txt);
            free(txt);
        } else {
            for (int j = 0; j < gen; j++) printf("%s%d", j ? " " : "", (int)out[i][j]);
            printf("\n");
        }
    }
    if (out) for (int i = 0; i < n; i++) free(out[i]);
    free(out);
    return rc;
}

#endif
