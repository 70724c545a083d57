/* `moe-ref serve`: an OpenAI-compatible HTTP server (/v1/completions,
 * /v1/chat/completions with SSE streaming, /v1/models, /health) over the CPU engine with
 * continuous batching (sched.c). One detached thread per connection, bounded by
 * --max-connections (more are answered 503 by the accept loop itself); every request
 * reserves its worst-case memory from a budget before its body is read (budget.c); every
 * socket read and write has a timeout; SIGTERM/SIGINT stop accepting, let in-flight
 * requests finish, then exit 0. See docs/serve.md. */
#include "budget.h"
#include "engine.h"
#include "offload.h"
#include "http.h"
#include "sched.h"
#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int mr_cmd_serve(int argc, char **argv);

struct server {
    const char *model_dir, *host, *gt_path, *port_file;
    const char *budget_arg, *offload_arg;   /* --expert-budget, --offload (offload.h) */
    char model_name[256];
    int port, max_batch, threads, max_conn, read_timeout_s, write_timeout_s, drain_timeout_s, mixed, quiet;
    int max_request_mib;
    int expert_parallel;             /* --expert-parallel N worker processes, 0 = none */
    struct sv_budget budget;
    mr_model *model;
    mr_engine *eng;
    const struct mr_config *cfg;
    struct sv_sched sched;
    FILE *gt;
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int active;                      /* connection threads alive */
    atomic_int draining;
    atomic_ullong next_id;
    long long created;
};

static int sig_pipe[2] = {-1, -1};
static void on_term(int sig)
{
    char c = (char)sig;
    ssize_t k = write(sig_pipe[1], &c, 1);
    (void)k;
}

