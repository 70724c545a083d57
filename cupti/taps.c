/* Tap description parsing (cJSON), glob matching and the small expression evaluator for
 * kernel-parameter taps (see taps.h). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moecap/trace_format.h"
#include "taps.h"

/* ---- expressions: recursive descent over the text ---- */

/* Descriptions are data files: every operation is checked (overflow, division of INT64_MIN by
 * -1, nesting deeper than EV_MAX_DEPTH, parameter numbers beyond what a launch can have) and
 * sets err instead of misbehaving. */
#define EV_MAX_DEPTH 64
#define EV_MAX_PARAM 4096
struct ev { const char *p; const struct mc_tap_launch *l; int err; int depth; };

static void skip_ws(struct ev *e) { while (isspace((unsigned char)*e->p)) e->p++; }
static int64_t ev_sum(struct ev *e);

static int64_t read_param(struct ev *e, int idx, int width, int is_signed)
{
    if (!e->l) return 1;   /* syntax check only */
    if (idx < 0 || idx >= EV_MAX_PARAM || (e->l->nparams >= 0 && idx >= e->l->nparams) || !e->l->params ||
        !e->l->params[idx]) {
        e->err = 1;
        return 0;
    }
    const void *p = e->l->params[idx];
    switch (width) {
    case 1: { int8_t v; memcpy(&v, p, 1); return is_signed ? v : (uint8_t)v; }
    case 8: { int64_t v; memcpy(&v, p, 8); return v; }
    default: { int32_t v; memcpy(&v, p, 4); return is_signed ? (int64_t)v : (int64_t)(uint32_t)v; }
    }
}

static int64_t ev_atom_inner(struct ev *e);

static int64_t ev_atom(struct ev *e)
{
    if (e->err || ++e->depth > EV_MAX_DEPTH) { e->err = 1; return 0; }
    int64_t v = ev_atom_inner(e);
    e->depth--;
    return v;
}

static int64_t ev_atom_inner(struct ev *e)
{
    skip_ws(e);
    if (*e->p == '(') {
        e->p++;
        int64_t v = ev_sum(e);
        skip_ws(e);
        if (*e->p != ')') { e->err = 1; return 0; }
        e->p++;
        return v;
    }
    if (*e->p == '-') {
        e->p++;
        int64_t v = ev_atom(e), r;
        if (__builtin_sub_overflow((int64_t)0, v, &r)) { e->err = 1; return 0; }
        return r;
    }
    if (isdigit((unsigned char)*e->p)) {
        char *end;
        long long v = strtoll(e->p, &end, 10);
        e->p = end;
        return v;
    }
    if (*e->p == 'p' && isdigit((unsigned char)e->p[1])) {
        char *end;
        long idx = strtol(e->p + 1, &end, 10);
        e->p = end;
        if (idx >= EV_MAX_PARAM) { e->err = 1; return 0; }
        int width = 4, sgn = 1;
        if (*e->p == ':') {
            if (!strncmp(e->p, ":i64", 4)) { width = 8; e->p += 4; }
            else if (!strncmp(e->p, ":u32", 4)) { sgn = 0; e->p += 4; }
            else if (!strncmp(e->p, ":i32", 4)) { e->p += 4; }
            else if (!strncmp(e->p, ":i8", 3)) { width = 1; e->p += 3; }
            else { e->err = 1; return 0; }
        }
        return read_param(e, (int)idx, width, sgn);
    }
    if ((e->p[0] == 'g' || e->p[0] == 'b') && e->p[1] >= 'x' && e->p[1] <= 'z' &&
        !isalnum((unsigned char)e->p[2])) {
        int axis = e->p[1] - 'x';
        int grid = e->p[0] == 'g';
        e->p += 2;
        if (!e->l) return 1;
        return grid ? e->l->grid[axis] : e->l->block[axis];
    }
    e->err = 1;
    return 0;
}

static int64_t ev_prod(struct ev *e)
{
    int64_t v = ev_atom(e);
    for (;;) {
        skip_ws(e);
        char op = *e->p;
        if (op != '*' && op != '/') return v;
        e->p++;
        int64_t r = ev_atom(e);
        if (op == '*') { if (__builtin_mul_overflow(v, r, &v)) { e->err = 1; return 0; } }
        else if (r == 0 || (r == -1 && v == INT64_MIN)) { e->err = 1; return 0; }
        else v /= r;
    }
}

static int64_t ev_sum(struct ev *e)
{
    int64_t v = ev_prod(e);
    for (;;) {
        skip_ws(e);
        char op = *e->p;
        if (op != '+' && op != '-') return v;
        e->p++;
        int64_t r = ev_prod(e);
        if (op == '+' ? __builtin_add_overflow(v, r, &v) : __builtin_sub_overflow(v, r, &v)) { e->err = 1; return 0; }
    }
}

