/* Request memory budget and the per-request cost bound of `moe-ref serve` (see budget.h).
 *
 * What one request can allocate, for a body of L bytes holding V JSON values and keys
 * (V <= min(L + 1, sv_max_json_values(ctx)), checked before parsing) and a model of
 * context length ctx (serve.c rejects any prompt longer than ctx before tokenizing it):
 *   body buffer                       L + 1, page-rounded when mmapped     <= L + 4097
 *   cJSON tree: V nodes of 64 bytes (80 with malloc's header) and at most V strings
 *     (values and keys), each its raw length + a header, 32 bytes at least <= 112 V + L
 *   chat prompt text, grown by doubling up to ctx + 1 bytes (realloc keeps
 *     the old block while copying)                                          <= 3 (ctx + 1)
 *   token ids (int32, at most ctx)                                           <= 4 (ctx + 1)
 *   the queued request: prompt copy + output tokens (plen + max <= ctx)      <= 4 ctx + 512
 *   non-streamed answer text and its JSON (one printable byte per token,
 *     escaped at most 6x) / one streamed chunk                               <= 8 ctx + 3073
 *   error messages, ids, small strings                                       <= 8192
 * Sum: 2 L + 112 V + 19 ctx + 16 KiB (rounded up). */
#include "budget.h"
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <time.h>

size_t sv_max_json_values(int ctx)
{
    size_t v = (size_t)(ctx > 0 ? ctx : 0) * 2 + 1024;
    return v < 16384 ? 16384 : v;
}

size_t sv_request_cost(size_t body_len, int ctx)
{
    size_t c = ctx > 0 ? (size_t)ctx : 0;
    size_t v = body_len + 1;
    if (v > sv_max_json_values(ctx)) v = sv_max_json_values(ctx);
    return 2 * body_len + 112 * v + 19 * c + 16384;
}

void sv_json_shape(const char *s, size_t n, size_t *values, int *depth)
{
    size_t v = 1;
    int d = 0, dmax = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        switch (c) {
        case '"': in_str = 1; break;
        case '[': case '{': v++; if (++d > dmax) dmax = d; break;
        case ']': case '}': if (d > 0) d--; break;
        case ',': case ':': v++; break;
        default: break;
        }
    }
    *values = v;
    *depth = dmax;
}

void sv_budget_init(struct sv_budget *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    b->limit = limit;
}

int sv_budget_reserve(struct sv_budget *b, size_t n, long long deadline)
{
    if (n > b->limit) {
        pthread_mutex_lock(&b->mu);
        b->refused++;
        pthread_mutex_unlock(&b->mu);
        return -2;
    }
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000L};
    pthread_mutex_lock(&b->mu);
    int waited = 0;
    while (b->used + n > b->limit) {
        waited = 1;
        if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT && b->used + n > b->limit) {
            b->refused++;
            pthread_mutex_unlock(&b->mu);
            return -1;
        }
    }
    b->waited += (uint64_t)waited;
    b->used += n;
    b->since_trim += n;
    if (b->used > b->peak) b->peak = b->used;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

/* Trimming walks the whole heap; worth it only after a burst of this many bytes. */
#define TRIM_AFTER (8u << 20)

void sv_budget_release(struct sv_budget *b, size_t n)
{
    pthread_mutex_lock(&b->mu);
    b->used -= n;
    int trim = b->used == 0 && b->since_trim >= TRIM_AFTER;
    if (trim) b->since_trim = 0;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (trim) malloc_trim(0);
}