static void serve_usage(FILE *f)
{
    fprintf(f,
        "usage: moe-ref serve --model DIR [--port P] [options]\n"
        "  --port P              TCP port (default 8000; 0 = any free port, printed and written to --port-file)\n"
        "  --host ADDR           IPv4 address to listen on (default 127.0.0.1, loopback only)\n"
        "  --max-batch B         most sequences in one engine step (default 16)\n"
        "  --mixed               new prompts join the running decode step (default: own prefill step)\n"
        "  --ground-truth FILE   write the engine's per-step ground truth (docs/ground-truth.md)\n"
        "  --threads N           engine threads (default 1)\n"
        "  --served-model-name S model id in the API (default: the model directory's name)\n"
        "  --max-connections N   concurrent connections, 1..10000 (default 256; more get 503)\n"
        "  --max-request-memory M  MiB that requests being parsed and served may hold together\n"
        "                        (default 64; a request reserves its worst case before its body\n"
        "                        is read, others wait up to --read-timeout, then get 503)\n"
        "  --read-timeout S      seconds to receive a whole request (default 10)\n"
        "  --write-timeout S     seconds a blocked write may wait for the client (default 30)\n"
        "  --drain-timeout S     on SIGTERM, seconds to wait for in-flight requests (default 120)\n"
        "  --port-file FILE      write the listening port there once ready\n"
        "  --quiet               no per-request log lines on stderr\n"
        "  --expert-budget B     routed experts in slots of at most B bytes (or P%% of all), read\n"
        "                        from the weights file (docs/reference-engine.md)\n"
        "  --offload ondemand|swapmoe   offloading policy with --expert-budget (default ondemand)\n"
        "  --expert-parallel N   N worker processes compute the routed experts (expert x in\n"
        "                        worker x %% N), activations exchanged through shared memory\n");
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *e;
    long x = v ? strtol(v, &e, 10) : 0;
    if (!v || *e || e == v || x < lo || x > hi) {
        fprintf(stderr, "moe-ref serve: %s expects an integer in %d..%d\n", opt, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_args(int argc, char **argv, struct server *S)
{
    S->host = "127.0.0.1";
    S->port = 8000;
    S->max_batch = 16;
    S->threads = 1;
    S->max_conn = 256;
    S->read_timeout_s = 10;
    S->write_timeout_s = 30;
    S->drain_timeout_s = 120;
    S->max_request_mib = 64;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { serve_usage(stdout); exit(0); }
        else if (!strcmp(a, "--model")) S->model_dir = v;
        else if (!strcmp(a, "--host")) S->host = v;
        else if (!strcmp(a, "--ground-truth")) S->gt_path = v;
        else if (!strcmp(a, "--port-file")) S->port_file = v;
        else if (!strcmp(a, "--expert-budget")) S->budget_arg = v;
        else if (!strcmp(a, "--offload")) S->offload_arg = v;
        else if (!strcmp(a, "--served-model-name")) name = v;
        else if (!strcmp(a, "--port")) { if (parse_int(a, v, 0, 65535, &S->port)) return -1; }
        else if (!strcmp(a, "--max-batch")) { if (parse_int(a, v, 1, 4096, &S->max_batch)) return -1; }
        else if (!strcmp(a, "--threads")) { if (parse_int(a, v, 1, 1024, &S->threads)) return -1; }
        else if (!strcmp(a, "--expert-parallel")) { if (parse_int(a, v, 1, 64, &S->expert_parallel)) return -1; }
        else if (!strcmp(a, "--max-connections")) { if (parse_int(a, v, 1, 10000, &S->max_conn)) return -1; }
        else if (!strcmp(a, "--max-request-memory")) { if (parse_int(a, v, 4, 1 << 20, &S->max_request_mib)) return -1; }
        else if (!strcmp(a, "--read-timeout")) { if (parse_int(a, v, 1, 3600, &S->read_timeout_s)) return -1; }
        else if (!strcmp(a, "--write-timeout")) { if (parse_int(a, v, 1, 3600, &S->write_timeout_s)) return -1; }
        else if (!strcmp(a, "--drain-timeout")) { if (parse_int(a, v, 0, 86400, &S->drain_timeout_s)) return -1; }
        else if (!strcmp(a, "--mixed")) { S->mixed = 1; takes = 0; }
        else if (!strcmp(a, "--quiet")) { S->quiet = 1; takes = 0; }
        else { fprintf(stderr, "moe-ref serve: unknown option '%s'\n", a); serve_usage(stderr); return -1; }
        if (takes) {
            if (!v) { fprintf(stderr, "moe-ref serve: %s needs a value\n", a); return -1; }
            i++;
        }
    }
    if (!S->model_dir) { fprintf(stderr, "moe-ref serve: --model DIR is required\n"); serve_usage(stderr); return -1; }
    if (name) snprintf(S->model_name, sizeof S->model_name, "%s", name);
    else {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", S->model_dir);
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
        const char *b = strrchr(tmp, '/');
        snprintf(S->model_name, sizeof S->model_name, "%s", b ? b + 1 : tmp);
    }
    return 0;
}

/* ---------------- request handling ---------------- */

struct conn { int fd; struct server *S; };
/* A request read whole: its head and body. */
struct request { struct http_head h; char *body; size_t body_len; };

static void log_line(struct server *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(struct server *S, const char *fmt, ...)
{
    if (S->quiet) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "moe-ref serve: %s\n", buf);
}

static int send_json(int fd, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    int rc = s ? http_respond(fd, status, "application/json", s, strlen(s)) : -1;
    free(s);
    return rc;
}

static void handle_models(struct server *S, int fd)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(o, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", S->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)S->created);
    cJSON_AddStringToObject(m, "owned_by", "moe-ref");
    cJSON_AddNumberToObject(m, "max_model_len", S->cfg->max_position);
    cJSON_AddItemToArray(d, m);
    send_json(fd, 200, o);
    cJSON_Delete(o);
}

/* Appends s to a growing text buffer; -1 on overflow past cap. */
static int cat(char **b, size_t *len, size_t *capb, const char *s, size_t cap)
{
    size_t n = strlen(s);
    if (*len + n + 1 > cap) return -1;
    if (*len + n + 1 > *capb) {
        size_t nc = *capb ? *capb : 1024;
        while (nc < *len + n + 1) nc *= 2;
        char *nb = realloc(*b, nc);
        if (!nb) return -1;
        *b = nb; *capb = nc;
    }
    memcpy(*b + *len, s, n + 1);
    *len += n;
    return 0;
}

/* Chat template (docs/serve.md): "<|ROLE|>\nCONTENT\n" per message, then "<|assistant|>\n". */
/* The prompt is at most `limit` bytes (one token per byte: the context length + 1). */
static char *chat_prompt(const cJSON *msgs, size_t limit, char *err, size_t errsz)
{
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        snprintf(err, errsz, "\"messages\" must be a non-empty array");
        return NULL;
    }
    char *b = NULL;
    size_t len = 0, cap = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role)) { snprintf(err, errsz, "each message needs a string \"role\""); free(b); return NULL; }
        char head[128];
        snprintf(head, sizeof head, "<|%.64s|>\n", role->valuestring);
        if (cat(&b, &len, &cap, head, limit)) goto big;
        if (cJSON_IsString(content)) {
            if (cat(&b, &len, &cap, content->valuestring, limit)) goto big;
        } else if (cJSON_IsArray(content)) {          /* [{"type":"text","text":...}] */
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(t)) { snprintf(err, errsz, "only text content parts are supported"); free(b); return NULL; }
                if (cat(&b, &len, &cap, t->valuestring, limit)) goto big;
            }
        } else if (!cJSON_IsNull(content)) {
            snprintf(err, errsz, "message \"content\" must be a string or an array of text parts");
            free(b);
            return NULL;
        }
        if (cat(&b, &len, &cap, "\n", limit)) goto big;
    }
    if (cat(&b, &len, &cap, "<|assistant|>\n", limit)) goto big;
    return b;
