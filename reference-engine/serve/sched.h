/* Continuous-batching scheduler of `moe-ref serve`: one thread owns the engine and runs
 * forward steps; requests join the running batch between steps (docs/serve.md). */
#ifndef MOE_REF_SERVE_SCHED_H
#define MOE_REF_SERVE_SCHED_H
#include "engine.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

struct sv_req {
    /* set by the submitter, read-only afterwards */
    int32_t *prompt; int plen;
    int max_tokens;
    int ignore_eos;
    /* written by the scheduler under sv_sched.mu */
    int32_t *out; int nout;          /* sampled tokens (EOS included when it ended the request) */
    int text_tokens;                 /* tokens of out that carry text (EOS excluded) */
    int done;
    const char *finish_reason;       /* "length", "stop", "cancelled", "error" */
    char err[160];
    uint64_t t_submit_ns, t_first_ns, t_done_ns;
    /* private */
    int cancelled, prefilled, refs;
    mr_seq *seq;
    pthread_cond_t cv;
    struct sv_req *next;
};

struct sv_sched {
    mr_engine *eng;
    const struct mr_config *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sv_req *wait_head, *wait_tail;
    struct sv_req **run; int nrun;
    int max_batch, mixed, stop;
    FILE *gt;
    pthread_t th;
    int started;
    /* counters (under mu) */
    uint64_t steps, prefill_steps, decode_steps, mixed_steps, step_errors;
    uint64_t requests, tokens_out, max_seen_batch;
};

/* max_batch: most sequences in one step; mixed: newly admitted prompts share the step
 * with running decodes (else a prefill-only step runs first); gt: ground-truth FILE or
 * NULL. Returns 0 or -1. */
int sv_sched_start(struct sv_sched *s, mr_engine *e, const struct mr_config *cfg, int max_batch,
                   int mixed, FILE *gt);
/* Waits for the queue to empty, stops and joins the thread. */
void sv_sched_stop(struct sv_sched *s);

/* A request with its own copy of the prompt; refs = 1 (the caller). NULL on OOM. */
struct sv_req *sv_req_new(const int32_t *prompt, int plen, int max_tokens, int ignore_eos);
/* Queues r (takes one more reference for the scheduler). */
void sv_submit(struct sv_sched *s, struct sv_req *r);
/* Client gone: the scheduler frees the sequence before its next step. */
void sv_cancel(struct sv_sched *s, struct sv_req *r);
/* Drops the caller's reference (the last one frees r). */
void sv_release(struct sv_sched *s, struct sv_req *r);
/* Waits up to timeout_ms until r has more than `have` text tokens or is done; copies
 * text tokens [have, n) into buf (at most cap) and returns how many; *done = r->done. */
int sv_wait(struct sv_sched *s, struct sv_req *r, int have, int timeout_ms, int32_t *buf, int cap, int *done);
#endif
