/* Trace Event Format writer of `moecap report --format perfetto` (see perfetto.h). */
#include "export/perfetto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "export/report_reader.h"

/* Synthetic tracks: GPU streams get thread ids above every real tid (Linux pid_max is at
 * most 2^22); client requests get a process of their own. */
#define GPU_TRACK_BASE (1 << 30)
#define CLIENT_PID 0x7ffffff0
#define KERNEL_MERGE_NS 1000000ull       /* merged kernel spans once over the budget */
#define COUNTER_THIN_NS 1000000000ull    /* one sample per second once over the budget */

enum { K_GEMM, K_LAYER, K_KERNEL, K_COUNTER, K_MAX };
static const char *kind_name[K_MAX] = {"gemm", "layer", "kernel", "counter"};

struct layer_state {          /* per profiled thread: the layer being drawn */
    int32_t pid, tid;
    int open, layer, ordinal, ffn_seen, moe;
    uint64_t t0, t1, gemms, gemm_ns;
};

struct kernel_track {         /* per (pid, device, stream): merging once over the budget */
    int32_t pid, device;
    uint64_t stream;
    int named;
    uint64_t t0, t1, count, busy_ns;   /* open merged span (count 0 = none) */
};

struct counter_state {        /* per (pid, counter name) */
    int32_t pid, device;
    char name[64], unit[16];
    int cumulative, have;
    uint64_t t_last, t_emitted;
    double v_last;
};

struct clock_pair { int32_t pid; uint64_t mono, real; };

struct mc_perfetto {
    FILE *f;
    char path[4096], tmp[4200];
    uint64_t max_events;
    int first;
    uint64_t written[K_MAX], over[K_MAX];
    struct layer_state *ls; size_t n_ls;
    struct kernel_track *kt; size_t n_kt;
    struct counter_state *cs; size_t n_cs;
    struct clock_pair clock; int have_clock;
};

/* ---------- output ---------- */

static void put_str(FILE *f, const char *s)
{
    cJSON *j = cJSON_CreateString(s ? s : "");
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(t ? t : "\"\"", f);
    free(t);
    cJSON_Delete(j);
}

static void us(FILE *f, uint64_t ns) { fprintf(f, "%" PRIu64 ".%03u", ns / 1000, (unsigned)(ns % 1000)); }

static void begin_event(struct mc_perfetto *p)
{
    fputs(p->first ? "\n" : ",\n", p->f);
    p->first = 0;
}

