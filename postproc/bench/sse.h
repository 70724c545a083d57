/* Incremental server-sent-events parser for OpenAI-style streams: bytes arrive in any
 * split; each complete "data:" line is handed to a callback. Garbage lines are counted,
 * never fatal; an over-long line is dropped and counted. */
#ifndef MOECAP_BENCH_SSE_H
#define MOECAP_BENCH_SSE_H
#include <stddef.h>

#define MC_SSE_MAX_LINE (1u << 20)

struct mc_sse {
    char *buf; size_t len, cap;
    int overflow;                 /* current line exceeded MC_SSE_MAX_LINE: skip to '\n' */
    long data_lines, other_lines, dropped_lines;
    void (*on_data)(void *ctx, const char *data, size_t len);   /* payload after "data:" */
    void *ctx;
};

void mc_sse_init(struct mc_sse *s, void (*on_data)(void *, const char *, size_t), void *ctx);
void mc_sse_feed(struct mc_sse *s, const char *bytes, size_t n);
/* Flushes a final line without a newline (a stream cut mid-line). */
void mc_sse_finish(struct mc_sse *s);
void mc_sse_free(struct mc_sse *s);
#endif
