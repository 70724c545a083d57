/* Dataset loading and synthetic prompt generation for `moecap bench` (see dataset.h). */
#include "dataset.h"
#include "trace/data_dir.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }


int mc_dataset_dir(char *out, size_t outsz)
{
    return mc_data_dir("datasets", "MOECAP_DATA_DIR", out, outsz);
}

static char *concat_fmt(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

int mc_item_from_json(const cJSON *obj, struct mc_item *it, char *err, size_t errsz)
{
    memset(it, 0, sizeof *it);
    if (!cJSON_IsObject(obj)) { snprintf(err, errsz, "not a JSON object"); return -1; }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "question");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "answer");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(obj, "choices");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, "expected");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (cJSON_IsString(q) && cJSON_IsArray(ch)) {
        int nc = cJSON_GetArraySize(ch);
        if (nc < 2 || nc > 26) { snprintf(err, errsz, "\"choices\" must have 2..26 entries"); return -1; }
        size_t cap = strlen(q->valuestring) + 128;
        const cJSON *c;
        cJSON_ArrayForEach(c, ch) {
            if (!cJSON_IsString(c)) { snprintf(err, errsz, "\"choices\" entries must be strings"); return -1; }
            cap += strlen(c->valuestring) + 8;
        }
        char *s = malloc(cap);
        if (!s) { snprintf(err, errsz, "out of memory"); return -1; }
        size_t o = (size_t)snprintf(s, cap, "%s\n\n", q->valuestring);
        int i = 0;
        cJSON_ArrayForEach(c, ch) o += (size_t)snprintf(s + o, cap - o, "%c. %s\n", 'A' + i++, c->valuestring);
        snprintf(s + o, cap - o, "Answer with the letter of the correct option.\nAnswer:");
        it->prompt = s;
        it->kind = MC_ITEM_CHOICE;
        it->nchoices = nc;
        if (cJSON_IsString(a)) it->expected = xstrdup(a->valuestring);
        else if (cJSON_IsNumber(a) && a->valueint >= 0 && a->valueint < nc) {
            char l[2] = {(char)('A' + a->valueint), 0};       /* 0-based index form */
            it->expected = xstrdup(l);
        }
        return 0;
    }
    if (cJSON_IsString(q)) {
        it->prompt = concat_fmt("Question: ", q->valuestring,
            "\nSolve it step by step, then write the final answer on its own line as \"#### <number>\".\nAnswer:");
        it->kind = MC_ITEM_GSM8K;
        if (cJSON_IsString(a)) {
            const char *h = strstr(a->valuestring, "####");
            const char *v = h ? h + 4 : a->valuestring;
            while (isspace((unsigned char)*v)) v++;
            it->expected = xstrdup(v);
            size_t l = strlen(it->expected);
            while (l && isspace((unsigned char)it->expected[l - 1])) it->expected[--l] = 0;
        } else if (cJSON_IsNumber(a)) {
            char b[64];
            snprintf(b, sizeof b, "%.17g", a->valuedouble);
            it->expected = xstrdup(b);
        }
        return it->prompt ? 0 : -1;
    }
    if (cJSON_IsString(p)) {
        it->prompt = xstrdup(p->valuestring);
        if (cJSON_IsString(x)) it->expected = xstrdup(x->valuestring);
        it->kind = MC_ITEM_PLAIN;
        if (cJSON_IsString(t)) {
            if (!strcmp(t->valuestring, "gsm8k") || !strcmp(t->valuestring, "number")) it->kind = MC_ITEM_GSM8K;
            else if (!strcmp(t->valuestring, "choice")) it->kind = MC_ITEM_CHOICE;
        }
        const cJSON *nc = cJSON_GetObjectItemCaseSensitive(obj, "nchoices");
        if (cJSON_IsNumber(nc)) it->nchoices = nc->valueint;
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(obj, "max_tokens");
        if (cJSON_IsNumber(mt) && mt->valueint > 0) it->max_tokens = mt->valueint;
        it->ignore_eos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "ignore_eos"));
        return 0;
    }
    snprintf(err, errsz, "needs \"question\" (GSM8K / with \"choices\") or \"prompt\"");
    return -1;
}

static int load_file(struct mc_dataset *ds, const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, errsz, "cannot open dataset %s: %s", path, strerror(errno)); return -1; }
    size_t cap = 0;
    char *line = NULL;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    size_t icap = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        cJSON *obj = cJSON_Parse(s);
        if (!obj) {
            snprintf(err, errsz, "%s:%ld: not valid JSON (one object per line expected)", path, lineno);
            rc = -1; break;
        }
        if (ds->n == icap) {
            icap = icap ? icap * 2 : 64;
            struct mc_item *ni = realloc(ds->items, icap * sizeof *ni);
            if (!ni) { cJSON_Delete(obj); snprintf(err, errsz, "out of memory"); rc = -1; break; }
            ds->items = ni;
        }
        char e2[200];
        if (mc_item_from_json(obj, &ds->items[ds->n], e2, sizeof e2)) {
            snprintf(err, errsz, "%s:%ld: %s", path, lineno, e2);
            cJSON_Delete(obj);
            rc = -1; break;
        }
        ds->n++;
        cJSON_Delete(obj);
    }
    free(line);
    fclose(f);
    if (rc == 0 && ds->n == 0) { snprintf(err, errsz, "dataset %s has no items", path); rc = -1; }
    return rc;
}

