/* `moecap bench`: drives an OpenAI-compatible server (/v1/completions or
 * /v1/chat/completions, streamed) with a dataset through libcurl's multi interface,
 * records one JSON line per request (RUN_DIR/requests.jsonl) and writes the client-side
 * summary (RUN_DIR/bench-summary.json, and vllm-bench.json with vLLM's field names).
 * Definitions follow vLLM `bench serve` (docs/bench.md). Closed loop (--concurrency C) or
 * Poisson arrivals (--rate R). */
#include "commands.h"
#include "dataset.h"
#include "outfile.h"
#include "request_log.h"
#include "score.h"
#include "sse.h"
#include "vllm_compat.h"
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RAW_CAP (4u << 20)       /* non-streamed bodies / error bodies kept per request */
/* What one request keeps however long its stream: answer text up to ANSWER_BYTES_PER_TOKEN
 * bytes per requested token (at least ANSWER_MIN), gaps of at most ITL_PER_TOKEN per
 * requested token + ITL_SLACK. Chunks beyond are counted, not kept. */
#define ANSWER_BYTES_PER_TOKEN 64
#define ANSWER_MIN (64u << 10)
#define ITL_PER_TOKEN 2
#define ITL_SLACK 16

struct opts {
    const char *url, *dataset, *out, *model;
    long n;                      /* 0 = dataset size (synthetic: 16) */
    int concurrency;             /* 0 = unset */
    double rate;                 /* 0 = unset (closed loop) */
    int max_tokens;              /* 0 = item's or 256 */
    double timeout_s;
    int chat;
    unsigned long long seed;
    struct mc_slo slo;
    int quiet;
};

struct job {
    CURL *h;
    struct curl_slist *hdrs;
    char *body;
    const struct mc_item *item;
    struct mc_req_record rec;
    struct mc_sse sse;
    int chat, sse_mode;          /* sse_mode: -1 undecided, 0 plain JSON body, 1 event stream */
    double t_send, t_last;       /* monotonic ms */
    double deadline;             /* t_send + --timeout */
    int timed_out;               /* the write callback stopped the transfer at the deadline */
    char *text; size_t tlen, tcap, text_max;
    char *raw; size_t rawlen, rawcap;
    size_t itl_cap, itl_max;
    int done_seen, valid_chunks;
    long garbage;
    char *server_error;
    long usage_prompt, usage_completion;
    int have_usage;
    char *warning;
};

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: moecap bench --url URL --dataset NAME|FILE --out RUN_DIR [options]\n"
        "  --url URL            server base (http://127.0.0.1:8000/v1) or a full .../completions URL\n"
        "  --dataset D          gsm8k | mc | synthetic:in=I,out=O[,unit=bytes|words] | FILE.jsonl\n"
        "  -n N                 number of requests (default: dataset size; synthetic: 16); cycles the dataset\n"
        "  --concurrency C      closed loop: keep C requests in flight (default 1 without --rate)\n"
        "  --rate R             Poisson arrivals at R requests/s (with --concurrency: at most C in flight)\n"
        "  --max-tokens T       output tokens per request (default: the item's, else 256)\n"
        "  --timeout S          per-request limit in seconds, connect included (default 300)\n"
        "  --model NAME         model field (default: first id of GET URL/models)\n"
        "  --chat               use /chat/completions with one user message\n"
        "  --seed X             seed for synthetic prompts and Poisson arrivals (default 0)\n"
        "  --goodput SLOS       ttft:MS,tpot:MS,e2el:MS (any subset): requests meeting all per second\n"
        "  --quiet              no progress output\n"
        "  --out RUN_DIR        writes RUN_DIR/requests.jsonl, RUN_DIR/bench-summary.json and\n"
        "                       RUN_DIR/vllm-bench.json (the summary under `vllm bench serve` field names)\n"
        "Environment: OPENAI_API_KEY (sent as a bearer token when set).\n");
}

/* ---- per-request stream handling ---- */

