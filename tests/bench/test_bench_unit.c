/* Unit tests of `moecap bench` building blocks against hand-made answers: answer
 * extraction/scoring (GSM8K numbers, multiple-choice letters), the SSE splitter fed in
 * awkward pieces, percentiles/goodput/accuracy of the summary (hand-computed values),
 * SLO parsing, dataset item shapes, lm-eval results reading, record JSON round trip,
 * hostile numbers in a log, UTF-8 repair (Unicode's maximal-subpart replacement), the
 * vllm-bench.json field mapping. */
#include "mc_test.h"
#include "bench/client_view.h"
#include "bench/dataset.h"
#include "bench/lmeval.h"
#include "bench/request_log.h"
#include "bench/score.h"
#include "bench/sse.h"
#include "trace/utf8.h"
#include "bench/vllm_compat.h"
#include "hw/hw_profile.h"
#include "trace/data_dir.h"
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

static void test_gsm8k_extract(void)
{
    struct { const char *text, *want; } c[] = {
        {"#### 42", "42"},
        {"She has 36 - 7 = 29 pencils.\n#### 29", "29"},
        {"The answer is $1,234.", "1234"},
        {"the answer is 1,234.50 dollars", "1234.5"},
        {"42.0", "42"},
        {"So the result is -7 degrees.", "-7"},
        {"#### -600", "-600"},
        {"First 3 apples, then 5 more, total 8", "8"},
        {"Answer: 0.25", "0.25"},
        {"answer is .5", "0.5"},
        {"I computed 12 and 13. #### 0012", "12"},
        {"#### $-5", "-5"},
        {"5-3 = 2", "2"},
        {"The answer is 17. Check: 4*2 + 9 = 17 dollars, plus 3 = 20?", "17"},
        {"no numbers here", ""},
        {"1,2345", "2345"},
        {"-0", "0"},
        {"3.140", "3.14"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char out[64];
        int got = mc_extract_number(c[i].text, out, sizeof out);
        MC_CHECK(got == (c[i].want[0] != 0), "case %zu '%s': found=%d", i, c[i].text, got);
        MC_CHECK(!strcmp(out, c[i].want), "case %zu '%s': got '%s' want '%s'", i, c[i].text, out, c[i].want);
    }
}

static void test_gsm8k_score(void)
{
    /* reference forms: a bare number, or a full GSM8K solution */
    const char *ref = "Muffins cost 4 * 2 = <<4*2=8>>8 dollars.\n#### 17";
    MC_CHECK(mc_score_gsm8k("so he spends 17 dollars", ref) == 1, "bare last number");
    MC_CHECK(mc_score_gsm8k("#### 17.00", ref) == 1, "trailing zeros");
    MC_CHECK(mc_score_gsm8k("The answer is $17.", "17") == 1, "dollar + period");
    MC_CHECK(mc_score_gsm8k("The answer is 18.", "17") == 0, "wrong");
    MC_CHECK(mc_score_gsm8k("", "17") == 0, "empty answer");
    MC_CHECK(mc_score_gsm8k("#### 17", "") == 0, "empty reference");
    MC_CHECK(mc_score_gsm8k("#### -7", "-7") == 1, "negative");
    MC_CHECK(mc_score_gsm8k("#### 7", "-7") == 0, "sign matters");
    MC_CHECK(mc_score_gsm8k("The answer is 1,615 books", "1615") == 1, "thousands comma");
    MC_CHECK(mc_score_gsm8k("#### 22.5", "22.5") == 1, "decimal");
    MC_CHECK(mc_score_gsm8k("#### 22.50", "22.5") == 1, "decimal trailing zero");
    MC_CHECK(mc_score_gsm8k("#### 225", "22.5") == 0, "decimal point matters");
    char c[32];
    MC_CHECK(mc_canon_number("$1,234.50", c, sizeof c) && !strcmp(c, "1234.5"), "canon %s", c);
    MC_CHECK(!mc_canon_number("12 apples", c, sizeof c), "not a bare literal");
    MC_CHECK(mc_canon_number(" 42. ", c, sizeof c) && !strcmp(c, "42"), "canon '42.' -> %s", c);
}

static void test_choice(void)
{
    struct { const char *text; int want; } c[] = {
        {"(B)", 'B'}, {"Answer: B", 'B'}, {"b)", 'B'}, {"The answer is C.", 'C'},
        {"answer: (d)", 'D'}, {"The answer is a bit unclear", 0}, {"A", 'A'},
        {"  C. Carbon dioxide", 'C'}, {"I think (A) is wrong; the answer is (D)", 'D'},
        {"**Answer:** B", 'B'}, {"The correct option is (c).", 'C'}, {"nothing", 0},
        {"Answer: Z", 0}, {"d", 'D'}, {"The answer is E", 0},   /* E out of range for 4 choices */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int got = mc_extract_choice(c[i].text, 4);
        MC_CHECK(got == c[i].want, "case %zu '%s': got %c(%d) want %c", i, c[i].text, got ? got : '-', got,
                 c[i].want ? c[i].want : '-');
    }
    MC_CHECK(mc_score_choice("Answer: B", "B", 4) == 1, "correct");
    MC_CHECK(mc_score_choice("Answer: B", "b", 4) == 1, "case-insensitive reference");
    MC_CHECK(mc_score_choice("Answer: C", "B", 4) == 0, "wrong");
    MC_CHECK(mc_score_choice("", "B", 4) == 0, "empty");
    MC_CHECK(mc_score_choice("(E)", "E", 5) == 1, "5 choices allow E");
}

struct sse_cap { char got[8][64]; int n; };
static void sse_cb(void *ctx, const char *d, size_t len)
{
    struct sse_cap *c = ctx;
    if (c->n < 8) { snprintf(c->got[c->n], 64, "%.*s", (int)len, d); c->n++; }
}

static void test_sse(void)
{
    const char *stream = "data: {\"a\":1}\r\n\r\n: comment\nevent: x\ndata:{\"b\":2}\n\ngarbage\ndata: [DONE]\n\ndata: tail";
    /* every split point must give the same result */
    size_t L = strlen(stream);
    for (size_t cut = 0; cut <= L; cut++) {
        struct sse_cap cap = {0};
        struct mc_sse s;
        mc_sse_init(&s, sse_cb, &cap);
        mc_sse_feed(&s, stream, cut);
        mc_sse_feed(&s, stream + cut, L - cut);
        mc_sse_finish(&s);
        MC_CHECK(cap.n == 4, "cut %zu: %d data lines", cut, cap.n);
        MC_CHECK(!strcmp(cap.got[0], "{\"a\":1}") && !strcmp(cap.got[1], "{\"b\":2}") &&
                 !strcmp(cap.got[2], "[DONE]") && !strcmp(cap.got[3], "tail"), "cut %zu: %s|%s|%s|%s", cut,
                 cap.got[0], cap.got[1], cap.got[2], cap.got[3]);
        MC_CHECK(s.other_lines == 3, "cut %zu: other=%ld", cut, s.other_lines);
        mc_sse_free(&s);
    }
    /* byte by byte */
    struct sse_cap cap = {0};
    struct mc_sse s;
    mc_sse_init(&s, sse_cb, &cap);
    for (size_t i = 0; i < L; i++) mc_sse_feed(&s, stream + i, 1);
    mc_sse_finish(&s);
    MC_CHECK(cap.n == 4, "bytewise %d", cap.n);
    mc_sse_free(&s);
    /* an over-long line is dropped, the next one still parsed */
    size_t big = MC_SSE_MAX_LINE + 100;
    char *b = malloc(big + 32);
    memcpy(b, "data: ", 6);
    memset(b + 6, 'x', big);
    strcpy(b + 6 + big, "\ndata: ok\n");
    struct sse_cap c2 = {0};
    mc_sse_init(&s, sse_cb, &c2);
    mc_sse_feed(&s, b, strlen(b));
    mc_sse_finish(&s);
    MC_CHECK(c2.n == 1 && !strcmp(c2.got[0], "ok") && s.dropped_lines == 1, "overflow n=%d dropped=%ld", c2.n, s.dropped_lines);
    mc_sse_free(&s);
    free(b);
}

static double jnum(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}
#define NEAR(a, b) (fabs((double)(a) - (double)(b)) < 1e-9 * (1 + fabs((double)(b))))

static void test_summary(void)
{
    /* 4 successful requests, 1 failed. Hand-computed expectations below. */
    double itl0[] = {10, 20}, itl1[] = {30}, itl3[] = {5, 5, 5, 5};
    struct mc_req_record r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++) { r[i].id = i; r[i].ok = 1; r[i].ttft_ms = NAN; r[i].tpot_ms = NAN; r[i].e2el_ms = NAN; r[i].score = -1; }
    /* ttft 10,20,30,40; e2el 100,200,300,400; outputs 3,2,1,5 */
    r[0].ttft_ms = 10; r[0].e2el_ms = 100; r[0].output_tokens = 3; r[0].prompt_tokens = 7;  r[0].itl_ms = itl0; r[0].n_itl = 2; r[0].start_ms = 0;
    r[1].ttft_ms = 20; r[1].e2el_ms = 200; r[1].output_tokens = 2; r[1].prompt_tokens = 8;  r[1].itl_ms = itl1; r[1].n_itl = 1; r[1].start_ms = 0;
    r[2].ttft_ms = 30; r[2].e2el_ms = 300; r[2].output_tokens = 1; r[2].prompt_tokens = 9;  r[2].start_ms = 100;
    r[3].ttft_ms = 40; r[3].e2el_ms = 400; r[3].output_tokens = 5; r[3].prompt_tokens = 10; r[3].itl_ms = itl3; r[3].n_itl = 4; r[3].start_ms = 600;
    r[4].ok = 0; r[4].e2el_ms = 2000; r[4].start_ms = 0; r[4].prompt_tokens = -1;
    for (int i = 0; i < 4; i++)
        if (r[i].output_tokens > 1) r[i].tpot_ms = (r[i].e2el_ms - r[i].ttft_ms) / (double)(r[i].output_tokens - 1);
    /* tpot: 45, 180, (none), 90 -> sorted 45, 90, 180 */
    r[0].kind = MC_ITEM_GSM8K; r[0].expected = "1"; r[0].score = 1;
    r[1].kind = MC_ITEM_GSM8K; r[1].expected = "1"; r[1].score = 0;
    r[4].kind = MC_ITEM_GSM8K; r[4].expected = "1";
    struct mc_slo slo = {.ttft_ms = 35, .tpot_ms = 100};
    cJSON *s = mc_request_log_summary(r, 5, &slo, 0);
    /* duration derived: last end = max(start+e2el) = max(100, 200, 400, 1000, 2000) = 2000 ms */
    MC_CHECK(NEAR(jnum(s, "duration_s", NULL), 2.0), "duration %g", jnum(s, "duration_s", NULL));
    MC_CHECK(jnum(s, "completed", NULL) == 4 && jnum(s, "failed", NULL) == 1, "counts");
    MC_CHECK(jnum(s, "total_input_tokens", NULL) == 34, "input tokens %g", jnum(s, "total_input_tokens", NULL));
    MC_CHECK(jnum(s, "total_output_tokens", NULL) == 11, "output tokens");
    MC_CHECK(NEAR(jnum(s, "request_throughput", NULL), 2.0), "req/s");
    MC_CHECK(NEAR(jnum(s, "output_throughput", NULL), 5.5), "tok/s");
    MC_CHECK(NEAR(jnum(s, "total_token_throughput", NULL), 22.5), "total tok/s");
    /* numpy.percentile([10,20,30,40], [50,90,99]) = 25, 37, 39.7 */
    MC_CHECK(NEAR(jnum(s, "ttft_ms", "p50"), 25) && NEAR(jnum(s, "ttft_ms", "p90"), 37) &&
             NEAR(jnum(s, "ttft_ms", "p99"), 39.7), "ttft pct %g %g %g", jnum(s, "ttft_ms", "p50"),
             jnum(s, "ttft_ms", "p90"), jnum(s, "ttft_ms", "p99"));
    MC_CHECK(NEAR(jnum(s, "ttft_ms", "mean"), 25) && NEAR(jnum(s, "ttft_ms", "std"), sqrt(125.0)), "ttft mean/std");
    /* tpot sorted 45, 90, 180: p50 = 90, p90 = 90 + 0.8*90 = 162, p99 = 90 + 0.98*90 = 178.2 */
    MC_CHECK(jnum(s, "tpot_ms", "count") == 3 && NEAR(jnum(s, "tpot_ms", "p50"), 90) &&
             NEAR(jnum(s, "tpot_ms", "p90"), 162) && NEAR(jnum(s, "tpot_ms", "p99"), 178.2), "tpot %g %g",
             jnum(s, "tpot_ms", "p90"), jnum(s, "tpot_ms", "p99"));
    /* itl pooled: 5,5,5,5,10,20,30 -> p50 = 5, mean = 80/7 */
    MC_CHECK(jnum(s, "itl_ms", "count") == 7 && NEAR(jnum(s, "itl_ms", "p50"), 5) &&
             NEAR(jnum(s, "itl_ms", "mean"), 80.0 / 7), "itl");
    MC_CHECK(NEAR(jnum(s, "e2el_ms", "max"), 400), "failed request excluded from e2el");
    /* goodput: ttft<=35 & tpot<=100: r0 (10,45) yes, r1 (20,180) no, r2 (30, tpot 0) yes, r3 (40) no -> 2 / 2 s */
    MC_CHECK(jnum(s, "goodput", "good_requests") == 2 && NEAR(jnum(s, "goodput", "request_goodput"), 1.0), "goodput");
    /* accuracy: 3 with reference, 2 scored, 1 correct */
    MC_CHECK(jnum(s, "accuracy", "with_reference") == 3 && jnum(s, "accuracy", "scored") == 2 &&
             NEAR(jnum(s, "accuracy", "accuracy"), 0.5) && NEAR(jnum(s, "accuracy", "accuracy_failed_as_wrong"), 1.0 / 3),
             "accuracy");
    cJSON_Delete(s);
    /* nothing completed: stats are null, not zero */
    s = mc_request_log_summary(&r[4], 1, NULL, 1.0);
    MC_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "ttft_ms"), "p50")), "null p50");
    MC_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "goodput")), "goodput absent without SLO");
    MC_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "total_input_tokens")) == 0, "no completed -> 0 input tokens known");
    cJSON_Delete(s);
    /* unknown prompt tokens on a completed request -> totals null */
    r[0].prompt_tokens = -1;
    s = mc_request_log_summary(r, 4, NULL, 1.0);
    MC_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "total_input_tokens")), "unknown input tokens stay unknown");
    cJSON_Delete(s);
}

