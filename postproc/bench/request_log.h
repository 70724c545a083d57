/* The per-request log of `moecap bench` (RUN_DIR/requests.jsonl) and the client-side
 * summary computed from it (RUN_DIR/bench-summary.json). `moecap report` calls
 * mc_request_log_load + mc_request_log_summary to join a run's client view; field
 * meanings are documented in docs/bench.md. */
#ifndef MOECAP_BENCH_REQUEST_LOG_H
#define MOECAP_BENCH_REQUEST_LOG_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define MC_REQUEST_LOG_SCHEMA "moecap.requests/1"
#define MC_BENCH_SUMMARY_SCHEMA "moecap.bench-summary/1"

/* Largest token count believed from a server or a log (usage fields); beyond it the number
 * is not a count but garbage, and is ignored. */
#define MC_MAX_TOKEN_COUNT 2147483647L

struct mc_req_record {
    long id;                  /* index in send order, 0-based */
    int ok;                   /* 1 = completed without error */
    char *error;              /* NULL when ok; else what went wrong */
    int http_status;          /* 0 = no response */
    long prompt_tokens;       /* -1 = unknown (server sent no usage) */
    int prompt_tokens_from_usage;
    long output_tokens;       /* from usage when given, else counted content chunks */
    int output_tokens_from_usage;
    long chunks;              /* content-bearing stream chunks received */
    double start_ms;          /* send time relative to the start of the benchmark */
    int64_t send_unix_ns;     /* CLOCK_REALTIME at send (to join with server traces) */
    double ttft_ms;           /* send -> first content chunk; NAN = none */
    double e2el_ms;           /* send -> last byte (or error) */
    double tpot_ms;           /* (e2el - ttft) / (output_tokens - 1); NAN if < 2 tokens */
    double *itl_ms; size_t n_itl;  /* gaps between consecutive content chunks */
    char *answer;             /* concatenated streamed text */
    char *expected;           /* reference answer or NULL */
    int kind;                 /* enum mc_item_kind of the dataset item */
    int score;                /* 1 correct, 0 wrong, -1 not scored (no reference) */
    char *finish_reason;      /* as sent by the server, or NULL */
    char *warning;            /* server numbers that were not believed (e.g. usage), or NULL */
    int requested_max_tokens;
    int requested_input_len;  /* synthetic datasets: the asked-for input length, else 0 */
};

struct mc_request_log {
    struct mc_req_record *recs;
    size_t n;
};

/* Service-level objectives for goodput, in ms; <= 0 = not set. */
struct mc_slo { double ttft_ms, tpot_ms, e2el_ms; };

/* Parses "ttft:MS,tpot:MS,e2el:MS" (commas or spaces, any subset) into slo (fields it
 * names are overwritten). Returns 0, or -1 with a message in err. */
int mc_slo_parse(const char *spec, struct mc_slo *slo, char *err, size_t errsz);

/* One record as a JSON object (caller deletes) and back. */
cJSON *mc_req_record_to_json(const struct mc_req_record *r);
int mc_req_record_from_json(const cJSON *o, struct mc_req_record *r);
void mc_req_record_free(struct mc_req_record *r);

/* Loads RUN_DIR/requests.jsonl (or the file itself when path is a file). A line that
 * is not valid JSON is an error (the log is written line by line and fsync'ed, so a
 * truncated last line is the only damage tolerated: it is skipped). Returns 0 or -1. */
int mc_request_log_load(const char *path, struct mc_request_log *log, char *err, size_t errsz);
void mc_request_log_free(struct mc_request_log *log);

/* Client-side summary (vLLM `bench serve` definitions, docs/bench.md): counts, duration,
 * throughput, {count,mean,std,min,max,p50,p90,p99} of ttft_ms, tpot_ms, itl_ms, e2el_ms
 * over successful requests, goodput (when slo has any field set), accuracy (when any
 * request has a reference answer). duration_s <= 0 derives it from the log (bench start,
 * start_ms = 0, to the last request's end). slo may be NULL. Caller deletes the result. */
cJSON *mc_request_log_summary(const struct mc_req_record *recs, size_t n,
                              const struct mc_slo *slo, double duration_s);

/* numpy-style linear-interpolation percentile of sorted v[0..n-1] (p in 0..100). */
double mc_bench_percentile(const double *v, size_t n, double p);
#endif