static void append(char **b, size_t *len, size_t *cap, const char *s, size_t n, size_t max)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n + 1) nc *= 2;
        if (nc > max + 1) nc = max + 1;
        if (*len + 1 >= nc) return;
        char *nb = realloc(*b, nc);
        if (!nb) return;
        *b = nb; *cap = nc;
        if (*len + n + 1 > nc) n = nc - *len - 1;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = 0;
}

static void set_str(char **dst, const char *s) { free(*dst); *dst = s ? strdup(s) : NULL; }

/* A usage count as a server sends it: believed only when it is an integer in
 * 0..MC_MAX_TOKEN_COUNT (a server's 9.9e18 or -5 is not a token count). */
static int token_count(const cJSON *v, long *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double x = v->valuedouble;
    if (!(x >= 0 && x <= (double)MC_MAX_TOKEN_COUNT) || x != floor(x)) return 0;
    *out = (long)x;
    return 1;
}

/* Takes content, finish reason, usage or error from one parsed chunk or full response. */
static void take_chunk(struct job *j, const cJSON *o, int streamed)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (err && !cJSON_IsNull(err)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        char buf[300];
        snprintf(buf, sizeof buf, "server error: %s",
                 cJSON_IsString(m) ? m->valuestring : cJSON_IsString(err) ? err->valuestring : "(no message)");
        if (!j->server_error) j->server_error = strdup(buf);
        return;
    }
    j->valid_chunks++;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        long p, c;
        if (token_count(pt, &p) && token_count(ct, &c)) {
            j->usage_prompt = p;
            j->usage_completion = c;
            j->have_usage = 1;
        } else if (cJSON_IsNumber(pt) || cJSON_IsNumber(ct)) {
            char w[200];
            snprintf(w, sizeof w, "usage ignored: prompt_tokens %.6g, completion_tokens %.6g are not token counts in 0..%ld",
                     cJSON_IsNumber(pt) ? pt->valuedouble : NAN, cJSON_IsNumber(ct) ? ct->valuedouble : NAN,
                     MC_MAX_TOKEN_COUNT);
            set_str(&j->warning, w);
        }
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    if (!c0) return;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(c0, "text");
    if (!cJSON_IsString(content)) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(c0, streamed ? "delta" : "message");
        content = cJSON_GetObjectItemCaseSensitive(d, "content");
        if (!cJSON_IsString(content) || !content->valuestring[0])
            content = cJSON_GetObjectItemCaseSensitive(d, "reasoning_content");
    }
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    if (cJSON_IsString(fr)) set_str(&j->rec.finish_reason, fr->valuestring);
    if (!cJSON_IsString(content) || !content->valuestring[0]) return;
    size_t n = strlen(content->valuestring);
    append(&j->text, &j->tlen, &j->tcap, content->valuestring, n, j->text_max);
    if (!streamed) return;
    double now = mono_ms();
    if (j->rec.chunks == 0) {
        j->rec.ttft_ms = now - j->t_send;
    } else {
        if (j->rec.n_itl == j->itl_cap && j->itl_cap < j->itl_max) {
            size_t nc = j->itl_cap ? j->itl_cap * 2 : 64;
            if (nc > j->itl_max) nc = j->itl_max;
            double *ni = realloc(j->rec.itl_ms, nc * sizeof *ni);
            if (ni) { j->rec.itl_ms = ni; j->itl_cap = nc; }
        }
        if (j->rec.n_itl < j->itl_cap) j->rec.itl_ms[j->rec.n_itl++] = now - j->t_last;
    }
    j->t_last = now;
    j->rec.chunks++;
}

static void on_sse_data(void *ctx, const char *data, size_t len)
{
    struct job *j = ctx;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) { j->done_seen = 1; return; }
    cJSON *o = cJSON_ParseWithLength(data, len);
    if (!o || !cJSON_IsObject(o)) { j->garbage++; cJSON_Delete(o); return; }
    take_chunk(j, o, 1);
    cJSON_Delete(o);
}