big:
    snprintf(err, errsz, "the chat prompt is longer than the model's context length (%zu tokens)", limit - 1);
    free(b);
    return NULL;
}

static int get_bool(const cJSON *o, const char *k, int dflt, int *out, char *err, size_t errsz)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) { *out = dflt; return 0; }
    if (!cJSON_IsBool(v)) { snprintf(err, errsz, "\"%s\" must be a boolean", k); return -1; }
    *out = cJSON_IsTrue(v);
    return 0;
}

static void sse_send(int fd, cJSON *o, int *alive)
{
    if (!*alive) return;
    char *s = cJSON_PrintUnformatted(o);
    if (!s) { *alive = 0; return; }
    size_t n = strlen(s);
    char *buf = malloc(n + 10);
    if (!buf) { free(s); *alive = 0; return; }
    memcpy(buf, "data: ", 6);
    memcpy(buf + 6, s, n);
    memcpy(buf + 6 + n, "\n\n", 2);
    if (http_write_all(fd, buf, n + 8)) *alive = 0;
    free(buf);
    free(s);
}

/* The OpenAI response envelope shared by streamed chunks and whole answers: id, object,
 * created, model and choices[0] = {"index": 0}, which is returned for the caller to fill. */
static cJSON *response_obj(struct server *S, const char *id, const char *object, cJSON **choice)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    cJSON_AddStringToObject(o, "model", S->model_name);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
    *choice = c;
    return o;
}

static cJSON *chunk_obj(struct server *S, const char *id, int chat, const char *text, const char *finish,
                        int first, int usage_null)
{
    cJSON *c;
    cJSON *o = response_obj(S, id, chat ? "chat.completion.chunk" : "text_completion", &c);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddStringToObject(d, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text);
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    if (usage_null) cJSON_AddNullToObject(o, "usage");
    return o;
}

static void add_usage(cJSON *o, int prompt, int completion)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
}

/* The client while its request is generated: a hang-up is checked every ~100 ms even while
 * tokens flow (writes into a closed socket can succeed for a while). */
struct client {
    int fd;
    int eof;              /* it shut down its sending side */
    int head_sent;        /* non-streamed: the 200 head went out early (see client_gone) */
    long long last_check;
};

/* Answer head sent early to a non-streamed client that shut down its sending side: the
 * body then ends when the connection closes (no Content-Length). */