static void test_slo_parse(void)
{
    struct mc_slo s = {0};
    char e[128];
    MC_CHECK(mc_slo_parse("ttft:200,tpot:50 e2el:1000", &s, e, sizeof e) == 0 && s.ttft_ms == 200 &&
             s.tpot_ms == 50 && s.e2el_ms == 1000, "parse");
    MC_CHECK(mc_slo_parse("itl:5", &s, e, sizeof e) == -1, "unknown metric rejected");
    MC_CHECK(mc_slo_parse("ttft:-1", &s, e, sizeof e) == -1, "negative rejected");
    MC_CHECK(mc_slo_parse("ttft", &s, e, sizeof e) == -1, "missing value rejected");
}

static void test_items(void)
{
    char e[200];
    struct mc_item it;
    cJSON *o = cJSON_Parse("{\"question\":\"Q?\",\"answer\":\"steps\\n#### 1,234 \"}");
    MC_CHECK(mc_item_from_json(o, &it, e, sizeof e) == 0 && it.kind == MC_ITEM_GSM8K && !strcmp(it.expected, "1,234") &&
             strstr(it.prompt, "Q?"), "gsm8k item '%s'", it.expected);
    MC_CHECK(mc_score_gsm8k("#### 1234", it.expected) == 1, "reference with comma scores");
    free(it.prompt); free(it.expected); cJSON_Delete(o);
    o = cJSON_Parse("{\"question\":\"Pick\",\"choices\":[\"x\",\"y\",\"z\"],\"answer\":2}");
    MC_CHECK(mc_item_from_json(o, &it, e, sizeof e) == 0 && it.kind == MC_ITEM_CHOICE && it.nchoices == 3 &&
             !strcmp(it.expected, "C") && strstr(it.prompt, "B. y\n"), "choice item");
    free(it.prompt); free(it.expected); cJSON_Delete(o);
    o = cJSON_Parse("{\"foo\":1}");
    MC_CHECK(mc_item_from_json(o, &it, e, sizeof e) == -1, "bad item rejected");
    cJSON_Delete(o);
    struct mc_dataset ds;
    MC_CHECK(mc_dataset_load(&ds, "synthetic:in=10,out=3,unit=bytes", 4, 7, e, sizeof e) == 0 && ds.n == 4 &&
             strlen(ds.items[0].prompt) == 10 && ds.items[0].max_tokens == 3, "synthetic bytes");
    struct mc_dataset ds2;
    mc_dataset_load(&ds2, "synthetic:in=10,out=3,unit=bytes", 4, 7, e, sizeof e);
    MC_CHECK(!strcmp(ds.items[3].prompt, ds2.items[3].prompt) && strcmp(ds.items[0].prompt, ds.items[1].prompt),
             "same seed -> same prompts, prompts differ");
    mc_dataset_free(&ds); mc_dataset_free(&ds2);
    MC_CHECK(mc_dataset_load(&ds, "synthetic:in=5", 2, 0, e, sizeof e) == 0, "words");
    int spaces = 0;
    for (const char *p = ds.items[0].prompt; *p; p++) spaces += *p == ' ';
    MC_CHECK(spaces == 4, "5 words -> 4 spaces (%d)", spaces);
    mc_dataset_free(&ds);
    MC_CHECK(mc_dataset_load(&ds, "synthetic:in=x", 2, 0, e, sizeof e) == -1, "bad spec rejected");
    /* bundled samples (found via MOECAP_ROOT set by the test runner) */
    if (mc_dataset_load(&ds, "gsm8k", 0, 0, e, sizeof e) == 0) {
        int ok = ds.n >= 20;
        for (size_t i = 0; i < ds.n; i++) { char c[64]; ok &= mc_canon_number(ds.items[i].expected, c, sizeof c); }
        MC_CHECK(ok, "gsm8k sample: %zu items, every reference a number", ds.n);
        mc_dataset_free(&ds);
    } else MC_CHECK(0, "gsm8k sample: %s", e);
    if (mc_dataset_load(&ds, "mc", 0, 0, e, sizeof e) == 0) {
        int ok = ds.n >= 10;
        for (size_t i = 0; i < ds.n; i++) ok &= ds.items[i].kind == MC_ITEM_CHOICE && ds.items[i].expected[0] >= 'A' && ds.items[i].expected[0] < 'A' + ds.items[i].nchoices;
        MC_CHECK(ok, "mc sample");
        mc_dataset_free(&ds);
    } else MC_CHECK(0, "mc sample: %s", e);
}

