/* Kernel-parameter taps: data files (JSON files in data/taps/) that say, per kernel-name pattern,
 * which launch parameter holds a device pointer to top-k expert ids, their element type,
 * and small integer expressions over the launch's scalar parameters and grid giving the
 * number of rows (tokens), k, and the id bound. The CUPTI collector copies the ids back
 * after a matching launch and records tokens per expert (MC_REC_TOPK_TAP). Parsing and
 * expression evaluation here are pure and unit-tested without a GPU.
 *
 * File format: {"taps": [{"name": "...", "kernel": "glob on the mangled name",
 *   "ids_param": 4, "ids_type": "i32"|"i64"|"u32", "rows": "p3", "k": "p6",
 *   "valid_below": "p8 - p7", "source": "where this comes from"}]}
 * Expressions: integers, pN (parameter N read as int32), pN:i64 / pN:u32 / pN:i8 (other
 * widths), gx gy gz (grid), bx by bz (block), + - * / and parentheses. */
#ifndef MOECAP_CUPTI_TAPS_H
#define MOECAP_CUPTI_TAPS_H

#include <stdint.h>

#define MC_TAP_EXPR_MAX 64

struct mc_tap {
    char name[64];
    char pattern[160];
    int ids_param;
    int ids_type;                    /* enum mc_dtype: MC_DT_I32, MC_DT_I64, MC_DT_U32 */
    char rows[MC_TAP_EXPR_MAX];
    char k[MC_TAP_EXPR_MAX];
    char valid_below[MC_TAP_EXPR_MAX];  /* "" = every id valid */
    char source[320];
};

/* What expressions can read at a launch. */
struct mc_tap_launch {
    void **params;                   /* kernelParams: params[i] points to argument i */
    int nparams;                     /* known count, or -1 when unknown */
    uint32_t grid[3], block[3];
};

/* Parse a tap file's JSON text, appending up to `max - *n` taps to `out`. Returns the
 * number added, or -1 with a message in `err` (bad JSON, missing field, bad expression). */
int mc_taps_parse(const char *json, struct mc_tap *out, int max, int *n, char *err, int errlen);

/* Does `kernel_name` match the tap's pattern (fnmatch glob)? */
int mc_tap_matches(const struct mc_tap *tap, const char *kernel_name);

/* Evaluate an expression; 0 on success with *value set, -1 on a syntax error, an
 * out-of-range parameter or a division by zero. `launch` may be NULL to syntax-check. */
int mc_tap_eval(const char *expr, const struct mc_tap_launch *launch, int64_t *value);

/* Load every *.json file of a directory (or one file); returns taps loaded, -1 on error. */
int mc_taps_load_path(const char *path, struct mc_tap *out, int max, int *n, char *err, int errlen);

#endif