static size_t on_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct job *j = ud;
    size_t n = sz * nm;
    /* libcurl checks its own timeout between reads; a server that never pauses keeps it
     * reading, so the deadline is also checked here */
    if (mono_ms() > j->deadline) { j->timed_out = 1; return 0; }
    if (j->sse_mode < 0) {
        char *ct = NULL;
        curl_easy_getinfo(j->h, CURLINFO_CONTENT_TYPE, &ct);
        j->sse_mode = !(ct && strstr(ct, "application/json"));
    }
    if (j->rawlen < 65536 || !j->sse_mode) append(&j->raw, &j->rawlen, &j->rawcap, p, n, j->sse_mode ? 65536 : RAW_CAP);
    if (j->sse_mode) mc_sse_feed(&j->sse, p, n);
    return n;
}

static void set_error(struct job *j, const char *fmt, const char *a, long x)
{
    char buf[512];
    snprintf(buf, sizeof buf, fmt, a, x);
    set_str(&j->rec.error, buf);
}

/* Fills rec from the finished transfer. */
static void finish_job(struct job *j, CURLcode cc, double t_end, double timeout_s)
{
    struct mc_req_record *r = &j->rec;
    r->e2el_ms = t_end - j->t_send;
    long status = 0;
    curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
    r->http_status = (int)status;
    if (j->sse_mode == 1) mc_sse_finish(&j->sse);
    if (j->sse_mode == 0 && status == 200 && j->raw) {
        cJSON *o = cJSON_Parse(j->raw);
        if (o) { take_chunk(j, o, 0); cJSON_Delete(o); }
        else j->garbage++;
        if (j->tlen) { r->ttft_ms = r->e2el_ms; r->chunks = 1; }
    }
    char msg[512];
    if (cc == CURLE_OPERATION_TIMEDOUT || (cc == CURLE_WRITE_ERROR && j->timed_out)) {
        snprintf(msg, sizeof msg, "timeout: no complete response within %.3g s (%ld chunks received)",
                 timeout_s, r->chunks);
        set_str(&r->error, msg);
    } else if (cc != CURLE_OK) {
        snprintf(msg, sizeof msg, "transfer failed: %s (%ld chunks received)", curl_easy_strerror(cc), r->chunks);
        set_str(&r->error, msg);
    } else if (status != 200) {
        char body[201] = "";
        if (j->raw) { snprintf(body, sizeof body, "%s", j->raw); for (char *q = body; *q; q++) if (*q == '\n' || *q == '\r') *q = ' '; }
        set_error(j, "HTTP %2$ld: %1$s", body, status);
    } else if (j->server_error) {
        set_str(&r->error, j->server_error);
    } else if (j->sse_mode == 1 && j->garbage) {
        snprintf(msg, sizeof msg, "malformed stream: %ld data lines were not JSON objects%s", j->garbage,
                 j->done_seen ? "" : ", no [DONE]");
        set_str(&r->error, msg);
    } else if (j->valid_chunks == 0) {
        set_str(&r->error, j->sse_mode == 0 ? "response body is not a completion JSON object"
                                            : "no valid chunk received");
    } else if (j->sse_mode == 1 && !j->done_seen) {
        set_str(&r->error, "stream ended without [DONE] (connection closed early)");
    }
    r->ok = r->error == NULL;
    r->warning = j->warning;
    j->warning = NULL;
    r->prompt_tokens = j->have_usage ? j->usage_prompt : -1;
    r->prompt_tokens_from_usage = j->have_usage;
    r->output_tokens = j->have_usage ? j->usage_completion : r->chunks;
    r->output_tokens_from_usage = j->have_usage;
    if (r->ok && r->output_tokens > 1 && !isnan(r->ttft_ms))
        r->tpot_ms = (r->e2el_ms - r->ttft_ms) / (double)(r->output_tokens - 1);
    r->answer = j->text ? j->text : strdup("");
    j->text = NULL;
    r->score = -1;
    if (r->ok && r->expected) {
        if (r->kind == MC_ITEM_GSM8K) r->score = mc_score_gsm8k(r->answer, r->expected);
        else if (r->kind == MC_ITEM_CHOICE) r->score = mc_score_choice(r->answer, r->expected, j->item->nchoices);
    }
}

static void free_job(struct job *j)
{
    if (j->h) curl_easy_cleanup(j->h);
    curl_slist_free_all(j->hdrs);
    free(j->body); free(j->text); free(j->raw); free(j->server_error); free(j->warning);
    mc_sse_free(&j->sse);
    mc_req_record_free(&j->rec);
    free(j);
}