/* Every bundled GSM8K-format solution, given as the model's answer, must score 1 against
 * its own reference; the same text with the final number changed must score 0. */
static void test_sample_solutions_score(void)
{
    char dir[4096], path[4200];
    if (mc_dataset_dir(dir, sizeof dir)) { MC_CHECK(0, "no data dir"); return; }
    snprintf(path, sizeof path, "%s/gsm8k-sample.jsonl", dir);
    FILE *f = fopen(path, "r");
    MC_CHECK(f != NULL, "open %s", path);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
        struct mc_item it;
        char e[200];
        if (!cJSON_IsString(a) || mc_item_from_json(o, &it, e, sizeof e)) { MC_CHECK(0, "bad line %d", n); cJSON_Delete(o); continue; }
        MC_CHECK(mc_score_gsm8k(a->valuestring, it.expected) == 1, "line %d: own solution scores 1", n);
        char wrong[2048];
        snprintf(wrong, sizeof wrong, "%s1", a->valuestring);      /* "#### 29" -> "#### 291" */
        MC_CHECK(mc_score_gsm8k(wrong, it.expected) == 0, "line %d: changed number scores 0", n);
        free(it.prompt); free(it.expected);
        cJSON_Delete(o);
        n++;
    }
    free(line);
    fclose(f);
    MC_CHECK(n == 30, "30 items (%d)", n);
}

