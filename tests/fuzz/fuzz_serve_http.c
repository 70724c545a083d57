/* Fuzz target: the request side of `moe-ref serve` (reference-engine/serve/): the HTTP head
 * parser on any bytes, then the JSON shape scan that sizes a request's memory reservation
 * on the bytes after the head (the body).
 * Oracles: no crash or sanitizer report; an accepted head ends in a blank line inside the
 * input, names an upper-case method and a path starting with '/', and announces a body of at
 * most SRV_MAX_BODY bytes; the parser answers only the statuses it documents; and the body's
 * parsed cJSON tree never has more nodes + keys, or more depth, than the shape scan
 * counted (the memory bound in budget.c relies on both). */
#include "serve/budget.h"
#include "serve/http.h"
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* nodes and object keys of a cJSON tree, and its depth (containers only) */
static void tree_size(const cJSON *n, int level, size_t *count, int *depth)
{
    for (; n; n = n->next) {
        *count += 1 + (n->string != NULL);
        if (cJSON_IsArray(n) || cJSON_IsObject(n)) {
            if (level + 1 > *depth) *depth = level + 1;
            tree_size(n->child, level + 1, count, depth);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    struct http_head h;
    int st = http_parse_head(buf, size, &h);
    if (memcmp(buf, data, size)) abort();                     /* the parser never writes */
    size_t body_at = 0;
    if (st == 0) {
        if (h.head_len < 4 || h.head_len > size || memcmp(buf + h.head_len - 4, "\r\n\r\n", 4)) abort();
        if (!h.method[0] || h.method[0] < 'A' || h.method[0] > 'Z' || h.path[0] != '/') abort();
        if (!memchr(h.method, 0, sizeof h.method) || !memchr(h.path, 0, sizeof h.path)) abort();
        if (h.content_length > SRV_MAX_BODY) abort();
        body_at = h.head_len;
    } else if (st != HTTP_INCOMPLETE && st != 400 && st != 411 && st != 413 && st != 431) {
        abort();
    }
    /* the body (or, for a rejected head, the whole input) as a request body */
    size_t blen = size - body_at;
    size_t values;
    int depth;
    sv_json_shape(buf + body_at, blen, &values, &depth);
    if (depth <= SV_MAX_JSON_DEPTH) {
        cJSON *j = cJSON_ParseWithLength(buf + body_at, blen);
        size_t count = 0;
        int d = 0;
        if (j) {
            count = 1 + (j->string != NULL);
            if (cJSON_IsArray(j) || cJSON_IsObject(j)) { d = 1; tree_size(j->child, 1, &count, &d); }
        }
        if (count > values || d > depth) abort();
        cJSON_Delete(j);
    }
    if (sv_request_cost(blen, 4096) < 2 * blen) abort();
    free(buf);
    return 0;
}