static const char EARLY_HEAD[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";

/* 1 when the client is gone. An end of its input alone does not mean that: a client may
 * half-close (shutdown(SHUT_WR)) after its request and still read the answer, and TCP
 * shows a half-close and a full close alike until something is written. A stream writes
 * anyway; a non-streamed request writes its answer's head at once, so a closed client's
 * kernel answers with a reset, seen at the next check, while a half-closed one reads on. */
static int client_gone(struct client *c, int streamed)
{
    long long now = http_now_ms();
    if (now - c->last_check < 100) return 0;
    c->last_check = now;
    int st = http_peer_state(c->fd);
    if (st == PEER_GONE) return 1;
    if (st == PEER_EOF && !c->eof) {
        c->eof = 1;
        if (!streamed && !c->head_sent) {
            if (http_write_all(c->fd, EARLY_HEAD, sizeof EARLY_HEAD - 1)) return 1;
            c->head_sent = 1;
        }
    }
    return 0;
}

/* A whole JSON answer, or only its body when the head already went out. */
static int client_answer(struct client *c, int status, const char *json)
{
    if (c->head_sent) return http_write_all(c->fd, json, strlen(json));
    return http_respond(c->fd, status, "application/json", json, strlen(json));
}

static int client_error(struct client *c, int status, const char *msg)
{
    char *s = http_error_json(status, NULL, msg);
    int rc = s ? client_answer(c, status, s) : -1;
    free(s);
    return rc;
}

static void handle_completion(struct server *S, int fd, struct request *rq, int chat)
{
    char err[320] = "";
    cJSON *b = NULL;
    char *text = NULL;                 /* chat prompt (allocated) */
    const char *ptext = NULL;
    int32_t *ids = NULL;
    int plen = 0;
    struct sv_req *r = NULL;
    int ctx = S->cfg->max_position, vocab = S->cfg->vocab;
    /* the request's memory reservation assumed at most this many JSON values and this depth */
    size_t nvalues;
    int depth;
    sv_json_shape(rq->body, rq->body_len, &nvalues, &depth);
    if (depth > SV_MAX_JSON_DEPTH) {
        snprintf(err, sizeof err, "request JSON is nested deeper than %d levels", SV_MAX_JSON_DEPTH);
        http_respond_error(fd, 400, err);
        goto out;
    }
    if (nvalues > sv_max_json_values(ctx)) {
        snprintf(err, sizeof err, "request JSON has more than %zu values", sv_max_json_values(ctx));
        http_respond_error(fd, 400, err);
        goto out;
    }
    b = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(b)) { http_respond_error(fd, 400, "request body is not a JSON object"); goto out; }
    /* as vLLM: a model other than the served one is 404; no model means the served one */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(b, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) { http_respond_error(fd, 400, "\"model\" must be a string"); goto out; }
        if (strcmp(model->valuestring, S->model_name)) {
            snprintf(err, sizeof err, "The model `%.200s` does not exist.", model->valuestring);
            http_respond_error_typed(fd, 404, "NotFoundError", err);
            goto out;
        }
    }
    int stream, include_usage = 0, ignore_eos;
    if (get_bool(b, "stream", 0, &stream, err, sizeof err) || get_bool(b, "ignore_eos", 0, &ignore_eos, err, sizeof err)) {
        http_respond_error(fd, 400, err);
        goto out;
    }
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(b, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so) || get_bool(so, "include_usage", 0, &include_usage, err, sizeof err)) {
            http_respond_error(fd, 400, err[0] ? err : "\"stream_options\" must be an object");
            goto out;
        }
    }
    const cJSON *nn = cJSON_GetObjectItemCaseSensitive(b, "n");
    if (nn && !cJSON_IsNull(nn) && !(cJSON_IsNumber(nn) && nn->valuedouble == 1)) {
        http_respond_error(fd, 400, "only \"n\": 1 is supported");
        goto out;
    }
    if (chat) {
        text = chat_prompt(cJSON_GetObjectItemCaseSensitive(b, "messages"), (size_t)ctx + 1, err, sizeof err);
        if (!text) { http_respond_error(fd, 400, err); goto out; }
        ptext = text;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(b, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
            p = cJSON_GetArrayItem(p, 0);
        if (cJSON_IsString(p)) {
            ptext = p->valuestring;
        } else if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0) {   /* token ids */
            int n = cJSON_GetArraySize(p);
            if (n > ctx) {
                snprintf(err, sizeof err, "prompt (%d tokens) exceeds the model's context length (%d)", n, ctx);
                http_respond_error(fd, 400, err);
                goto out;
            }
            ids = malloc((size_t)n * sizeof *ids);
            const cJSON *t;
            cJSON_ArrayForEach(t, p) {
                if (!ids || !cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= vocab ||
                    t->valuedouble != (double)(int)t->valuedouble) {
                    snprintf(err, sizeof err, "\"prompt\" token ids must be integers in 0..%d", vocab - 1);
                    http_respond_error(fd, 400, err);
                    goto out;
                }
                ids[plen++] = (int32_t)t->valuedouble;
            }
        } else {
            http_respond_error(fd, 400, "\"prompt\" is required: a string, [string] or [token ids]");
            goto out;
        }
    }
    if (ptext) {
        size_t tl = strlen(ptext);           /* one token per byte (docs/serve.md) */
        if (tl > (size_t)ctx) {
            snprintf(err, sizeof err, "prompt (%zu tokens) exceeds the model's context length (%d)", tl, ctx);
            http_respond_error(fd, 400, err);
            goto out;
        }
        ids = malloc((tl + 1) * sizeof *ids);
        if (!ids) { http_respond_error(fd, 500, "out of memory"); goto out; }
        plen = mr_tok_encode(ptext, tl, vocab, ids, (int)tl);
        if (plen < 0) { http_respond_error(fd, 400, "prompt cannot be tokenized"); goto out; }
    }
    if (plen == 0) { http_respond_error(fd, 400, "the prompt is empty"); goto out; }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(b, chat ? "max_completion_tokens" : "max_tokens");
    if (chat && (!mt || cJSON_IsNull(mt))) mt = cJSON_GetObjectItemCaseSensitive(b, "max_tokens");
    int max_tokens;
    if (!mt || cJSON_IsNull(mt)) {
        max_tokens = chat ? (ctx - plen < 256 ? ctx - plen : 256) : 16;
        if (max_tokens < 1) max_tokens = 1;
    } else if (!cJSON_IsNumber(mt) || mt->valuedouble < 1 || mt->valuedouble > 1e9 ||
               mt->valuedouble != (double)(long)mt->valuedouble) {
        http_respond_error(fd, 400, "\"max_tokens\" must be a positive integer");
        goto out;
    } else {
        max_tokens = (int)mt->valuedouble;
    }
    if ((long)plen + max_tokens > ctx) {
        snprintf(err, sizeof err, "prompt (%d tokens) + max_tokens (%d) exceeds the model's context length (%d)",
                 plen, max_tokens, ctx);
        http_respond_error(fd, 400, err);
        goto out;
    }
    if (atomic_load(&S->draining)) { http_respond_error(fd, 503, "server is shutting down"); goto out; }
    r = sv_req_new(ids, plen, max_tokens, ignore_eos);
    if (!r) { http_respond_error(fd, 500, "out of memory"); goto out; }
    char id[64];
    snprintf(id, sizeof id, "%s-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)atomic_fetch_add(&S->next_id, 1));
    sv_submit(&S->sched, r);

    int alive = 1, have = 0, done = 0;
    struct client cl = {.fd = fd, .last_check = http_now_ms()};
    int32_t tok[256];
    char piece[257];
    if (stream) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                        "Connection: close\r\n\r\n";
        if (http_write_all(fd, h, strlen(h))) alive = 0;
        int first = 1;
        if (chat && alive) {                         /* role announcement, as OpenAI does */
            cJSON *c = chunk_obj(S, id, 1, "", NULL, 1, include_usage);
            sse_send(fd, c, &alive);
            cJSON_Delete(c);
            first = 0;
        }
        while (alive && !done) {
            int k = sv_wait(&S->sched, r, have, 200, tok, 256, &done);
            if (k > 0) {
                /* one chunk per token, as vLLM streams */
                for (int i = 0; i < k && alive; i++) {
                    mr_tok_decode(&tok[i], 1, piece, sizeof piece);
                    cJSON *c = chunk_obj(S, id, chat, piece, NULL, first && chat, include_usage);
                    sse_send(fd, c, &alive);
                    cJSON_Delete(c);
                    first = 0;
                }
                have += k;
            }
            if (!done && alive && client_gone(&cl, 1)) alive = 0;
        }
        if (alive) {
            pthread_mutex_lock(&S->sched.mu);
            const char *fr = r->finish_reason;
            int nout = r->nout;
            char e2[160];
            snprintf(e2, sizeof e2, "%s", r->err);
            pthread_mutex_unlock(&S->sched.mu);
            if (!strcmp(fr, "error")) {
                cJSON *o = cJSON_CreateObject();
                cJSON *e = cJSON_AddObjectToObject(o, "error");
                cJSON_AddStringToObject(e, "message", e2);
                cJSON_AddStringToObject(e, "type", "server_error");
                cJSON_AddNumberToObject(e, "code", 500);
                sse_send(fd, o, &alive);
                cJSON_Delete(o);
            } else {
                cJSON *c = chunk_obj(S, id, chat, "", fr, 0, include_usage);
                sse_send(fd, c, &alive);
                cJSON_Delete(c);
                if (include_usage) {
                    cJSON *u = cJSON_CreateObject();
                    cJSON_AddStringToObject(u, "id", id);
                    cJSON_AddStringToObject(u, "object", chat ? "chat.completion.chunk" : "text_completion");
                    cJSON_AddNumberToObject(u, "created", (double)time(NULL));
                    cJSON_AddStringToObject(u, "model", S->model_name);
                    cJSON_AddArrayToObject(u, "choices");
                    add_usage(u, plen, nout);
                    sse_send(fd, u, &alive);
                    cJSON_Delete(u);
                }
            }
            if (alive && http_write_all(fd, "data: [DONE]\n\n", 14)) alive = 0;
        }
    } else {
        char *out = malloc((size_t)max_tokens + 1);
        size_t olen = 0;
        while (!done && alive) {
            int k = sv_wait(&S->sched, r, have, 200, tok, 256, &done);
            if (k > 0 && out) {
                olen += (size_t)mr_tok_decode(tok, k, out + olen, (size_t)max_tokens + 1 - olen);
                have += k;
            }
            if (!done && client_gone(&cl, 0)) alive = 0;
        }
        if (alive) {
            pthread_mutex_lock(&S->sched.mu);
            const char *fr = r->finish_reason;
            int nout = r->nout;
            char e2[160];
            snprintf(e2, sizeof e2, "%s", r->err);
            pthread_mutex_unlock(&S->sched.mu);
            if (!out) client_error(&cl, 500, "out of memory");
            else if (!strcmp(fr, "error")) client_error(&cl, 500, e2);
            else {
                out[olen] = 0;
                cJSON *c;
                cJSON *o = response_obj(S, id, chat ? "chat.completion" : "text_completion", &c);
                if (chat) {
                    cJSON *m = cJSON_AddObjectToObject(c, "message");
                    cJSON_AddStringToObject(m, "role", "assistant");
                    cJSON_AddStringToObject(m, "content", out);
                } else {
                    cJSON_AddStringToObject(c, "text", out);
                    cJSON_AddNullToObject(c, "logprobs");
                }
                cJSON_AddStringToObject(c, "finish_reason", fr);
                add_usage(o, plen, nout);
                char *js = cJSON_PrintUnformatted(o);
                if (!js || client_answer(&cl, 200, js)) alive = 0;
                free(js);
                cJSON_Delete(o);
            }
        }
        free(out);
    }
    if (!alive) sv_cancel(&S->sched, r);
    pthread_mutex_lock(&S->sched.mu);
    int nout = r->nout;
    const char *fr = r->finish_reason ? r->finish_reason : "cancelled";
    pthread_mutex_unlock(&S->sched.mu);
    log_line(S, "%s %s prompt=%d completion=%d finish=%s%s%s", rq->h.path, id, plen, nout, fr,
             alive ? "" : " (client gone)", cl.eof && alive ? " (client half-closed)" : "");