static void test_lmeval(void)
{
    char path[] = "/tmp/mc-lmeval-XXXXXX";
    int fd = mkstemp(path);
    const char *j = "{\"results\": {\"gsm8k\": {\"alias\": \"gsm8k\", \"exact_match,strict-match\": 0.75,"
                    " \"exact_match_stderr,strict-match\": 0.0119, \"exact_match,flexible-extract\": 0.78},"
                    " \"arc_easy\": {\"acc,none\": 0.6, \"acc_stderr,none\": \"N/A\", \"acc_norm,none\": 0.55},"
                    " \"old\": {\"acc\": 0.4, \"acc_stderr\": 0.02}, \"empty\": {\"alias\": \"x\"}},"
                    " \"n-samples\": {\"gsm8k\": {\"original\": 1319, \"effective\": 100}},"
                    " \"config\": {\"model\": \"local-completions\", \"model_args\": \"model=m\"}}";
    MC_CHECK(write(fd, j, strlen(j)) == (ssize_t)strlen(j), "write");
    close(fd);
    cJSON *o = NULL;
    char e[256];
    MC_CHECK(mc_lmeval_read(path, &o, e, sizeof e) == 0, "read: %s", e);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tasks");
    MC_CHECK(cJSON_GetArraySize(t) == 3, "3 tasks with metrics (%d)", cJSON_GetArraySize(t));
    for (int i = 0; i < cJSON_GetArraySize(t); i++) {
        const cJSON *x = cJSON_GetArrayItem(t, i);
        const char *name = cJSON_GetObjectItemCaseSensitive(x, "task")->valuestring;
        const char *m = cJSON_GetObjectItemCaseSensitive(x, "metric")->valuestring;
        double v = jnum(x, "value", NULL), se = jnum(x, "stderr", NULL), n = jnum(x, "n", NULL);
        if (!strcmp(name, "gsm8k")) MC_CHECK(!strcmp(m, "exact_match,strict-match") && v == 0.75 && se == 0.0119 && n == 100, "gsm8k");
        else if (!strcmp(name, "arc_easy")) MC_CHECK(!strcmp(m, "acc_norm,none") && v == 0.55 && isnan(se) && isnan(n), "arc");
        else if (!strcmp(name, "old")) MC_CHECK(!strcmp(m, "acc") && v == 0.4 && se == 0.02, "old style");
        else MC_CHECK(0, "unexpected task %s", name);
    }
    MC_CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(o, "model")->valuestring, "model=m"), "model");
    cJSON_Delete(o);
    fd = open(path, O_WRONLY | O_TRUNC);
    MC_CHECK(write(fd, "{\"x\":1}", 7) == 7, "write");
    close(fd);
    MC_CHECK(mc_lmeval_read(path, &o, e, sizeof e) == -1 && strstr(e, "results"), "no results -> error '%s'", e);
    MC_CHECK(mc_lmeval_read("/nonexistent/x.json", &o, e, sizeof e) == -1, "missing file");
    unlink(path);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

