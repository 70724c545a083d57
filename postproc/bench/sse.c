/* Server-sent-events line splitter (see sse.h). Lines end in "\n" or "\r\n"; "data:"
 * lines go to the callback, comments (":...") and other fields ("event:", "id:") are
 * counted and ignored, as the SSE specification says. */
#include "sse.h"
#include <stdlib.h>
#include <string.h>

void mc_sse_init(struct mc_sse *s, void (*on_data)(void *, const char *, size_t), void *ctx)
{
    memset(s, 0, sizeof *s);
    s->on_data = on_data;
    s->ctx = ctx;
}

static void line(struct mc_sse *s, char *l, size_t n)
{
    if (n && l[n - 1] == '\r') n--;
    if (n == 0) return;                                      /* event separator */
    if (n >= 5 && !memcmp(l, "data:", 5)) {
        size_t off = 5;
        if (off < n && l[off] == ' ') off++;
        s->data_lines++;
        l[n] = 0;
        if (s->on_data) s->on_data(s->ctx, l + off, n - off);
        return;
    }
    s->other_lines++;
}

void mc_sse_feed(struct mc_sse *s, const char *bytes, size_t n)
{
    while (n) {
        const char *nl = memchr(bytes, '\n', n);
        size_t take = nl ? (size_t)(nl - bytes) : n;
        if (s->overflow) {
            if (nl) { s->overflow = 0; s->len = 0; }
        } else if (s->len + take > MC_SSE_MAX_LINE) {
            s->overflow = 1; s->dropped_lines++; s->len = 0;
            if (nl) s->overflow = 0;
        } else {
            if (s->len + take + 1 > s->cap) {
                size_t nc = s->cap ? s->cap : 4096;
                while (nc < s->len + take + 1) nc *= 2;
                char *nb = realloc(s->buf, nc);
                if (!nb) { s->overflow = 1; s->dropped_lines++; s->len = 0; goto next; }
                s->buf = nb; s->cap = nc;
            }
            memcpy(s->buf + s->len, bytes, take);
            s->len += take;
            if (nl) { line(s, s->buf, s->len); s->len = 0; }
        }
    next:
        if (!nl) break;
        n -= take + 1;
        bytes = nl + 1;
    }
}

void mc_sse_finish(struct mc_sse *s)
{
    if (s->len && !s->overflow) line(s, s->buf, s->len);
    s->len = 0;
    s->overflow = 0;
}

void mc_sse_free(struct mc_sse *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}
