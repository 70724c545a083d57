/* safetensors header parser: the JSON table after the 8-byte little-endian length.
 * A tiny, bounds-checked recursive-descent JSON reader (no allocation, no dependency)
 * that extracts name, dtype, shape and data_offsets of every tensor; everything else,
 * including "__metadata__", is skipped. Runs once per weight file, never in a hot path. */
#include "safetensors_hdr.h"

#include <string.h>

#include "moecap/trace_facts.h"

struct js { const char *p, *end; int depth; };

static void ws(struct js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int lit(struct js *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) { j->p++; return 1; }
    return 0;
}

/* Reads a string into out (NUL-terminated, truncated to cap-1); out may be NULL. */
static int str(struct js *j, char *out, size_t cap)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end) return -1;
            char e = *j->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    if (j->p >= j->end) return -1;
                    char h = *j->p++;
                    v <<= 4;
                    if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
                    else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
                    else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
                    else return -1;
                }
                c = v < 0x80 ? (char)v : '?'; /* tensor names are ASCII in practice */
                break;
            }
            default: c = e; break; /* \" \\ \/ */
            }
        }
        if (out && n + 1 < cap) out[n++] = c;
    }
    if (j->p >= j->end) return -1;
    j->p++;
    if (out && cap) out[n] = 0;
    return 0;
}

static int num(struct js *j, int64_t *v)
{
    ws(j);
    int neg = 0;
    if (j->p < j->end && *j->p == '-') { neg = 1; j->p++; }
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return -1;
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > (UINT64_MAX - 9) / 10) return -1;
        x = x * 10 + (uint64_t)(*j->p++ - '0');
    }
    /* fractions / exponents are not valid here; skip them if present */
    while (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E' || *j->p == '+' || *j->p == '-' ||
                             (*j->p >= '0' && *j->p <= '9'))) j->p++;
    if (x > (uint64_t)INT64_MAX) return -1;
    *v = neg ? -(int64_t)x : (int64_t)x;
    return 0;
}

static int skip_value(struct js *j)
{
    ws(j);
    if (j->p >= j->end || ++j->depth > 64) return -1;
    int rc = 0;
    char c = *j->p;
    if (c == '"') rc = str(j, NULL, 0);
    else if (c == '{') {
        j->p++;
        if (!lit(j, '}')) {
            do {
                if (str(j, NULL, 0) < 0 || !lit(j, ':') || skip_value(j) < 0) { rc = -1; break; }
            } while (lit(j, ','));
            if (rc == 0 && !lit(j, '}')) rc = -1;
        }
    } else if (c == '[') {
        j->p++;
        if (!lit(j, ']')) {
            do {
                if (skip_value(j) < 0) { rc = -1; break; }
            } while (lit(j, ','));
            if (rc == 0 && !lit(j, ']')) rc = -1;
        }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        int64_t v;
        rc = num(j, &v);
    } else {
        const char *words[] = {"true", "false", "null"};
        rc = -1;
        for (int i = 0; i < 3; i++) {
            size_t n = strlen(words[i]);
            if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, words[i], n)) { j->p += n; rc = 0; break; }
        }
    }
    j->depth--;
    return rc;
}

/* One tensor entry: {"dtype": "...", "shape": [...], "data_offsets": [b, e]} */
static int tensor(struct js *j, struct mc_st_tensor *t)
{
    if (!lit(j, '{')) return -1;
    int have_off = 0;
    if (lit(j, '}')) return -1;
    do {
        char key[32];
        if (str(j, key, sizeof key) < 0 || !lit(j, ':')) return -1;
        if (!strcmp(key, "dtype")) {
            char d[16];
            if (str(j, d, sizeof d) < 0) return -1;
            t->dtype = mc_dtype_from_safetensors(d);
        } else if (!strcmp(key, "shape")) {
            if (!lit(j, '[')) return -1;
            t->ndim = 0;
            if (!lit(j, ']')) {
                do {
                    int64_t v;
                    if (num(j, &v) < 0) return -1;
                    if (t->ndim < 8) t->shape[t->ndim] = v;
                    t->ndim++;
                } while (lit(j, ','));
                if (!lit(j, ']')) return -1;
            }
        } else if (!strcmp(key, "data_offsets")) {
            int64_t b, e;
            if (!lit(j, '[') || num(j, &b) < 0 || !lit(j, ',') || num(j, &e) < 0 || !lit(j, ']')) return -1;
            if (b < 0 || e < b) return -1;
            t->begin = (uint64_t)b;
            t->end = (uint64_t)e;
            have_off = 1;
        } else if (skip_value(j) < 0) {
            return -1;
        }
    } while (lit(j, ','));
    if (!lit(j, '}')) return -1;
    return have_off ? 0 : -1;
}

int mc_st_parse(const char *json, size_t len, mc_st_cb cb, void *arg)
{
    struct js j = {json, json + len, 0};
    int count = 0;
    if (!lit(&j, '{')) return -1;
    if (lit(&j, '}')) return 0;
    do {
        struct mc_st_tensor t;
        memset(&t, 0, sizeof t);
        if (str(&j, t.name, sizeof t.name) < 0 || !lit(&j, ':')) return -1;
        if (!strcmp(t.name, "__metadata__")) {
            if (skip_value(&j) < 0) return -1;
            continue;
        }
        if (tensor(&j, &t) < 0) return -1;
        if (cb) cb(arg, &t);
        count++;
    } while (lit(&j, ','));
    if (!lit(&j, '}')) return -1;
    return count;
}