out:
    if (r) sv_release(&S->sched, r);
    free(text);
    free(ids);
    cJSON_Delete(b);
}

static void route(struct server *S, int fd, struct request *rq)
{
    const char *p = rq->h.path;
    int get = !strcmp(rq->h.method, "GET"), post = !strcmp(rq->h.method, "POST");
    if (!strcmp(p, "/health")) {
        if (get) http_respond(fd, 200, "application/json", "{\"status\":\"ok\"}", 15);
        else http_respond_error(fd, 405, "use GET /health");
    } else if (!strcmp(p, "/v1/models")) {
        if (get) handle_models(S, fd);
        else http_respond_error(fd, 405, "use GET /v1/models");
    } else if (!strcmp(p, "/v1/completions") || !strcmp(p, "/v1/chat/completions")) {
        if (post) handle_completion(S, fd, rq, p[4] == 'c' && p[5] == 'h');
        else http_respond_error(fd, 405, "use POST");
    } else {
        char m[1200];
        snprintf(m, sizeof m, "no such endpoint: %.1000s (try /v1/completions, /v1/chat/completions, /v1/models, /health)", p);
        http_respond_error(fd, 404, m);
    }
}

/* Lingering close: at most this long, this many bytes, after the answer. */
#define LINGER_MS 1000
#define LINGER_BYTES ((size_t)SRV_MAX_BODY + SRV_MAX_HEADER)

