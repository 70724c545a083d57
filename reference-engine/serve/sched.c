/* Continuous batching for `moe-ref serve` (see sched.h). The scheduler thread is the only
 * user of the engine. Each iteration: drop cancelled requests (freeing their KV cache),
 * admit waiting requests up to --max-batch, run one mr_step over
 *   - the newly admitted prompts alone (a prefill step), when any are waiting and the
 *     scheduler is not in mixed mode, else
 *   - every running sequence: one token each (a decode step), plus the whole prompt of
 *     each newly admitted request in mixed mode,
 * then hand each sampled token to its request and wake its connection thread. */
#include "sched.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct sv_req *sv_req_new(const int32_t *prompt, int plen, int max_tokens, int ignore_eos)
{
    struct sv_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->prompt = malloc((size_t)plen * sizeof *r->prompt);
    r->out = malloc((size_t)max_tokens * sizeof *r->out);
    if (!r->prompt || !r->out) { free(r->prompt); free(r->out); free(r); return NULL; }
    memcpy(r->prompt, prompt, (size_t)plen * sizeof *prompt);
    r->plen = plen;
    r->max_tokens = max_tokens;
    r->ignore_eos = ignore_eos;
    r->refs = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    return r;
}

static void req_free(struct sv_req *r)
{
    if (r->seq) mr_seq_free(r->seq);
    pthread_cond_destroy(&r->cv);
    free(r->prompt);
    free(r->out);
    free(r);
}

/* under mu */
static void unref(struct sv_req *r) { if (--r->refs == 0) req_free(r); }

void sv_release(struct sv_sched *s, struct sv_req *r)
{
    pthread_mutex_lock(&s->mu);
    unref(r);
    pthread_mutex_unlock(&s->mu);
}