/* {"name":..,"cat":..,"ph":"X","ts":..,"dur":..,"pid":..,"tid":..,"args":{ (caller adds args and "}}") */
static void open_x(struct mc_perfetto *p, const char *name, const char *cat, uint64_t t0, uint64_t t1,
                   int32_t pid, int64_t tid)
{
    begin_event(p);
    fputs("{\"name\":", p->f); put_str(p->f, name);
    fprintf(p->f, ",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":", cat); us(p->f, t0);
    fputs(",\"dur\":", p->f); us(p->f, t1 > t0 ? t1 - t0 : 0);
    fprintf(p->f, ",\"pid\":%d,\"tid\":%" PRId64 ",\"args\":{", pid, tid);
}

static void metadata(struct mc_perfetto *p, const char *what, int32_t pid, int64_t tid, const char *name)
{
    begin_event(p);
    fprintf(p->f, "{\"name\":\"%s\",\"ph\":\"M\",\"ts\":0,\"pid\":%d,\"tid\":%" PRId64 ",\"args\":{\"name\":", what, pid, tid);
    put_str(p->f, name);
    fputs("}}", p->f);
}

static void num(FILE *f, double v)
{
    if (v != v || v > 1e300 || v < -1e300) fputs("0", f);
    else fprintf(f, "%.17g", v);
}

/* counter event with one series */
static void counter1(struct mc_perfetto *p, const char *name, int32_t pid, uint64_t t, const char *series, double v)
{
    begin_event(p);
    fputs("{\"name\":", p->f); put_str(p->f, name);
    fputs(",\"ph\":\"C\",\"ts\":", p->f); us(p->f, t);
    fprintf(p->f, ",\"pid\":%d,\"tid\":0,\"args\":{", pid);
    put_str(p->f, series); fputc(':', p->f); num(p->f, v);
    fputs("}}", p->f);
}

static int budget(struct mc_perfetto *p, int kind)
{
    if (p->written[kind] < p->max_events) { p->written[kind]++; return 1; }
    p->over[kind]++;
    return 0;
}

struct mc_perfetto *mc_perfetto_open(const char *path, uint64_t max_events, char *err, size_t errlen)
{
    struct mc_perfetto *p = calloc(1, sizeof *p);
    if (!p) { snprintf(err, errlen, "out of memory"); return NULL; }
    snprintf(p->path, sizeof p->path, "%s", path);
    snprintf(p->tmp, sizeof p->tmp, "%s.tmp", path);
    p->f = fopen(p->tmp, "w");
    if (!p->f) { snprintf(err, errlen, "cannot write %s: %s", p->tmp, strerror(errno)); free(p); return NULL; }
    p->max_events = max_events ? max_events : MC_PERFETTO_DEFAULT_MAX_EVENTS;
    p->first = 1;
    fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", p->f);
    return p;
}

/* ---------- layers and GEMMs (the attributor's observer) ---------- */

static struct layer_state *layer_state(struct mc_perfetto *p, int32_t pid, int32_t tid)
{
    for (size_t i = 0; i < p->n_ls; i++)
        if (p->ls[i].pid == pid && p->ls[i].tid == tid) return &p->ls[i];
    struct layer_state *n = realloc(p->ls, (p->n_ls + 1) * sizeof *n);
    if (!n) return NULL;
    p->ls = n;
    struct layer_state *s = &p->ls[p->n_ls++];
    memset(s, 0, sizeof *s);
    s->pid = pid; s->tid = tid; s->ordinal = -1;
    return s;
}

static void close_layer(struct mc_perfetto *p, struct layer_state *s)
{
    if (!s->open) return;
    s->open = 0;
    if (!budget(p, K_LAYER)) return;
    char name[48];
    snprintf(name, sizeof name, "layer %d%s", s->layer, s->moe ? " (moe)" : "");
    open_x(p, name, "layer", s->t0, s->t1, s->pid, s->tid);
    fprintf(p->f, "\"layer\":%d,\"gemms\":%" PRIu64 ",\"gemm_us\":", s->layer, s->gemms);
    us(p->f, s->gemm_ns);
    fputs("}}", p->f);
}

void mc_perfetto_gemm(void *user, int32_t pid, const struct mc_rec_gemm *g, enum mc_role role, int layer, int expert)
{
    struct mc_perfetto *p = user;
    struct layer_state *s = layer_state(p, pid, g->tid);
    if (!s) return;
    uint64_t t0 = g->t_begin_ns, t1 = g->t_end_ns > g->t_begin_ns ? g->t_end_ns : g->t_begin_ns;
    if (role == MC_ROLE_LM_HEAD) {            /* ends the last layer and the step */
        close_layer(p, s);
        s->ordinal = -1;
    } else if (role != MC_ROLE_UNKNOWN) {
        /* the layer: from the weight's name, else counted (a layer starts with attention) */
        int next;
        if (layer >= 0) next = layer;
        else if (role == MC_ROLE_ATTN && (!s->open || s->ffn_seen)) next = s->ordinal + 1;
        else next = s->open ? s->layer : s->ordinal + 1;
        if (!s->open || next != s->layer) {
            close_layer(p, s);
            s->open = 1; s->layer = next; s->ordinal = next; s->ffn_seen = 0; s->moe = 0;
            s->t0 = t0; s->gemms = 0; s->gemm_ns = 0;
        }
        if (role != MC_ROLE_ATTN) s->ffn_seen = 1;
        if (role == MC_ROLE_ROUTER || role == MC_ROLE_EXPERT) s->moe = 1;
    }
    if (s->open && role != MC_ROLE_LM_HEAD) {
        if (t1 > s->t1 || !s->gemms) s->t1 = t1;
        s->gemms++;
        s->gemm_ns += t1 - t0;
    }
    if (!budget(p, K_GEMM)) return;
    char name[64];
    if (role == MC_ROLE_EXPERT && expert >= 0) snprintf(name, sizeof name, "expert %d", expert);
    else snprintf(name, sizeof name, "%s", role == MC_ROLE_UNKNOWN ? "unattributed GEMM" : mc_role_name(role));
    open_x(p, name, "gemm", t0, t1, pid, g->tid);
    fprintf(p->f, "\"m\":%" PRId64 ",\"n\":%" PRId64 ",\"k\":%" PRId64 ",\"api\":\"%s\"", g->m, g->n, g->k,
            mc_api_name(g->api));
    if (layer >= 0) fprintf(p->f, ",\"layer\":%d", layer);
    if (g->device >= 0) fprintf(p->f, ",\"device\":%d,\"note\":\"host launch interval\"", g->device);
    fputs("}}", p->f);
}

/* ---------- kernels ---------- */

static struct kernel_track *kernel_track(struct mc_perfetto *p, int32_t pid, int32_t device, uint64_t stream)
{
    for (size_t i = 0; i < p->n_kt; i++)
        if (p->kt[i].pid == pid && p->kt[i].device == device && p->kt[i].stream == stream) return &p->kt[i];
    struct kernel_track *n = realloc(p->kt, (p->n_kt + 1) * sizeof *n);
    if (!n) return NULL;
    p->kt = n;
    struct kernel_track *k = &p->kt[p->n_kt++];
    memset(k, 0, sizeof *k);
    k->pid = pid; k->device = device; k->stream = stream;
    return k;
}

static int64_t kernel_tid(const struct kernel_track *k)
{
    return GPU_TRACK_BASE + (int64_t)(k->device & 0xff) * 65536 + (int64_t)(k->stream & 0xffff);
}

static void flush_merged(struct mc_perfetto *p, struct kernel_track *k)
{
    if (!k->count) return;
    open_x(p, "kernels (aggregated)", "kernel", k->t0, k->t1, k->pid, kernel_tid(k));
    fprintf(p->f, "\"count\":%" PRIu64 ",\"busy_us\":", k->count);
    us(p->f, k->busy_ns);
    fputs("}}", p->f);
    k->count = 0;
}

static void on_kernel(struct mc_perfetto *p, struct mc_trace *t, int32_t pid, const struct mc_rec_kernel *r)
{
    if (r->source != 0 || r->end_ns <= r->start_ns) return;   /* launch records carry no device time */
    struct kernel_track *k = kernel_track(p, pid, r->device, r->stream);
    if (!k) return;
    if (!k->named) {
        char name[64];
        snprintf(name, sizeof name, "GPU %d stream %" PRIu64, r->device, r->stream);
        metadata(p, "thread_name", pid, kernel_tid(k), name);
        k->named = 1;
    }
    if (budget(p, K_KERNEL)) {
        const char *name = mc_trace_str(t, r->name_str);
        open_x(p, name ? name : "kernel", "kernel", r->start_ns, r->end_ns, pid, kernel_tid(k));
        fprintf(p->f, "\"device\":%d,\"stream\":%" PRIu64 ",\"correlation_id\":%" PRIu64 ",\"grid\":[%u,%u,%u],\"block\":[%u,%u,%u]}}",
                r->device, r->stream, r->correlation_id, r->grid[0], r->grid[1], r->grid[2], r->block[0], r->block[1],
                r->block[2]);
        return;
    }
    if (k->count && r->start_ns >= k->t0 + KERNEL_MERGE_NS) flush_merged(p, k);
    if (!k->count) { k->t0 = r->start_ns; k->t1 = r->end_ns; k->busy_ns = 0; }
    if (r->end_ns > k->t1) k->t1 = r->end_ns;
    k->count++;
    k->busy_ns += r->end_ns - r->start_ns;
}

/* ---------- sampled counters ---------- */

static struct counter_state *counter_state(struct mc_perfetto *p, int32_t pid, int32_t device, const char *name)
{
    for (size_t i = 0; i < p->n_cs; i++)
        if (p->cs[i].pid == pid && p->cs[i].device == device && !strcmp(p->cs[i].name, name)) return &p->cs[i];
    struct counter_state *n = realloc(p->cs, (p->n_cs + 1) * sizeof *n);
    if (!n) return NULL;
    p->cs = n;
    struct counter_state *c = &p->cs[p->n_cs++];
    memset(c, 0, sizeof *c);
    c->pid = pid; c->device = device;
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

/* Cumulative counters are drawn as rates: energy as power (W), CPU seconds as cores busy. */
static void on_counter(struct mc_perfetto *p, struct mc_trace *t, int32_t pid, const struct mc_rec_counter *r)
{
    const char *name = mc_trace_str(t, r->name_str), *unit = mc_trace_str(t, r->unit_str);
    if (!name) return;
    struct counter_state *c = counter_state(p, pid, r->device, name);
    if (!c) return;
    if (!c->have) { snprintf(c->unit, sizeof c->unit, "%s", unit ? unit : ""); c->cumulative = r->cumulative; }
    double v = r->value;
    uint64_t tn = r->t_ns;
    if (c->have && tn <= c->t_last) return;
    /* once over the budget, one sample per second (a rate then spans the longer interval) */
    if (c->have && p->written[K_COUNTER] >= p->max_events && tn < c->t_emitted + COUNTER_THIN_NS) {
        p->over[K_COUNTER]++;
        if (!c->cumulative) { c->t_last = tn; c->v_last = v; }
        return;
    }
    char track[128], series[32];
    double out = v;
    int draw = 1;
    if (c->cumulative) {
        draw = c->have;
        double dt = (double)(tn - c->t_last) / 1e9, dv = v - c->v_last;
        double scale = !strcmp(c->unit, "uJ") ? 1e-6 : !strcmp(c->unit, "mJ") ? 1e-3 : 1;
        int energy = !strcmp(c->unit, "uJ") || !strcmp(c->unit, "mJ") || !strcmp(c->unit, "J");
        out = dt > 0 ? dv * scale / dt : 0;
        if (energy) { snprintf(track, sizeof track, "%s power", name); snprintf(series, sizeof series, "W"); }
        else if (!strcmp(c->unit, "s")) { snprintf(track, sizeof track, "%s", name); snprintf(series, sizeof series, "cores"); }
        else { snprintf(track, sizeof track, "%s rate", name); snprintf(series, sizeof series, "%s/s", c->unit); }
    } else {
        snprintf(track, sizeof track, "%s", name);
        snprintf(series, sizeof series, "%s", c->unit[0] ? c->unit : "value");
    }
    char full[160];
    if (r->device >= 0) snprintf(full, sizeof full, "GPU %d %s", r->device, track);
    else snprintf(full, sizeof full, "%s", track);
    c->have = 1; c->t_last = tn; c->v_last = v;
    if (!draw) return;
    c->t_emitted = tn;
    p->written[K_COUNTER]++;
    counter1(p, full, pid, tn, series, out);
}

/* ---------- processes and threads ---------- */

static void on_process(struct mc_perfetto *p, struct mc_trace *t, const struct mc_trace_rec *rec)
{
    const struct mc_rec_process *r = &rec->u.process;
    const char *exe = mc_trace_str(t, r->exe_str);
    const char *base = exe ? strrchr(exe, '/') : NULL;
    char name[256];
    snprintf(name, sizeof name, "%s (pid %d)", base ? base + 1 : exe ? exe : "process", r->pid);
    metadata(p, "process_name", r->pid, 0, name);
    if (!p->have_clock) {   /* client requests are placed with the first process's clock pair */
        p->clock.pid = r->pid; p->clock.mono = r->monotonic_ns; p->clock.real = r->realtime_ns;
        p->have_clock = 1;
    }
}

void mc_perfetto_record(void *user, struct mc_trace *t, int32_t pid, const struct mc_trace_rec *rec)
{
    struct mc_perfetto *p = user;
    switch (rec->type) {
    case MC_REC_PROCESS: on_process(p, t, rec); break;
    case MC_REC_THREAD: {
        const char *n = mc_trace_str(t, rec->u.thread.name_str);
        char name[96];
        snprintf(name, sizeof name, "%s (tid %d)", n && *n ? n : "thread", rec->u.thread.tid);
        metadata(p, "thread_name", pid, rec->u.thread.tid, name);
        break;
    }
    case MC_REC_KERNEL: on_kernel(p, t, pid, &rec->u.kernel); break;
    case MC_REC_COUNTER: on_counter(p, t, pid, &rec->u.counter); break;
    default: break;
    }
}

/* ---------- from the report document: steps, per-step counters, client requests ---------- */

/* A number of the document; exact integers the JSON writer prints verbatim (send_unix_ns)
 * are raw text in the tree. */
static double jnum(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsRaw(v) && v->valuestring) {
        char *end;
        double d = strtod(v->valuestring, &end);
        return end != v->valuestring && !*end ? d : dflt;
    }
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void put_arg(FILE *f, int *first, const char *k, const cJSON *v)
{
    if (!cJSON_IsNumber(v)) return;
    fprintf(f, "%s\"%s\":", *first ? "" : ",", k);
    num(f, v->valuedouble);
    *first = 0;
}

static void step_events(struct mc_perfetto *p, const cJSON *s)
{
    int32_t pid = (int32_t)jnum(s, "pid", 0), tid = (int32_t)jnum(s, "tid", 0);
    uint64_t t0 = (uint64_t)jnum(s, "t_begin_ns", 0), t1 = (uint64_t)jnum(s, "t_end_ns", 0);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(s, "kind");
    char name[64];
    snprintf(name, sizeof name, "%s step %.0f", cJSON_IsString(kind) ? kind->valuestring : "step", jnum(s, "step", 0));
    open_x(p, name, "step", t0, t1, pid, tid);
    int first = 1;
    static const char *args[] = {"step", "tokens", "sequences", "activated_experts", "gemm_calls", "s_mbu", "s_mfu", "mbu", "mfu"};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        put_arg(p->f, &first, args[i], cJSON_GetObjectItemCaseSensitive(s, args[i]));
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "bytes"), *fl = cJSON_GetObjectItemCaseSensitive(s, "flops");
    put_arg(p->f, &first, "bytes", cJSON_GetObjectItemCaseSensitive(b, "total"));
    put_arg(p->f, &first, "flops", cJSON_GetObjectItemCaseSensitive(fl, "total"));
    fputs("}}", p->f);

    counter1(p, "tokens per step", pid, t0, "tokens", jnum(s, "tokens", 0));
    counter1(p, "sequences per step", pid, t0, "sequences", jnum(s, "sequences", 0));
    const cJSON *smbu = cJSON_GetObjectItemCaseSensitive(s, "s_mbu");
    if (cJSON_IsNumber(smbu)) counter1(p, "S-MBU per step", pid, t0, "s_mbu", smbu->valuedouble);
    const cJSON *smfu = cJSON_GetObjectItemCaseSensitive(s, "s_mfu");
    if (cJSON_IsNumber(smfu)) counter1(p, "S-MFU per step", pid, t0, "s_mfu", smfu->valuedouble);
    /* activated experts: one series per MoE layer */
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(s, "layers"), *l;
    int any = 0;
    cJSON_ArrayForEach(l, layers) {
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(l, "experts");
        if (!cJSON_IsArray(ex)) continue;
        if (!any) {
            begin_event(p);
            fputs("{\"name\":\"activated experts per layer\",\"ph\":\"C\",\"ts\":", p->f); us(p->f, t0);
            fprintf(p->f, ",\"pid\":%d,\"tid\":0,\"args\":{", pid);
        }
        fprintf(p->f, "%s\"layer %d\":%d", any ? "," : "", (int)jnum(l, "layer", -1), cJSON_GetArraySize(ex));
        any = 1;
    }
    if (any) fputs("}}", p->f);
}

/* Requests overlap; Perfetto nests only properly nested events of one track, so each
 * request goes to the first lane whose last request has ended. */
static int request_events(struct mc_perfetto *p, const cJSON *client, cJSON *notes)
{
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(client, "requests");
    int n = cJSON_GetArraySize(reqs);
    if (n <= 0) return 0;
    if (!p->have_clock) {
        cJSON_AddItemToArray(notes, cJSON_CreateString("client requests not drawn: no process record with a clock pair"));
        return 0;
    }
    struct rq { uint64_t t0, t1, ttft; const cJSON *o; } *rq = calloc((size_t)n, sizeof *rq);
    uint64_t *lane_end = calloc((size_t)n, sizeof *lane_end);
    if (!rq || !lane_end) { free(rq); free(lane_end); return -1; }
    int m = 0;
    const cJSON *r;
    int64_t off = (int64_t)p->clock.mono - (int64_t)p->clock.real;
    cJSON_ArrayForEach(r, reqs) {
        double send = jnum(r, "send_unix_ns", -1), e2el = jnum(r, "e2el_ms", -1);
        if (send < 0 || e2el < 0) continue;
        rq[m].t0 = (uint64_t)((int64_t)send + off);
        rq[m].t1 = rq[m].t0 + (uint64_t)(e2el * 1e6);
        double ttft = jnum(r, "ttft_ms", -1);
        rq[m].ttft = ttft >= 0 && ttft <= e2el ? (uint64_t)(ttft * 1e6) : 0;
        rq[m].o = r;
        m++;
    }
    for (int i = 1; i < m; i++)   /* by send time (insertion: logs are nearly in order) */
        for (int j = i; j > 0 && rq[j].t0 < rq[j - 1].t0; j--) { struct rq x = rq[j]; rq[j] = rq[j - 1]; rq[j - 1] = x; }
    metadata(p, "process_name", CLIENT_PID, 0, "client requests (moecap bench)");
    int lanes = 0;
    for (int i = 0; i < m; i++) {
        int lane = 0;
        while (lane < lanes && lane_end[lane] > rq[i].t0) lane++;
        if (lane == lanes) {
            char nm[32];
            snprintf(nm, sizeof nm, "lane %d", lane + 1);
            metadata(p, "thread_name", CLIENT_PID, lane + 1, nm);
            lanes++;
        }
        lane_end[lane] = rq[i].t1;
        char name[48];
        snprintf(name, sizeof name, "request %.0f", jnum(rq[i].o, "id", i));
        open_x(p, name, "request", rq[i].t0, rq[i].t1, CLIENT_PID, lane + 1);
        int first = 1;
        static const char *args[] = {"id", "prompt_tokens", "output_tokens", "ttft_ms", "tpot_ms", "e2el_ms", "score"};
        for (size_t k = 0; k < sizeof args / sizeof args[0]; k++)
            put_arg(p->f, &first, args[k], cJSON_GetObjectItemCaseSensitive(rq[i].o, args[k]));
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(rq[i].o, "ok");
        fprintf(p->f, "%s\"ok\":%s}}", first ? "" : ",", cJSON_IsTrue(ok) ? "true" : "false");
        if (rq[i].ttft) {
            open_x(p, "TTFT", "request", rq[i].t0, rq[i].t0 + rq[i].ttft, CLIENT_PID, lane + 1);
            fputs("}}", p->f);
        }
    }
    free(rq); free(lane_end);
    return m;
}

struct mc_perfetto *mc_perfetto_for_report(const char *formats, const char *out_dir, uint64_t max_events,
                                           struct mc_attrib *at, int *failed, char *err, size_t errlen)
{
    *failed = 0;
    if (!strstr(formats, "perfetto")) return NULL;
    mkdir(out_dir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/report.perfetto.json", out_dir);
    struct mc_perfetto *p = mc_perfetto_open(path, max_events, err, errlen);
    if (!p) { *failed = 1; return NULL; }
    mc_attrib_observe_gemms(at, mc_perfetto_gemm, p);
    return p;
}

static void release(struct mc_perfetto *p)
{
    free(p->ls); free(p->kt); free(p->cs);
    free(p);
}

void mc_perfetto_abort(struct mc_perfetto *p)
{
    if (!p) return;
    fclose(p->f);
    remove(p->tmp);
    release(p);
}

int mc_perfetto_finish(struct mc_perfetto *p, const struct report_doc *doc, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->n_ls; i++) close_layer(p, &p->ls[i]);
    for (size_t i = 0; i < p->n_kt; i++) flush_merged(p, &p->kt[i]);
    struct report_reader d;
    report_reader_open(&d, doc);
    uint64_t steps = 0;
    for (cJSON *s; (s = report_reader_next_step(&d));) { step_events(p, s); cJSON_Delete(s); steps++; }
    cJSON *notes = cJSON_CreateArray();
    int requests = request_events(p, cJSON_GetObjectItemCaseSensitive(d.root, "client"), notes);
    report_reader_close(&d);

    /* what was aggregated, and the limits, for whoever opens the file */
    fputs("\n],\n\"otherData\":{\"generator\":\"moecap report --format perfetto\",\"clock\":\"CLOCK_MONOTONIC of the profiled processes, microseconds\"", p->f);
    fprintf(p->f, ",\"steps\":%" PRIu64 ",\"requests\":%d,\"max_events_per_kind\":%" PRIu64, steps, requests, p->max_events);
    cJSON *agg = cJSON_CreateArray();
    static const char *what[K_MAX] = {
        "GEMM calls beyond the budget are not drawn one by one; every layer event still counts its GEMMs in args (gemms, gemm_us)",
        "layer spans beyond the budget are not drawn; their steps are",
        "GPU kernels beyond the budget are merged per stream into \"kernels (aggregated)\" spans of at least 1 ms (args: count, busy_us)",
        "sampled counters beyond the budget are thinned to one sample per second per counter (rates span the longer interval)"};
    for (int k = 0; k < K_MAX; k++) {
        if (!p->over[k]) continue;
        char msg[320];
        snprintf(msg, sizeof msg, "%s: %" PRIu64 " %s event(s) after the first %" PRIu64, what[k], p->over[k], kind_name[k],
                 p->written[k]);
        cJSON_AddItemToArray(agg, cJSON_CreateString(msg));
    }
    char *a = cJSON_PrintUnformatted(agg), *nt = cJSON_PrintUnformatted(notes);
    fprintf(p->f, ",\"aggregated\":%s,\"notes\":%s}}\n", a ? a : "[]", nt ? nt : "[]");
    free(a); free(nt);
    cJSON_Delete(agg); cJSON_Delete(notes);
    int rc = 0;
    if (fclose(p->f) != 0 || rename(p->tmp, p->path) != 0) {
        snprintf(err, errlen, "writing %s failed: %s", p->path, strerror(errno));
        remove(p->tmp);
        rc = -1;
    }
    release(p);
    return rc;
}