/* ---- request construction ---- */

static char *request_body(const struct opts *o, const char *model, const struct mc_item *it, int max_tokens)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", model);
    if (o->chat) {
        cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", it->prompt);
        cJSON_AddItemToArray(msgs, m);
        cJSON_AddNumberToObject(b, "max_completion_tokens", max_tokens);
    }
    else cJSON_AddStringToObject(b, "prompt", it->prompt);
    cJSON_AddNumberToObject(b, "max_tokens", max_tokens);
    cJSON_AddNumberToObject(b, "temperature", 0);
    cJSON_AddBoolToObject(b, "stream", 1);
    cJSON *so = cJSON_AddObjectToObject(b, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", 1);
    if (it->ignore_eos) cJSON_AddBoolToObject(b, "ignore_eos", 1);  /* fixed output length (vLLM extension) */
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

static struct job *start_job(CURLM *multi, const struct opts *o, const char *endpoint, const char *model,
                             const struct mc_item *it, long id, double t0)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->item = it;
    j->chat = o->chat;
    j->sse_mode = -1;
    mc_sse_init(&j->sse, on_sse_data, j);
    int mt = o->max_tokens ? o->max_tokens : it->max_tokens ? it->max_tokens : 256;
    j->body = request_body(o, model, it, mt);
    j->h = curl_easy_init();
    if (!j->body || !j->h) { free_job(j); return NULL; }
    j->hdrs = curl_slist_append(j->hdrs, "Content-Type: application/json");
    j->hdrs = curl_slist_append(j->hdrs, "Accept: text/event-stream");
    const char *key = getenv("OPENAI_API_KEY");
    if (key && *key) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        j->hdrs = curl_slist_append(j->hdrs, auth);
    }
    long tmo = (long)(o->timeout_s * 1000);
    curl_easy_setopt(j->h, CURLOPT_URL, endpoint);
    curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(j->h, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->h, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(j->h, CURLOPT_CONNECTTIMEOUT_MS, tmo < 10000 ? tmo : 10000);
    curl_easy_setopt(j->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(j->h, CURLOPT_ACCEPT_ENCODING, "identity");
    j->rec.id = id;
    j->rec.kind = it->kind;
    j->rec.expected = it->expected ? strdup(it->expected) : NULL;
    j->rec.requested_max_tokens = mt;
    j->rec.requested_input_len = it->input_len;
    j->rec.ttft_ms = NAN;
    j->rec.tpot_ms = NAN;
    j->rec.prompt_tokens = -1;
    j->text_max = (size_t)mt * ANSWER_BYTES_PER_TOKEN < ANSWER_MIN ? ANSWER_MIN : (size_t)mt * ANSWER_BYTES_PER_TOKEN;
    j->itl_max = (size_t)mt * ITL_PER_TOKEN + ITL_SLACK;
    j->t_send = mono_ms();
    j->deadline = j->t_send + o->timeout_s * 1000;
    j->rec.start_ms = j->t_send - t0;
    j->rec.send_unix_ns = real_ns();
    if (curl_multi_add_handle(multi, j->h) != CURLM_OK) { free_job(j); return NULL; }
    return j;
}

/* ---- endpoint and model discovery ---- */

static void endpoints(const char *url, int chat, char *endpoint, size_t esz, char *models, size_t msz)
{
    char base[2048];
    snprintf(base, sizeof base, "%s", url);
    size_t l = strlen(base);
    while (l && base[l - 1] == '/') base[--l] = 0;
    const char *suf[] = {"/chat/completions", "/completions"};
    for (int i = 0; i < 2; i++) {
        size_t sl = strlen(suf[i]);
        if (l >= sl && !strcmp(base + l - sl, suf[i])) {
            snprintf(endpoint, esz, "%s", base);
            base[l - sl] = 0;
            snprintf(models, msz, "%s/models", base);
            return;
        }
    }
    if (!(l >= 3 && !strcmp(base + l - 3, "/v1"))) { snprintf(base + l, sizeof base - l, "/v1"); }
    snprintf(endpoint, esz, "%s%s", base, chat ? "/chat/completions" : "/completions");
    snprintf(models, msz, "%s/models", base);
}

struct membuf { char *b; size_t len, cap; };
static size_t mem_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct membuf *m = ud;
    append(&m->b, &m->len, &m->cap, p, sz * nm, 1u << 20);
    return sz * nm;
}