static void test_client_view(void)
{
    char dir[] = "/tmp/mc-client-view-XXXXXX";
    MC_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char p[256], e[256];
    /* no requests.jsonl: no client data, no error */
    MC_CHECK(mc_bench_client_view(dir, 1, e, sizeof e) == NULL && e[0] == 0, "absent log is not an error");
    /* two requests, written out of order; ttft 10 and 20 ms; SLO ttft <= 15 from the summary file */
    snprintf(p, sizeof p, "%s/requests.jsonl", dir);
    write_file(p, "{\"id\":1,\"ok\":true,\"ttft_ms\":20,\"e2el_ms\":50,\"output_tokens\":4,\"prompt_tokens\":3,"
                  "\"prompt_tokens_source\":\"usage\",\"start_ms\":0,\"kind\":\"gsm8k\",\"expected\":\"4\",\"score\":0}\n"
                  "{\"id\":0,\"ok\":true,\"ttft_ms\":10,\"e2el_ms\":40,\"output_tokens\":2,\"prompt_tokens\":5,"
                  "\"prompt_tokens_source\":\"usage\",\"start_ms\":0,\"kind\":\"gsm8k\",\"expected\":\"4\",\"score\":1}\n");
    snprintf(p, sizeof p, "%s/bench-summary.json", dir);
    write_file(p, "{\"duration_s\": 4, \"goodput\": {\"slo_ms\": {\"ttft\": 15}}, \"config\": {\"model\": \"m\"}}");
    cJSON *o = mc_bench_client_view(dir, 1, e, sizeof e);
    MC_CHECK(o != NULL, "view: %s", e);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "summary");
    MC_CHECK(jnum(s, "requests", NULL) == 2 && jnum(s, "duration_s", NULL) == 4 && jnum(s, "total_output_tokens", NULL) == 6 &&
             jnum(s, "total_input_tokens", NULL) == 8 && NEAR(jnum(s, "output_throughput", NULL), 1.5), "summary numbers");
    MC_CHECK(jnum(s, "goodput", "good_requests") == 1 && NEAR(jnum(s, "goodput", "request_goodput"), 0.25), "goodput with the run's SLO");
    MC_CHECK(NEAR(jnum(s, "accuracy", "accuracy"), 0.5), "accuracy 1/2");
    const cJSON *rq = cJSON_GetObjectItemCaseSensitive(o, "requests");
    MC_CHECK(cJSON_GetArraySize(rq) == 2 && jnum(cJSON_GetArrayItem(rq, 0), "id", NULL) == 0 &&
             jnum(cJSON_GetArrayItem(rq, 1), "score", NULL) == 0, "requests sorted by id with their scores");
    MC_CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "config"), "model")->valuestring, "m"), "config");
    cJSON_Delete(o);
    /* damaged log: a bad line followed by a good one */
    snprintf(p, sizeof p, "%s/requests.jsonl", dir);
    write_file(p, "{oops\n{\"id\":0,\"ok\":true}\n");
    MC_CHECK(mc_bench_client_view(dir, 1, e, sizeof e) == NULL && e[0] != 0, "damaged log reported: '%s'", e);
    /* truncated last line (a killed bench) is tolerated */
    write_file(p, "{\"id\":0,\"ok\":true}\n{\"id\":1,\"ok\":tr");
    o = mc_bench_client_view(dir, 0, e, sizeof e);
    MC_CHECK(o && jnum(cJSON_GetObjectItemCaseSensitive(o, "summary"), "requests", NULL) == 1 &&
             !cJSON_GetObjectItemCaseSensitive(o, "requests"), "truncated last line skipped; requests omitted on request");
    cJSON_Delete(o);
    unlink(p);
    snprintf(p, sizeof p, "%s/bench-summary.json", dir);
    unlink(p);
    rmdir(dir);
}

