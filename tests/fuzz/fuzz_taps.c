/* Fuzz target: kernel-parameter tap descriptions (the JSON files of data/taps, cupti/taps.c; compiles
 * without CUDA): parse any JSON text, then match each tap against a kernel name and evaluate
 * its expressions on a synthetic launch whose parameters are taken from the input's tail.
 * Oracles: no crash or sanitizer report; an accepted tap has a NUL-terminated pattern. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "taps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct mc_tap taps[8];
    int n = 0;
    char err[256];
    mc_taps_parse(text, taps, 8, &n, err, sizeof err);
    /* eight 8-byte parameters from the last 64 bytes of the input (zero when shorter) */
    uint64_t pv[8] = {0};
    memcpy(pv, data + (size > 64 ? size - 64 : 0), size < 64 ? size : 64);
    void *params[8];
    for (int i = 0; i < 8; i++) params[i] = &pv[i];
    struct mc_tap_launch l = {params, 8, {2, 1, 1}, {128, 1, 1}};
    for (int i = 0; i < n; i++) {
        if (!memchr(taps[i].pattern, 0, sizeof taps[i].pattern)) abort();
        mc_tap_matches(&taps[i], "_Z13topk_kernelPiS_ii");
        int64_t v;
        mc_tap_eval(taps[i].rows, &l, &v);
        mc_tap_eval(taps[i].k, &l, &v);
        if (taps[i].valid_below[0]) mc_tap_eval(taps[i].valid_below, &l, &v);
    }
    /* the expression evaluator on the raw text too */
    int64_t v;
    mc_tap_eval(text, &l, &v);
    free(text);
    return 0;
}