static char *discover_model(const char *models_url, double timeout_s)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    struct membuf m = {0};
    long tmo = (long)(timeout_s * 1000);
    if (tmo > 10000) tmo = 10000;
    curl_easy_setopt(h, CURLOPT_URL, models_url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *hd = NULL;
    const char *key = getenv("OPENAI_API_KEY");
    if (key && *key) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hd = curl_slist_append(hd, auth);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    }
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    char *id = NULL;
    if (cc == CURLE_OK && status == 200 && m.b) {
        cJSON *o = cJSON_Parse(m.b);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
        const cJSON *d0 = cJSON_IsArray(d) ? cJSON_GetArrayItem(d, 0) : NULL;
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(d0, "id");
        if (cJSON_IsString(i)) id = strdup(i->valuestring);
        cJSON_Delete(o);
    }
    free(m.b);
    return id;
}

/* ---- options ---- */

static int parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_s = 300;
    char err[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() do { if (!v) { fprintf(stderr, "moecap bench: %s needs a value\n", a); return -1; } i++; } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--url")) { NEEDV(); o->url = v; }
        else if (!strcmp(a, "--dataset")) { NEEDV(); o->dataset = v; }
        else if (!strcmp(a, "--out")) { NEEDV(); o->out = v; }
        else if (!strcmp(a, "--model")) { NEEDV(); o->model = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--num-prompts")) { NEEDV(); o->n = strtol(v, NULL, 10); if (o->n < 1) { fprintf(stderr, "moecap bench: -n must be >= 1\n"); return -1; } }
        else if (!strcmp(a, "--concurrency") || !strcmp(a, "--max-concurrency")) { NEEDV(); o->concurrency = atoi(v); if (o->concurrency < 1) { fprintf(stderr, "moecap bench: --concurrency must be >= 1\n"); return -1; } }
        else if (!strcmp(a, "--rate") || !strcmp(a, "--request-rate")) { NEEDV(); o->rate = strtod(v, NULL); if (!(o->rate > 0)) { fprintf(stderr, "moecap bench: --rate must be > 0 requests/s\n"); return -1; } }
        else if (!strcmp(a, "--max-tokens")) { NEEDV(); o->max_tokens = atoi(v); if (o->max_tokens < 1) { fprintf(stderr, "moecap bench: --max-tokens must be >= 1\n"); return -1; } }
        else if (!strcmp(a, "--timeout")) { NEEDV(); o->timeout_s = strtod(v, NULL); if (!(o->timeout_s > 0)) { fprintf(stderr, "moecap bench: --timeout must be > 0 seconds\n"); return -1; } }
        else if (!strcmp(a, "--seed")) { NEEDV(); o->seed = strtoull(v, NULL, 10); }
        else if (!strcmp(a, "--chat")) o->chat = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) o->quiet = 1;
        else if (!strcmp(a, "--goodput")) {
            NEEDV();
            if (mc_slo_parse(v, &o->slo, err, sizeof err)) { fprintf(stderr, "moecap bench: %s\n", err); return -1; }
            /* vLLM style: further "tpot:50" words after --goodput */
            while (i + 1 < argc && strchr(argv[i + 1], ':') && strncmp(argv[i + 1], "-", 1)) {
                if (mc_slo_parse(argv[++i], &o->slo, err, sizeof err)) { fprintf(stderr, "moecap bench: %s\n", err); return -1; }
            }
        }
        else { fprintf(stderr, "moecap bench: unknown option '%s'\n", a); usage(stderr); return -1; }
#undef NEEDV
    }
    if (!o->url || !o->dataset || !o->out) {
        fprintf(stderr, "moecap bench: --url, --dataset and --out are required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') { *s = 0; if (mkdir(p, 0777) && errno != EEXIST) return -1; *s = '/'; }
    if (mkdir(p, 0777) && errno != EEXIST) return -1;
    return 0;
}

/* Exponential inter-arrival time (s) for a Poisson process of rate r. */
static double expo(unsigned long long *s, double r)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    double u = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
    return -log(u) / r;
}