void sv_submit(struct sv_sched *s, struct sv_req *r)
{
    pthread_mutex_lock(&s->mu);
    r->refs++;
    r->t_submit_ns = now_ns();
    r->next = NULL;
    if (s->wait_tail) s->wait_tail->next = r; else s->wait_head = r;
    s->wait_tail = r;
    s->requests++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sv_cancel(struct sv_sched *s, struct sv_req *r)
{
    pthread_mutex_lock(&s->mu);
    r->cancelled = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int sv_wait(struct sv_sched *s, struct sv_req *r, int have, int timeout_ms, int32_t *buf, int cap, int *done)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&s->mu);
    while (r->text_tokens <= have && !r->done)
        if (pthread_cond_timedwait(&r->cv, &s->mu, &ts) == ETIMEDOUT) break;
    int n = r->text_tokens - have;
    if (n > cap) n = cap;
    if (n > 0) memcpy(buf, r->out + have, (size_t)n * sizeof *buf);
    else n = 0;
    *done = r->done && have + n >= r->text_tokens;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* under mu: request leaves the running set */
static void finish(struct sv_sched *s, int idx, const char *reason)
{
    struct sv_req *r = s->run[idx];
    r->done = 1;
    r->finish_reason = reason;
    r->t_done_ns = now_ns();
    if (r->seq) { mr_seq_free(r->seq); r->seq = NULL; }
    /* keep arrival order (no swap-with-last): every step lists its sequences oldest first */
    memmove(&s->run[idx], &s->run[idx + 1], (size_t)(s->nrun - idx - 1) * sizeof *s->run);
    s->nrun--;
    pthread_cond_broadcast(&r->cv);
    unref(r);
}

static void *sched_main(void *arg)
{
    struct sv_sched *s = arg;
    int B = s->max_batch;
    mr_seq **seqs = calloc((size_t)B, sizeof *seqs);
    const int32_t **toks = calloc((size_t)B, sizeof *toks);
    int *counts = calloc((size_t)B, sizeof *counts);
    int32_t *next = calloc((size_t)B, sizeof *next);
    struct sv_req **sr = calloc((size_t)B, sizeof *sr);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (int i = 0; i < s->nrun;)
            if (s->run[i]->cancelled) finish(s, i, "cancelled"); else i++;
        /* cancelled while still waiting: drop from the queue */
        for (struct sv_req **pp = &s->wait_head; *pp;) {
            struct sv_req *r = *pp;
            if (r->cancelled) {
                *pp = r->next;
                r->done = 1; r->finish_reason = "cancelled";
                pthread_cond_broadcast(&r->cv);
                unref(r);
            } else pp = &r->next;
        }
        s->wait_tail = NULL;
        for (struct sv_req *r = s->wait_head; r; r = r->next) s->wait_tail = r;
        while (s->nrun < B && s->wait_head) {
            struct sv_req *r = s->wait_head;
            s->wait_head = r->next;
            if (!s->wait_head) s->wait_tail = NULL;
            r->seq = mr_seq_create(s->eng, r->plen + r->max_tokens);
            s->run[s->nrun++] = r;
            if (!r->seq) {
                snprintf(r->err, sizeof r->err, "cannot allocate a KV cache for %d tokens", r->plen + r->max_tokens);
                finish(s, s->nrun - 1, "error");
            }
        }
        if (s->nrun == 0) {
            if (s->stop) break;
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        int any_new = 0;
        for (int i = 0; i < s->nrun; i++) any_new |= !s->run[i]->prefilled;
        int n = 0;
        for (int i = 0; i < s->nrun; i++) {
            struct sv_req *r = s->run[i];
            if (any_new && !s->mixed && r->prefilled) continue;
            sr[n] = r;
            seqs[n] = r->seq;
            if (!r->prefilled) { toks[n] = r->prompt; counts[n] = r->plen; }
            else { toks[n] = &r->out[r->nout - 1]; counts[n] = 1; }
            n++;
        }
        if ((uint64_t)n > s->max_seen_batch) s->max_seen_batch = (uint64_t)n;
        pthread_mutex_unlock(&s->mu);
        int rc = mr_step(s->eng, seqs, toks, counts, n, next, s->gt);
        struct mr_step_info info;
        if (rc == 0) mr_engine_last_step(s->eng, &info);
        pthread_mutex_lock(&s->mu);
        if (rc) {
            s->step_errors++;
            for (int k = 0; k < n; k++) {
                snprintf(sr[k]->err, sizeof sr[k]->err, "engine step failed: %s", mr_engine_error(s->eng));
                for (int i = 0; i < s->nrun; i++) if (s->run[i] == sr[k]) { finish(s, i, "error"); break; }
            }
            continue;
        }
        s->steps++;
        if (!strcmp(info.kind, "prefill")) s->prefill_steps++;
        else if (!strcmp(info.kind, "decode")) s->decode_steps++;
        else s->mixed_steps++;
        uint64_t t = now_ns();
        for (int k = 0; k < n; k++) {
            struct sv_req *r = sr[k];
            r->prefilled = 1;
            if (r->nout == 0) r->t_first_ns = t;
            r->out[r->nout++] = next[k];
            s->tokens_out++;
            int eos = !r->ignore_eos && s->cfg->eos_token_id >= 0 && next[k] == s->cfg->eos_token_id;
            if (!eos) r->text_tokens = r->nout;
            const char *why = eos ? "stop" : r->nout >= r->max_tokens ? "length" : NULL;
            if (why || r->cancelled) {
                for (int i = 0; i < s->nrun; i++)
                    if (s->run[i] == r) { finish(s, i, why ? why : "cancelled"); break; }
            } else {
                pthread_cond_broadcast(&r->cv);
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(seqs); free(toks); free(counts); free(next); free(sr);
    return NULL;
}

int sv_sched_start(struct sv_sched *s, mr_engine *e, const struct mr_config *cfg, int max_batch,
                   int mixed, FILE *gt)
{
    memset(s, 0, sizeof *s);
    s->eng = e;
    s->cfg = cfg;
    s->max_batch = max_batch;
    s->mixed = mixed;
    s->gt = gt;
    s->run = calloc((size_t)max_batch, sizeof *s->run);
    if (!s->run) return -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->th, NULL, sched_main, s)) { free(s->run); return -1; }
    s->started = 1;
    return 0;
}

void sv_sched_stop(struct sv_sched *s)
{
    if (!s->started) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    s->started = 0;
    free(s->run);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}