static void test_record_roundtrip(void)
{
    double itl[] = {1.5, 2.5};
    struct mc_req_record r = {.id = 3, .ok = 0, .error = "boom", .http_status = 500, .prompt_tokens = -1,
                              .output_tokens = 2, .chunks = 2, .start_ms = 1.25, .send_unix_ns = 1700000000123456000LL,
                              .ttft_ms = 4, .e2el_ms = 9, .tpot_ms = NAN, .itl_ms = itl, .n_itl = 2,
                              .answer = "a\"b\n", .expected = NULL, .kind = MC_ITEM_CHOICE, .score = -1,
                              .requested_max_tokens = 8};
    cJSON *o = mc_req_record_to_json(&r);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    MC_CHECK(!strchr(txt, '\n'), "one line");
    o = cJSON_Parse(txt);
    struct mc_req_record b;
    MC_CHECK(mc_req_record_from_json(o, &b) == 0, "parse back");
    MC_CHECK(b.id == 3 && !b.ok && !strcmp(b.error, "boom") && b.http_status == 500 && b.prompt_tokens == -1 &&
             b.output_tokens == 2 && b.n_itl == 2 && b.itl_ms[1] == 2.5 && isnan(b.tpot_ms) && b.ttft_ms == 4 &&
             !strcmp(b.answer, "a\"b\n") && !b.expected && b.kind == MC_ITEM_CHOICE && b.score == -1 &&
             b.requested_max_tokens == 8, "fields");
    MC_CHECK(llabs(b.send_unix_ns - r.send_unix_ns) < 1000, "ns timestamp survives (%lld)", (long long)b.send_unix_ns);
    mc_req_record_free(&b);
    cJSON_Delete(o);
    free(txt);
}

