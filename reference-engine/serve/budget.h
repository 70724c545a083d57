/* Request memory budget of `moe-ref serve`: every request reserves an upper bound of the
 * memory it can allocate (sv_request_cost, from its Content-Length and the model's
 * context length) before its body is read, and gives it back when it is answered. The sum
 * of reservations never exceeds --max-request-memory, so a burst of large or hostile
 * bodies waits (or gets 503) instead of growing the process (docs/serve.md, "Memory"). */
#ifndef MOE_REF_SERVE_BUDGET_H
#define MOE_REF_SERVE_BUDGET_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Most JSON values (and object keys) a request body may hold, and its deepest nesting:
 * they bound cJSON's allocations and the parser's recursion (stack). */
#define SV_MAX_JSON_DEPTH 64
size_t sv_max_json_values(int ctx);

/* Bytes a request with a body of body_len bytes can allocate while it is parsed,
 * tokenized, queued and answered, for a model of context length ctx (the formula is in
 * docs/serve.md and derived in budget.c). */
size_t sv_request_cost(size_t body_len, int ctx);

/* Counts the JSON values and object keys of s[0..n) (outside strings: 1 + the number of
 * '[', '{', ',' and ':'), an upper bound of the nodes cJSON allocates for it, and the
 * deepest nesting. Never fails: malformed JSON just gives some bound. */
void sv_json_shape(const char *s, size_t n, size_t *values, int *depth);

struct sv_budget {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t limit, used, peak;
    size_t since_trim;           /* bytes reserved since the heap was last trimmed */
    uint64_t waited, refused;
};

void sv_budget_init(struct sv_budget *b, size_t limit);
/* Reserves n bytes, waiting until deadline (CLOCK_MONOTONIC ms) for others to release.
 * Returns 0, -1 on timeout, -2 when n alone exceeds the limit. */
int sv_budget_reserve(struct sv_budget *b, size_t n, long long deadline);
/* Gives n bytes back; when nothing is reserved any more after much was, returns the freed
 * heap to the kernel (malloc_trim) so a burst leaves no resident memory behind. */
void sv_budget_release(struct sv_budget *b, size_t n);
#endif
