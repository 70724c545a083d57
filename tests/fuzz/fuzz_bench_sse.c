/* Fuzz target: the server-sent-events parser of `moecap bench` (postproc/bench/sse.c) and the
 * UTF-8 repair its text goes through before requests.jsonl (postproc/bench/utf8.c).
 * The input is fed three ways: whole, one byte at a time, and in pieces whose sizes come
 * from the input's first bytes. Oracles: no crash or sanitizer report; all three deliver
 * the same data payloads in the same order and the same line counts (a stream's meaning
 * must not depend on how TCP cut it); every payload, once repaired, is valid UTF-8. */
#include "bench/sse.h"
#include "trace/utf8.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct seen { uint64_t hash; long n; };

static void on_data(void *ctx, const char *d, size_t n)
{
    struct seen *s = ctx;
    uint64_t h = s->hash ^ (n * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)d[i]) * 0x100000001B3ull;
    s->hash = h * 31 + 7;
    s->n++;
    if (d[n] != 0) abort();                                   /* payloads are NUL-terminated */
    char *fixed = mc_utf8_sanitize(d, n);
    if (fixed && !mc_utf8_valid(fixed, strlen(fixed))) abort();
    free(fixed);
}

static void run(const uint8_t *data, size_t size, int how, struct seen *out, long counts[3])
{
    struct mc_sse s;
    memset(out, 0, sizeof *out);
    mc_sse_init(&s, on_data, out);
    size_t i = 0, k = 0;
    while (i < size) {
        size_t n = how == 0 ? size : how == 1 ? (size_t)1 : (size_t)(1 + data[k++ % size] % 17);
        if (n > size - i) n = size - i;
        mc_sse_feed(&s, (const char *)data + i, n);
        i += n;
    }
    mc_sse_finish(&s);
    counts[0] = s.data_lines; counts[1] = s.other_lines; counts[2] = s.dropped_lines;
    mc_sse_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen a, b, c;
    long ca[3], cb[3], cc[3];
    run(data, size, 0, &a, ca);
    run(data, size, 1, &b, cb);
    run(data, size, 2, &c, cc);
    if (a.n != b.n || a.n != c.n || a.hash != b.hash || a.hash != c.hash) abort();
    if (memcmp(ca, cb, sizeof ca) || memcmp(ca, cc, sizeof ca)) abort();
    if (ca[0] != a.n) abort();
    return 0;
}