/* A log line is input: numbers outside a field's range must not reach a conversion
 * (undefined behaviour, which UBSan aborts on) and are read as unknown. */
static void test_record_hostile_numbers(void)
{
    const char *line = "{\"id\":9.9e18,\"ok\":true,\"http_status\":1e300,\"prompt_tokens\":-5,"
                       "\"output_tokens\":9.9e18,\"chunks\":-1e30,\"send_unix_ns\":1e40,\"score\":7,"
                       "\"max_tokens\":1e12,\"input_len\":-3,\"e2el_ms\":5}";
    cJSON *o = cJSON_Parse(line);
    struct mc_req_record r;
    int rc = mc_req_record_from_json(o, &r);
    cJSON_Delete(o);
    MC_CHECK(rc == 0, "a record with an id parses");
    MC_CHECK(r.id == -1 && r.http_status == 0 && r.prompt_tokens == -1 && r.output_tokens == 0 && r.chunks == 0 &&
             r.send_unix_ns == 0 && r.score == -1 && r.requested_max_tokens == 0 && r.requested_input_len == 0,
             "out-of-range numbers read as unknown (output_tokens %ld)", r.output_tokens);
    cJSON *s = mc_request_log_summary(&r, 1, NULL, 1.0);
    MC_CHECK(cJSON_GetObjectItem(s, "total_output_tokens")->valuedouble == 0, "summary total 0, not INT64_MIN");
    cJSON_Delete(s);
    mc_req_record_free(&r);
}

static void test_utf8(void)
{
    const struct { const char *in; size_t n; const char *want; } c[] = {
        {"plain \xe2\x82\xac ok", 12, "plain \xe2\x82\xac ok"},                 /* valid: unchanged */
        {"a\xff\xfe" "b", 4, "a\xef\xbf\xbd\xef\xbf\xbd" "b"},                 /* two bad bytes: two U+FFFD */
        {"x\xe2\x82", 3, "x\xef\xbf\xbd"},                                     /* truncated: one U+FFFD */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},                           /* overlong '/' */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},          /* a surrogate */
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* above U+10FFFF */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},                           /* U+1F600 */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *o = mc_utf8_sanitize(c[i].in, c[i].n);
        MC_CHECK(o && !strcmp(o, c[i].want), "case %zu", i);
        MC_CHECK(mc_utf8_valid(o, strlen(o)), "case %zu output valid", i);
        MC_CHECK(mc_utf8_valid(c[i].in, c[i].n) == !strcmp(c[i].in, c[i].want), "case %zu validity", i);
        free(o);
    }
    /* a record with bad bytes in answer and error serializes to valid UTF-8 */
    struct mc_req_record r = {.id = 1, .error = "bad \xff", .answer = "x\xc3", .ttft_ms = NAN, .tpot_ms = NAN,
                              .e2el_ms = 1, .score = -1};
    cJSON *j = mc_req_record_to_json(&r);
    char *t = cJSON_PrintUnformatted(j);
    MC_CHECK(t && mc_utf8_valid(t, strlen(t)) && strstr(t, "\"x\xef\xbf\xbd\""), "record text: %s", t);
    free(t);
    cJSON_Delete(j);
}