int mc_tap_eval(const char *expr, const struct mc_tap_launch *launch, int64_t *value)
{
    if (!expr || !*expr) return -1;
    struct ev e = { expr, launch, 0, 0 };
    int64_t v = ev_sum(&e);
    skip_ws(&e);
    if (e.err || *e.p) return -1;
    *value = v;
    return 0;
}

int mc_tap_matches(const struct mc_tap *tap, const char *kernel_name)
{
    return kernel_name && fnmatch(tap->pattern, kernel_name, 0) == 0;
}

/* ---- files ---- */

static int copy_str(cJSON *obj, const char *key, char *dst, size_t cap, int required)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v)) {
        if (required) return -1;
        dst[0] = 0;
        return 0;
    }
    if (strlen(v->valuestring) >= cap) return -1;
    snprintf(dst, cap, "%s", v->valuestring);
    return 0;
}

int mc_taps_parse(const char *json, struct mc_tap *out, int max, int *n, char *err, int errlen)
{
    cJSON *root = cJSON_Parse(json);
    if (!root) { snprintf(err, (size_t)errlen, "not valid JSON near: %.40s", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?"); return -1; }
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "taps");
    if (!cJSON_IsArray(arr)) {
        snprintf(err, (size_t)errlen, "expected an object with a \"taps\" array");
        cJSON_Delete(root);
        return -1;
    }
    int added = 0, i = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, arr) {
        struct mc_tap tap;
        memset(&tap, 0, sizeof tap);
        char type[16];
        if (copy_str(t, "name", tap.name, sizeof tap.name, 1) || copy_str(t, "kernel", tap.pattern, sizeof tap.pattern, 1) ||
            copy_str(t, "rows", tap.rows, sizeof tap.rows, 1) || copy_str(t, "k", tap.k, sizeof tap.k, 1) ||
            copy_str(t, "ids_type", type, sizeof type, 1) ||
            copy_str(t, "valid_below", tap.valid_below, sizeof tap.valid_below, 0) ||
            copy_str(t, "source", tap.source, sizeof tap.source, 0)) {
            snprintf(err, (size_t)errlen, "tap %d: needs string fields name, kernel, rows, k, ids_type (within length limits)", i);
            cJSON_Delete(root);
            return -1;
        }
        cJSON *ip = cJSON_GetObjectItemCaseSensitive(t, "ids_param");
        if (!cJSON_IsNumber(ip) || ip->valuedouble < 0 || ip->valuedouble > 255 ||
            ip->valuedouble != (int)ip->valuedouble) {
            snprintf(err, (size_t)errlen, "tap %d (%s): ids_param must be an integer 0..255", i, tap.name);
            cJSON_Delete(root);
            return -1;
        }
        tap.ids_param = (int)ip->valuedouble;
        if (!strcmp(type, "i32")) tap.ids_type = MC_DT_I32;
        else if (!strcmp(type, "i64")) tap.ids_type = MC_DT_I64;
        else if (!strcmp(type, "u32")) tap.ids_type = MC_DT_U32;
        else {
            snprintf(err, (size_t)errlen, "tap %d (%s): ids_type must be i32, i64 or u32, not \"%s\"", i, tap.name, type);
            cJSON_Delete(root);
            return -1;
        }
        int64_t dummy;
        const char *bad = mc_tap_eval(tap.rows, NULL, &dummy) ? "rows"
                        : mc_tap_eval(tap.k, NULL, &dummy) ? "k"
                        : (tap.valid_below[0] && mc_tap_eval(tap.valid_below, NULL, &dummy)) ? "valid_below" : NULL;
        if (bad) {
            snprintf(err, (size_t)errlen, "tap %d (%s): bad expression in \"%s\"", i, tap.name, bad);
            cJSON_Delete(root);
            return -1;
        }
        if (*n < max) { out[(*n)++] = tap; added++; }
        i++;
    }
    cJSON_Delete(root);
    return added;
}

static int load_file(const char *file, struct mc_tap *out, int max, int *n, char *err, int errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) { snprintf(err, (size_t)errlen, "cannot open %s", file); return -1; }
    char *buf = malloc(1 << 20);
    size_t len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return -1;
    buf[len] = 0;
    char e2[200];
    int r = mc_taps_parse(buf, out, max, n, e2, sizeof e2);
    free(buf);
    if (r < 0) snprintf(err, (size_t)errlen, "%s: %s", file, e2);
    return r;
}

int mc_taps_load_path(const char *path, struct mc_tap *out, int max, int *n, char *err, int errlen)
{
    DIR *d = opendir(path);
    if (!d) return load_file(path, out, max, n, err, errlen);
    int total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        int r = load_file(file, out, max, n, err, errlen);
        if (r < 0) { closedir(d); return -1; }
        total += r;
    }
    closedir(d);
    return total;
}