static void progress(const struct opts *o, int tty, long done, long failed, long inflight, long n,
                     double elapsed_s, int final)
{
    if (o->quiet) return;
    if (tty) {
        int w = 30, k = n ? (int)(w * done / n) : w;
        fprintf(stderr, "\r[%.*s%*s] %ld/%ld done, %ld failed, %ld in flight, %.1f s%s", k,
                "##############################", w - k, "", done, n, failed, inflight, elapsed_s,
                final ? "\n" : "");
    } else {
        fprintf(stderr, "moecap bench: %ld/%ld done, %ld failed, %ld in flight, %.1f s\n", done, n, failed,
                inflight, elapsed_s);
    }
}

static void print_summary(const cJSON *s)
{
    const char *names[] = {"ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"};
    printf("============ moecap bench result ============\n");
    const char *keys[] = {"requests", "completed", "failed", "duration_s", "total_input_tokens",
                          "total_output_tokens", "request_throughput", "output_throughput",
                          "total_token_throughput"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, keys[i]);
        if (cJSON_IsNumber(v)) printf("%-26s %.4g\n", keys[i], v->valuedouble);
        else printf("%-26s -\n", keys[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(s, names[i]);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(st, "mean");
        const cJSON *p50 = cJSON_GetObjectItemCaseSensitive(st, "p50");
        const cJSON *p90 = cJSON_GetObjectItemCaseSensitive(st, "p90");
        const cJSON *p99 = cJSON_GetObjectItemCaseSensitive(st, "p99");
        if (cJSON_IsNumber(m))
            printf("%-8s mean %9.2f  p50 %9.2f  p90 %9.2f  p99 %9.2f\n", names[i], m->valuedouble,
                   p50->valuedouble, p90->valuedouble, p99->valuedouble);
        else printf("%-8s -\n", names[i]);
    }
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(s, "goodput");
    const cJSON *gr = cJSON_GetObjectItemCaseSensitive(g, "request_goodput");
    if (cJSON_IsNumber(gr)) printf("%-26s %.4g req/s\n", "goodput", gr->valuedouble);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "accuracy");
    const cJSON *av = cJSON_GetObjectItemCaseSensitive(a, "accuracy");
    if (cJSON_IsNumber(av)) {
        printf("%-26s %.4f (%g/%g scored)\n", "accuracy", av->valuedouble,
               cJSON_GetObjectItemCaseSensitive(a, "correct")->valuedouble,
               cJSON_GetObjectItemCaseSensitive(a, "scored")->valuedouble);
    }
    printf("=============================================\n");
}