static unsigned long long splitmix(unsigned long long *s)
{
    unsigned long long z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Common English words that are one token in the usual BPE vocabularies. */
static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "are", "as",
    "with", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word",
    "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there",
    "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other",
    "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make",
    "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see",
    "number", "no", "way", "could", "people", "my", "than", "first", "water", "been",
};

static int parse_synth(const char *spec, int *in, int *out, int *bytes)
{
    *in = 128; *out = 64; *bytes = 0;
    const char *p = spec + strlen("synthetic");
    if (*p == ':') p++;
    else if (*p) return -1;
    while (*p) {
        char key[16] = {0}, val[32] = {0};
        size_t k = 0, v = 0;
        while (*p && *p != '=' && *p != ',' && k < sizeof key - 1) key[k++] = *p++;
        if (*p != '=') return -1;
        p++;
        while (*p && *p != ',' && v < sizeof val - 1) val[v++] = *p++;
        if (*p == ',') p++;
        if (!strcmp(key, "unit")) {
            if (!strcmp(val, "bytes")) *bytes = 1;
            else if (!strcmp(val, "words")) *bytes = 0;
            else return -1;
            continue;
        }
        char *end;
        long x = strtol(val, &end, 10);
        if (*end || x < 1 || x > 1000000) return -1;
        if (!strcmp(key, "in")) *in = (int)x;
        else if (!strcmp(key, "out")) *out = (int)x;
        else return -1;
    }
    return 0;
}

static int make_synthetic(struct mc_dataset *ds, const char *spec, size_t n, unsigned long long seed,
                          char *err, size_t errsz)
{
    int in, out, bytes;
    if (parse_synth(spec, &in, &out, &bytes)) {
        snprintf(err, errsz, "bad synthetic spec '%s' (expected synthetic:in=N,out=M[,unit=bytes|words])", spec);
        return -1;
    }
    if (n == 0) n = 16;
    ds->items = calloc(n, sizeof *ds->items);
    if (!ds->items) { snprintf(err, errsz, "out of memory"); return -1; }
    unsigned long long s = seed ^ 0x6d6f65636170ull;
    size_t nw = sizeof words / sizeof words[0];
    for (size_t i = 0; i < n; i++) {
        size_t cap = bytes ? (size_t)in + 1 : (size_t)in * 8 + 1;
        char *t = malloc(cap);
        if (!t) { snprintf(err, errsz, "out of memory"); return -1; }
        size_t o = 0;
        if (bytes) {
            /* exactly `in` bytes: lower-case letters, a space every few */
            for (int k = 0; k < in; k++)
                t[o++] = (k % 6 == 5) ? ' ' : (char)('a' + splitmix(&s) % 26);
        } else {
            for (int k = 0; k < in; k++) {
                const char *w = words[splitmix(&s) % nw];
                o += (size_t)snprintf(t + o, cap - o, "%s%s", k ? " " : "", w);
            }
        }
        t[o] = 0;
        ds->items[i].prompt = t;
        ds->items[i].kind = MC_ITEM_PLAIN;
        ds->items[i].max_tokens = out;
        ds->items[i].input_len = in;
        ds->items[i].ignore_eos = 1;
        ds->n++;
    }
    ds->synthetic = 1;
    return 0;
}

int mc_dataset_load(struct mc_dataset *ds, const char *spec, size_t n, unsigned long long seed,
                    char *err, size_t errsz)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", spec);
    if (!strncmp(spec, "synthetic", 9) && (spec[9] == 0 || spec[9] == ':')) {
        snprintf(ds->name, sizeof ds->name, "synthetic");
        return make_synthetic(ds, spec, n, seed, err, errsz);
    }
    const char *file = NULL;
    if (!strcmp(spec, "gsm8k")) file = "gsm8k-sample.jsonl";
    else if (!strcmp(spec, "mc") || !strcmp(spec, "multiple-choice") || !strcmp(spec, "choice"))
        file = "mc-sample.jsonl";
    if (file) {
        char dir[4000];
        if (mc_dataset_dir(dir, sizeof dir)) {
            snprintf(err, errsz, "bundled dataset '%s' not found: set MOECAP_DATA_DIR or MOECAP_ROOT, or pass a file", spec);
            return -1;
        }
        snprintf(ds->source, sizeof ds->source, "%s/%s", dir, file);
        snprintf(ds->name, sizeof ds->name, "%s", !strcmp(spec, "gsm8k") ? "gsm8k" : "mc");
        return load_file(ds, ds->source, err, errsz);
    }
    const char *b = strrchr(spec, '/');
    snprintf(ds->name, sizeof ds->name, "%s", b ? b + 1 : spec);
    return load_file(ds, spec, err, errsz);
}

void mc_dataset_free(struct mc_dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++) { free(ds->items[i].prompt); free(ds->items[i].expected); }
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}