/* vllm-bench.json copies the summary's numbers under vLLM's names. */
static void test_vllm_compat(void)
{
    double itl[] = {10, 20, 30};
    struct mc_req_record r[2] = {
        {.id = 0, .ok = 1, .prompt_tokens = 5, .output_tokens = 4, .start_ms = 0, .ttft_ms = 100, .e2el_ms = 400,
         .tpot_ms = 100, .itl_ms = itl, .n_itl = 3, .score = -1},
        {.id = 1, .ok = 0, .error = "x", .prompt_tokens = -1, .start_ms = 10, .e2el_ms = 50, .ttft_ms = NAN,
         .tpot_ms = NAN, .score = -1}};
    struct mc_slo slo = {.ttft_ms = 200};
    cJSON *s = mc_request_log_summary(r, 2, &slo, 2.0);
    cJSON *cfg = cJSON_AddObjectToObject(s, "config");
    cJSON_AddNullToObject(cfg, "rate");
    cJSON_AddNumberToObject(cfg, "max_concurrency", 4);
    cJSON_AddNumberToObject(cfg, "num_requests", 2);
    cJSON *v = mc_vllm_bench_json(s);
#define NUM(k) cJSON_GetObjectItem(v, k)->valuedouble
    MC_CHECK(NUM("completed") == 1 && NUM("failed") == 1 && NUM("duration") == 2.0 && NUM("total_output_tokens") == 4,
             "counts");
    MC_CHECK(NUM("request_throughput") == 0.5 && NUM("output_throughput") == 2.0 && NUM("request_goodput") == 0.5,
             "throughputs");
    MC_CHECK(NUM("mean_itl_ms") == 20 && NUM("median_itl_ms") == 20 && fabs(NUM("std_itl_ms") - sqrt(200.0 / 3)) < 1e-12 &&
             fabs(NUM("p99_itl_ms") - 29.8) < 1e-12, "itl stats (hand-computed)");
    MC_CHECK(NUM("mean_ttft_ms") == 100 && NUM("p99_e2el_ms") == 400 && NUM("max_concurrency") == 4, "ttft/e2el");
    MC_CHECK(!strcmp(cJSON_GetObjectItem(v, "request_rate")->valuestring, "inf"), "closed loop: request_rate inf");
    MC_CHECK(NUM("total_input_tokens") == 5 && NUM("total_token_throughput") == 4.5, "input tokens of completed requests");
#undef NUM
    cJSON_Delete(v);
    cJSON_Delete(s);
}

/* The bundled-data search (trace/data_dir.h) that datasets and hardware profiles share: the
 * override variable first, then $MOECAP_ROOT/data/<kind>; an override that is not a
 * directory is passed over; the candidate list ends with the executable-relative ones and
 * ./data/<kind>. */
static void test_data_dirs(void)
{
    char root[] = "/tmp/mc-datadir-XXXXXX", p[4200], q[4200], got[4200];
    if (!mkdtemp(root)) { MC_CHECK(0, "mkdtemp"); return; }
    snprintf(p, sizeof p, "%s/data", root); mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/data/datasets", root); mkdir(p, 0700);
    snprintf(q, sizeof q, "%s/data/hardware", root); mkdir(q, 0700);
    char *saved_root = getenv("MOECAP_ROOT") ? strdup(getenv("MOECAP_ROOT")) : NULL;
    setenv("MOECAP_ROOT", root, 1);
    setenv("MOECAP_DATA_DIR", root, 1);   /* an override that exists wins */
    MC_CHECK(mc_dataset_dir(got, sizeof got) == 0 && !strcmp(got, root), "MOECAP_DATA_DIR first: %s", got);
    setenv("MOECAP_DATA_DIR", "/nonexistent/moecap", 1);   /* one that does not is passed over */
    MC_CHECK(mc_dataset_dir(got, sizeof got) == 0 && !strcmp(got, p), "then MOECAP_ROOT/data/datasets: %s", got);
    unsetenv("MOECAP_HW_DIR");
    MC_CHECK(mc_hw_profile_dir(got, sizeof got) == 0 && !strcmp(got, q), "hardware: MOECAP_ROOT/data/hardware: %s", got);
    char dirs[MC_DATA_DIRS_MAX][PATH_MAX];
    int n = mc_data_dirs("hardware", "MOECAP_HW_DIR", dirs);
    MC_CHECK(n == 4 && !strcmp(dirs[0], q) && strstr(dirs[1], "/../../data/hardware") &&
             strstr(dirs[2], "/../share/moecap/hardware") && !strcmp(dirs[3], "data/hardware"),
             "search order: %d: %s, %s, %s, %s", n, dirs[0], dirs[1], dirs[2], dirs[3]);
    unsetenv("MOECAP_DATA_DIR");
    if (saved_root) setenv("MOECAP_ROOT", saved_root, 1); else unsetenv("MOECAP_ROOT");
    free(saved_root);
    rmdir(p); rmdir(q);
    snprintf(p, sizeof p, "%s/data", root); rmdir(p);
    rmdir(root);
}

int main(void)
{
    MC_RUN(test_data_dirs);
    MC_RUN(test_record_hostile_numbers);
    MC_RUN(test_utf8);
    MC_RUN(test_vllm_compat);
    MC_RUN(test_gsm8k_extract);
    MC_RUN(test_gsm8k_score);
    MC_RUN(test_choice);
    MC_RUN(test_sse);
    MC_RUN(test_summary);
    MC_RUN(test_slo_parse);
    MC_RUN(test_items);
    MC_RUN(test_sample_solutions_score);
    MC_RUN(test_lmeval);
    MC_RUN(test_record_roundtrip);
    MC_RUN(test_client_view);
    return MC_TEST_EXIT();
}