int mc_cmd_bench(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o)) return 2;
    char err[512];
    struct mc_dataset ds;
    if (mc_dataset_load(&ds, o.dataset, (size_t)o.n, o.seed, err, sizeof err)) {
        fprintf(stderr, "moecap bench: %s\n", err);
        return 2;
    }
    long n = o.n ? o.n : (long)ds.n;
    if (mkdir_p(o.out)) {
        fprintf(stderr, "moecap bench: cannot create %s: %s\n", o.out, strerror(errno));
        mc_dataset_free(&ds);
        return 2;
    }
    /* written to a temporary file, renamed to requests.jsonl when the run ends */
    struct mc_outfile logf;
    if (mc_outfile_open(&logf, o.out, "requests.jsonl")) {
        fprintf(stderr, "moecap bench: cannot write in %s: %s\n", o.out, strerror(errno));
        mc_dataset_free(&ds);
        return 2;
    }
    FILE *log = logf.f;
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) { fprintf(stderr, "moecap bench: libcurl init failed\n"); mc_outfile_commit(&logf); mc_dataset_free(&ds); return 2; }
    char endpoint[2200], models_url[2200];
    endpoints(o.url, o.chat, endpoint, sizeof endpoint, models_url, sizeof models_url);
    char *model = o.model ? strdup(o.model) : discover_model(models_url, o.timeout_s);
    if (!model) {
        fprintf(stderr, "moecap bench: could not read a model id from %s; sending model \"default\" (use --model)\n", models_url);
        model = strdup("default");
    }
    int conc = o.concurrency ? o.concurrency : (o.rate > 0 ? (int)(n < 100000 ? n : 100000) : 1);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    int tty = isatty(2);

    CURLM *multi = curl_multi_init();
    long sent = 0, done = 0, failed = 0, inflight = 0;
    unsigned long long rs = o.seed * 2654435761ull + 12345;
    double t0 = mono_ms(), next_arrival = t0, last_progress = t0;
    int64_t t0_unix = real_ns();
    struct job **live = calloc((size_t)conc, sizeof *live);
    while ((sent < n || inflight > 0) && live) {
        double now = mono_ms();
        if (interrupted) {
            /* Ctrl-C: stop sending, close what is in flight, still write the log */
            for (int k = 0; k < conc; k++) if (live[k]) {
                struct job *j = live[k];
                curl_multi_remove_handle(multi, j->h);
                finish_job(j, CURLE_ABORTED_BY_CALLBACK, now, o.timeout_s);
                set_str(&j->rec.error, "interrupted (SIGINT) before completion");
                j->rec.ok = 0;
                cJSON *js = mc_req_record_to_json(&j->rec);
                char *line = cJSON_PrintUnformatted(js);
                fprintf(log, "%s\n", line);
                free(line); cJSON_Delete(js);
                free_job(j); live[k] = NULL; inflight--; done++; failed++;
            }
            n = sent;
            break;
        }
        while (sent < n && inflight < conc && (o.rate <= 0 || now >= next_arrival)) {
            int slot = 0;
            while (live[slot]) slot++;
            const struct mc_item *it = &ds.items[(size_t)sent % ds.n];
            live[slot] = start_job(multi, &o, endpoint, model, it, sent, t0);
            if (!live[slot]) { fprintf(stderr, "moecap bench: cannot create request (out of memory?)\n"); n = sent; break; }
            sent++; inflight++;
            if (o.rate > 0) next_arrival += expo(&rs, o.rate) * 1000.0;
        }
        int still;
        curl_multi_perform(multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            struct job *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode cc = msg->data.result;
            curl_multi_remove_handle(multi, msg->easy_handle);
            finish_job(j, cc, mono_ms(), o.timeout_s);
            cJSON *js = mc_req_record_to_json(&j->rec);
            char *line = cJSON_PrintUnformatted(js);
            fprintf(log, "%s\n", line);
            fflush(log);
            free(line);
            cJSON_Delete(js);
            if (!j->rec.ok) failed++;
            for (int k = 0; k < conc; k++) if (live[k] == j) live[k] = NULL;
            free_job(j);
            inflight--; done++;
        }
        now = mono_ms();
        if (now - last_progress >= (tty ? 200 : 5000)) {
            progress(&o, tty, done, failed, inflight, n, (now - t0) / 1e3, 0);
            last_progress = now;
        }
        int wait_ms = 100;
        if (sent < n && inflight < conc) {
            /* a slot is free: send at once (closed loop) or at the next arrival */
            double dt = o.rate > 0 ? next_arrival - now : 0;
            wait_ms = dt <= 0 ? 0 : dt < 100 ? (int)dt + 1 : 100;
        }
        if (wait_ms > 0 && (sent < n || inflight > 0)) curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
    }
    double t_end = mono_ms();
    progress(&o, tty, done, failed, inflight, n, (t_end - t0) / 1e3, 1);
    curl_multi_cleanup(multi);
    free(live);
    int rc = 0;
    if (mc_outfile_commit(&logf)) {
        fprintf(stderr, "moecap bench: cannot write %s: %s\n", logf.path, strerror(errno));
        rc = 1;
    }

    /* summary: recomputed from the log just written, so it equals what a reader gets */
    struct mc_request_log rl;
    if (rc) {
        /* the log could not be written: no summary */
    } else if (mc_request_log_load(o.out, &rl, err, sizeof err)) {
        fprintf(stderr, "moecap bench: re-reading the log failed: %s\n", err);
        rc = 1;
    } else {
        cJSON *s = mc_request_log_summary(rl.recs, rl.n, &o.slo, (t_end - t0) / 1e3);
        cJSON *cfg = cJSON_CreateObject();
        cJSON_AddStringToObject(cfg, "url", o.url);
        cJSON_AddStringToObject(cfg, "endpoint", endpoint);
        cJSON_AddStringToObject(cfg, "model", model);
        cJSON_AddStringToObject(cfg, "dataset", ds.name);
        cJSON_AddStringToObject(cfg, "dataset_source", ds.source);
        cJSON_AddNumberToObject(cfg, "num_requests", (double)n);
        if (o.rate > 0) cJSON_AddNumberToObject(cfg, "rate", o.rate); else cJSON_AddNullToObject(cfg, "rate");
        cJSON_AddNumberToObject(cfg, "max_concurrency", conc);
        if (o.max_tokens) cJSON_AddNumberToObject(cfg, "max_tokens", o.max_tokens); else cJSON_AddNullToObject(cfg, "max_tokens");
        cJSON_AddNumberToObject(cfg, "timeout_s", o.timeout_s);
        cJSON_AddBoolToObject(cfg, "chat", o.chat);
        cJSON_AddNumberToObject(cfg, "seed", (double)o.seed);
        char ns[32];
        snprintf(ns, sizeof ns, "%lld", (long long)t0_unix);
        cJSON_AddRawToObject(cfg, "start_unix_ns", ns);
        cJSON_AddBoolToObject(cfg, "interrupted", interrupted != 0);
        cJSON_AddItemToObject(s, "config", cfg);
        cJSON *defs = cJSON_AddObjectToObject(s, "definitions");
        cJSON_AddStringToObject(defs, "ttft_ms", "request sent -> first non-empty streamed content chunk (successful requests)");
        cJSON_AddStringToObject(defs, "tpot_ms", "per request (e2el - ttft) / (output_tokens - 1), requests with >= 2 output tokens; excludes the first token");
        cJSON_AddStringToObject(defs, "itl_ms", "every gap between consecutive content chunks, pooled over requests");
        cJSON_AddStringToObject(defs, "e2el_ms", "request sent -> last byte received");
        cJSON_AddStringToObject(defs, "duration_s", "benchmark start -> last request finished");
        cJSON_AddStringToObject(defs, "goodput", "successful requests meeting every given SLO, per second of duration (vLLM bench serve)");
        cJSON_AddStringToObject(defs, "accuracy", "correct / scored (successful requests with a reference answer); accuracy_failed_as_wrong counts failed ones as wrong");
        cJSON_AddStringToObject(defs, "percentiles", "linear interpolation between closest ranks (numpy default)");
        char *txt = cJSON_Print(s);
        if (!txt || mc_outfile_write(o.out, "bench-summary.json", txt)) {
            fprintf(stderr, "moecap bench: cannot write %s/bench-summary.json: %s\n", o.out, strerror(errno));
            rc = 1;
        }
        free(txt);
        cJSON *v = mc_vllm_bench_json(s);
        txt = v ? cJSON_Print(v) : NULL;
        if (!txt || mc_outfile_write(o.out, "vllm-bench.json", txt)) {
            fprintf(stderr, "moecap bench: cannot write %s/vllm-bench.json: %s\n", o.out, strerror(errno));
            rc = 1;
        }
        free(txt);
        cJSON_Delete(v);
        if (!o.quiet) print_summary(s);
        if (rl.n != (size_t)n) { fprintf(stderr, "moecap bench: log has %zu records, expected %ld\n", rl.n, n); rc = 1; }
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "completed");
        if (rc == 0 && n > 0 && c && c->valuedouble == 0) {
            fprintf(stderr, "moecap bench: every request failed (see %s/requests.jsonl \"error\")\n", o.out);
            rc = 1;
        }
        cJSON_Delete(s);
        mc_request_log_free(&rl);
    }
    free(model);
    mc_dataset_free(&ds);
    curl_global_cleanup();
    return interrupted ? 130 : rc;
}