/* Reads one request (head, then the body once its memory is reserved), answers it, closes. */
static void serve_connection(struct server *S, int fd, char *hbuf)
{
    long long deadline = http_now_ms() + (long long)S->read_timeout_s * 1000;
    struct request rq = {0};
    size_t got;
    int st = http_read_head(fd, hbuf, &got, &rq.h, deadline);
    char m[200];
    if (st < 0) return;                                     /* gone, or silent until the deadline */
    if (st > 0) {
        snprintf(m, sizeof m, "%s (limits: headers %d bytes, body %d bytes, %d s to send a request)",
                 http_reason(st), SRV_MAX_HEADER, SRV_MAX_BODY, S->read_timeout_s);
        http_respond_error(fd, st, m);
        return;
    }
    size_t want = rq.h.content_length > 0 ? (size_t)rq.h.content_length : 0;
    size_t cost = sv_request_cost(want, S->cfg->max_position);
    int br = sv_budget_reserve(&S->budget, cost, deadline);
    if (br) {
        snprintf(m, sizeof m, br == -2 ? "this request may need %zu bytes, more than --max-request-memory allows"
                                       : "server busy: request memory in use (needed %zu bytes); retry later",
                 cost);
        http_respond_error(fd, br == -2 ? 413 : 503, m);
        return;
    }
    rq.body = malloc(want + 1);
    if (!rq.body) st = 500;
    else st = http_read_body(fd, &rq.h, hbuf + rq.h.head_len, got - rq.h.head_len, rq.body, want, deadline);
    rq.body_len = want;
    if (st == 0) route(S, fd, &rq);
    else if (st > 0) http_respond_error(fd, st, st == 408 ? "request body not received in time" : "out of memory");
    free(rq.body);
    sv_budget_release(&S->budget, cost);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct server *S = c->S;
    int fd = c->fd;
    free(c);
    struct timeval tv = {.tv_sec = S->write_timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char *hbuf = malloc(SRV_MAX_HEADER);
    if (hbuf) serve_connection(S, fd, hbuf);
    else http_respond_error(fd, 503, "out of memory");
    free(hbuf);
    http_close_gracefully(fd, LINGER_MS, LINGER_BYTES);
    pthread_mutex_lock(&S->mu);
    if (--S->active == 0) pthread_cond_broadcast(&S->idle);
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

/* Connections refused while --max-connections are open: answered 503 by the accept loop
 * at once, then read and discarded until the client closes (a close with unread input
 * would reset the connection and could destroy the answer). At most REJECT_MAX linger;
 * beyond that the oldest is closed. */
#define REJECT_MAX 1024
struct rejected { int fd; long long until; size_t drained; };

static void reject_close(struct rejected *r, int *n, int i)
{
    close(r[i].fd);
    r[i] = r[--*n];
}

static void reject_new(struct rejected *r, int *n, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    char *s = http_error_json(503, NULL, "too many connections; retry later");
    char h[400];
    int hl = snprintf(h, sizeof h, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
                      s ? strlen(s) : 0, s ? s : "");
    free(s);
    /* a fresh socket's send buffer takes these few hundred bytes whole */
    if (send(fd, h, (size_t)hl, MSG_NOSIGNAL | MSG_DONTWAIT) != hl) { close(fd); return; }
    shutdown(fd, SHUT_WR);
    if (*n == REJECT_MAX) {                      /* the oldest has lingered longest */
        long long o = r[0].until;
        int oi = 0;
        for (int i = 1; i < *n; i++) if (r[i].until < o) { o = r[i].until; oi = i; }
        reject_close(r, n, oi);
    }
    r[(*n)++] = (struct rejected){.fd = fd, .until = http_now_ms() + LINGER_MS};
}

static void reject_drain(struct rejected *r, int *n, const struct pollfd *p)
{
    long long now = http_now_ms();
    char junk[16384];
    for (int i = *n - 1; i >= 0; i--) {
        int done = now >= r[i].until || (p[i].revents & (POLLERR | POLLHUP | POLLNVAL));
        if (!done && (p[i].revents & POLLIN)) {
            ssize_t k = recv(r[i].fd, junk, sizeof junk, MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) done = 1;
            else if (k > 0 && (r[i].drained += (size_t)k) >= LINGER_BYTES) done = 1;
        }
        if (done) reject_close(r, n, i);
    }
}

static int listen_on(struct server *S)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("moe-ref serve: socket"); return -1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S->port)};
    if (inet_pton(AF_INET, S->host, &a.sin_addr) != 1) {
        fprintf(stderr, "moe-ref serve: --host %s is not an IPv4 address\n", S->host);
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 512)) {
        fprintf(stderr, "moe-ref serve: cannot listen on %s:%d: %s\n", S->host, S->port, strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    S->port = ntohs(a.sin_port);
    return fd;
}

int mr_cmd_serve(int argc, char **argv)
{
    static struct server S;
    memset(&S, 0, sizeof S);
    if (parse_args(argc, argv, &S)) return 2;
    /* Memory stays what the budget says: large blocks (bodies) are mmapped and unmapped on
     * free at any size (a fixed threshold stops glibc from raising it after the first
     * large free), and few arenas keep one thread's freed blocks usable by the others. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    mallopt(M_ARENA_MAX, 2);
    enum mr_offload_policy policy;
    if (mr_parse_offload("moe-ref serve", S.budget_arg, S.offload_arg, &policy)) return 2;
    if (policy != MR_OFFLOAD_NONE && S.expert_parallel) {
        fprintf(stderr, "moe-ref serve: --expert-budget and --expert-parallel cannot be combined\n");
        return 2;
    }
    char err[512];
    S.model = mr_model_load(S.model_dir, err, sizeof err);
    if (!S.model) { fprintf(stderr, "moe-ref serve: %s\n", err); return 1; }
    S.cfg = mr_model_config(S.model);
    S.eng = mr_engine_create(S.model, S.threads, err, sizeof err);
    if (!S.eng) { fprintf(stderr, "moe-ref serve: %s\n", err); mr_model_free(S.model); return 1; }
    if (policy != MR_OFFLOAD_NONE) {
        uint64_t budget = 0;
        int parsed = mr_budget_bytes("moe-ref serve", S.model, S.budget_arg, 4, &budget) == 0;   /* else printed */
        int orc = parsed ? mr_engine_set_offload(S.eng, policy, budget, err, sizeof err) : -2;
        if (orc) {
            if (parsed) fprintf(stderr, "moe-ref serve: %s\n", err);
            mr_engine_free(S.eng); mr_model_free(S.model);
            return orc == -2 ? 2 : 1;
        }
    }
    if (S.expert_parallel) {
        /* forked here, before any thread or socket exists; the exchange is sized for the
         * largest step the scheduler can form: --max-batch sequences of a whole context */
        long cap = (long)S.max_batch * S.cfg->max_position, most = INT_MAX / (S.cfg->top_k > 0 ? S.cfg->top_k : 1);
        if (cap > most) cap = most;
        if (mr_engine_set_expert_parallel(S.eng, S.expert_parallel, (int)cap, err, sizeof err)) {
            fprintf(stderr, "moe-ref serve: %s\n", err);
            mr_engine_free(S.eng); mr_model_free(S.model);
            return 1;
        }
    }
    if (S.gt_path) {
        S.gt = fopen(S.gt_path, "w");
        if (!S.gt) {
            fprintf(stderr, "moe-ref serve: cannot write %s: %s\n", S.gt_path, strerror(errno));
            mr_engine_free(S.eng); mr_model_free(S.model);
            return 1;
        }
    }
    sv_budget_init(&S.budget, (size_t)S.max_request_mib << 20);
    if (sv_request_cost(4096, S.cfg->max_position) > S.budget.limit) {
        fprintf(stderr, "moe-ref serve: --max-request-memory %d MiB cannot hold one small request for a context "
                "of %d tokens (%zu bytes); raise it\n", S.max_request_mib, S.cfg->max_position,
                sv_request_cost(4096, S.cfg->max_position));
        mr_engine_free(S.eng); mr_model_free(S.model);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (pipe(sig_pipe)) { perror("moe-ref serve: pipe"); return 1; }
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int lfd = listen_on(&S);
    if (lfd < 0) return 1;
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.idle, NULL);
    S.created = (long long)time(NULL);
    if (sv_sched_start(&S.sched, S.eng, S.cfg, S.max_batch, S.mixed, S.gt)) {
        fprintf(stderr, "moe-ref serve: cannot start the scheduler thread\n");
        return 1;
    }
    fprintf(stderr, "moe-ref serve: model %s (%s), listening on http://%s:%d/v1 (max batch %d, %s prefill)\n",
            S.model_name, S.model_dir, S.host, S.port, S.max_batch, S.mixed ? "mixed" : "separate");
    if (S.port_file) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", S.port_file);
        FILE *pf = fopen(tmp, "w");
        if (pf) { fprintf(pf, "%d\n", S.port); fclose(pf); rename(tmp, S.port_file); }
    }
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    static struct rejected rej[REJECT_MAX];
    static struct pollfd pfd[REJECT_MAX + 2];
    int nrej = 0;
    for (;;) {
        for (int i = 0; i < nrej; i++) pfd[i] = (struct pollfd){.fd = rej[i].fd, .events = POLLIN};
        pfd[nrej] = (struct pollfd){.fd = lfd, .events = POLLIN};
        pfd[nrej + 1] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
        int k = poll(pfd, (nfds_t)nrej + 2, nrej ? 100 : -1);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { perror("moe-ref serve: poll"); break; }
        if (pfd[nrej + 1].revents) break;
        int listen_ready = pfd[nrej].revents & POLLIN;
        reject_drain(rej, &nrej, pfd);
        if (!listen_ready) continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) usleep(10000);   /* out of descriptors: back off */
            continue;
        }
        pthread_mutex_lock(&S.mu);
        int full = S.active >= S.max_conn;
        if (!full) S.active++;
        pthread_mutex_unlock(&S.mu);
        struct conn *c = full ? NULL : malloc(sizeof *c);
        pthread_t th;
        if (c) { c->fd = fd; c->S = &S; }
        if (!c || pthread_create(&th, &at, conn_main, c)) {
            reject_new(rej, &nrej, fd);
            if (c) {
                free(c);
                pthread_mutex_lock(&S.mu);
                S.active--;
                pthread_mutex_unlock(&S.mu);
            }
        }
    }
    /* drain: no new connections; wait for the in-flight ones */
    close(lfd);
    for (int i = 0; i < nrej; i++) close(rej[i].fd);
    atomic_store(&S.draining, 1);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += S.drain_timeout_s;
    pthread_mutex_lock(&S.mu);
    fprintf(stderr, "moe-ref serve: shutting down, waiting for %d connection(s)\n", S.active);
    while (S.active > 0)
        if (pthread_cond_timedwait(&S.idle, &S.mu, &dl) == ETIMEDOUT) break;
    int left = S.active;
    pthread_mutex_unlock(&S.mu);
    if (left) {
        fprintf(stderr, "moe-ref serve: %d connection(s) still open after %d s; exiting anyway\n", left, S.drain_timeout_s);
        if (S.gt) fflush(S.gt);
        _exit(1);
    }
    sv_sched_stop(&S.sched);
    fprintf(stderr, "moe-ref serve: %llu requests, %llu steps (%llu prefill, %llu decode, %llu mixed), "
            "%llu tokens generated, largest batch %llu; request memory peak %zu of %zu bytes, "
            "%llu requests waited for it, %llu refused\n",
            (unsigned long long)S.sched.requests, (unsigned long long)S.sched.steps,
            (unsigned long long)S.sched.prefill_steps, (unsigned long long)S.sched.decode_steps,
            (unsigned long long)S.sched.mixed_steps, (unsigned long long)S.sched.tokens_out,
            (unsigned long long)S.sched.max_seen_batch, S.budget.peak, S.budget.limit,
            (unsigned long long)S.budget.waited, (unsigned long long)S.budget.refused);
    if (S.gt && fclose(S.gt)) { fprintf(stderr, "moe-ref serve: writing the ground truth failed\n"); return 1; }
    mr_engine_free(S.eng);
    mr_model_free(S.model);
    pthread_attr_destroy(&at);
    return 0;
}
