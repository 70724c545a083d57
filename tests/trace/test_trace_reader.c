/* Trace reader library tests: synthesized traces with known content read back exactly;
 * older (shorter) and newer (longer) records, unknown types, truncation at every byte,
 * corrupt headers and random bytes never crash and give the documented status; 1.2 files
 * with record rings left in every state a kill can leave them read each committed record
 * exactly once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mc_test.h"
#include "trace/trace_reader.h"
#include "trace/trace_synth.h"

static char dir[256];
static char path_a[300];

/* A trace with: process (argv a b), two strings, 3 GEMMs (m = 1,2,3), one unknown type 999,
 * one short (old-writer) GEMM of 64 bytes, one long (new-writer) GEMM with 16 extra bytes. */
static long write_sample(const char *path)
{
    struct mc_synth *w = mc_synth_open(path);
    if (!w) return -1;
    struct mc_rec_process p;
    memset(&p, 0, sizeof p);
    p.pid = 42; p.ppid = 1; p.argc = 2; p.argv_bytes = 4;
    p.host_str = 1; p.exe_str = 2; /* defined after the process record, as the shim does */
    mc_synth_record_var(w, MC_REC_PROCESS, &p, sizeof p, "a\0b\0", 4);
    mc_synth_string(w, "hostA");
    mc_synth_string(w, "/bin/exe");
    for (int i = 1; i <= 3; i++) {
        struct mc_rec_gemm g;
        memset(&g, 0, sizeof g);
        g.m = i; g.n = 10 * i; g.k = 100 * i; g.api = MC_API_CBLAS_SGEMM; g.alpha = 1.5;
        mc_synth_record(w, MC_REC_GEMM, &g, sizeof g);
    }
    uint64_t junk[3] = {1, 2, 3};
    struct mc_rec_header h = {0};
    mc_synth_record_var(w, 999, &h, sizeof h, junk, sizeof junk);
    struct mc_rec_gemm g;
    memset(&g, 0, sizeof g);
    g.m = 7; g.n = 8; g.k = 9; g.api = MC_API_SGEMM_F77;
    mc_synth_record(w, MC_REC_GEMM, &g, 64); /* m n k within the first 64 bytes */
    unsigned char big[sizeof g + 16];
    memset(big, 0xab, sizeof big);
    g.m = 11; g.n = 12; g.k = 13;
    memcpy(big, &g, sizeof g);
    mc_synth_record(w, MC_REC_GEMM, big, sizeof big);
    return mc_synth_close(w) == 0 ? 0 : -1;
}

static void test_roundtrip(void)
{
    MC_CHECK(write_sample(path_a) == 0, "synth failed");
    char err[256];
    struct mc_trace *t = mc_trace_open(path_a, err, sizeof err);
    MC_CHECK(t != NULL, "%s", err);
    if (!t) return;
    struct mc_trace_rec r;
    int st, ngemm = 0, nstr = 0, nproc = 0;
    int64_t ms[8] = {0};
    while ((st = mc_trace_next(t, &r)) == MC_TRACE_RECORD) {
        if (r.type == MC_REC_PROCESS) {
            nproc++;
            MC_CHECK(r.u.process.pid == 42, "pid %d", r.u.process.pid);
            MC_CHECK(r.var_len == 4 && !memcmp(r.var, "a\0b\0", 4), "argv");
            const char *h = mc_trace_str(t, r.u.process.host_str); /* forward reference */
            MC_CHECK(h && !strcmp(h, "hostA"), "host %s", h ? h : "(null)");
            const char *e = mc_trace_str(t, r.u.process.exe_str);
            MC_CHECK(e && !strcmp(e, "/bin/exe"), "exe");
        } else if (r.type == MC_REC_STRING) {
            nstr++;
        } else if (r.type == MC_REC_GEMM) {
            if (ngemm < 8) ms[ngemm] = r.u.gemm.m;
            if (ngemm == 3) { /* short record: fields past byte 64 read as zero */
                MC_CHECK(r.u.gemm.k == 9 && r.u.gemm.api == 0 && r.u.gemm.alpha == 0, "short record k=%lld api=%u",
                         (long long)r.u.gemm.k, r.u.gemm.api);
                MC_CHECK(r.size == 64, "size %u", r.size);
            }
            if (ngemm == 4) MC_CHECK(r.u.gemm.k == 13 && r.u.gemm.api == MC_API_SGEMM_F77, "long record");
            if (ngemm < 3) MC_CHECK(r.u.gemm.alpha == 1.5 && r.u.gemm.n == 10 * (ngemm + 1), "gemm fields");
            ngemm++;
        }
    }
    MC_CHECK(st == MC_TRACE_END, "status %d %s", st, mc_trace_error(t));
    MC_CHECK(nproc == 1 && nstr == 2 && ngemm == 5, "counts %d %d %d", nproc, nstr, ngemm);
    MC_CHECK(ms[0] == 1 && ms[1] == 2 && ms[2] == 3 && ms[3] == 7 && ms[4] == 11, "order");
    MC_CHECK(mc_trace_unknown_skipped(t) == 1, "unknown %llu", (unsigned long long)mc_trace_unknown_skipped(t));
    MC_CHECK(mc_trace_str(t, 0) == NULL && mc_trace_str(t, 3) == NULL && mc_trace_str(t, 1u << 30) == NULL, "bad ids");
    mc_trace_close(t);
}

/* The compact CPU GEMM record comes out as a MC_REC_GEMM with the implied fields set. */
static void test_gemm_cpu_expanded(void)
{
    char p[320], err[256];
    snprintf(p, sizeof p, "%s/cpu.mct", dir);
    struct mc_synth *w = mc_synth_open(p);
    struct mc_rec_gemm_cpu c;
    memset(&c, 0, sizeof c);
    c.t_begin_ns = 100; c.t_end_ns = 250; c.a = 0x1000; c.b = 0x2000; c.c = 0x3000;
    c.m = 3; c.n = 64; c.k = 32; c.lda = 32; c.ldb = 32; c.ldc = 64; c.alpha = 0.5; c.beta = 1;
    c.tid = 77; c.callsite = 4; c.api = MC_API_CBLAS_SGEMM; c.dtype_a = c.dtype_b = c.dtype_c = c.dtype_compute = MC_DT_F32;
    c.layout = MC_LAYOUT_ROW_MAJOR; c.trans_b = MC_OP_T;
    mc_synth_record(w, MC_REC_GEMM_CPU, &c, sizeof c);
    mc_synth_close(w);
    struct mc_trace *t = mc_trace_open(p, err, sizeof err);
    struct mc_trace_rec r;
    MC_CHECK(t && mc_trace_next(t, &r) == MC_TRACE_RECORD, "read");
    if (!t) return;
    const struct mc_rec_gemm *g = &r.u.gemm;
    MC_CHECK(r.type == MC_REC_GEMM && g->h.type == MC_REC_GEMM && r.size == 112, "type %u size %u", r.type, r.size);
    MC_CHECK(g->m == 3 && g->n == 64 && g->k == 32 && g->lda == 32 && g->ldb == 32 && g->ldc == 64, "dims");
    MC_CHECK(g->t_begin_ns == 100 && g->t_end_ns == 250 && g->a == 0x1000 && g->b == 0x2000 && g->c == 0x3000, "times/ptrs");
    MC_CHECK(g->alpha == 0.5 && g->beta == 1 && g->tid == 77 && g->callsite == 4 && g->api == MC_API_CBLAS_SGEMM, "scalars");
    MC_CHECK(g->batch == 1 && g->device == -1 && g->stream == 0 && g->layout == MC_LAYOUT_ROW_MAJOR && g->trans_b == MC_OP_T &&
             g->dtype_c == MC_DT_F32, "implied fields");
    MC_CHECK(mc_trace_next(t, &r) == MC_TRACE_END, "end");
    mc_trace_close(t);
}

static long file_size(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Record boundaries of the sample, computed from the record sizes we wrote. */
static void test_truncation_every_byte(void)
{
    long n = file_size(path_a);
    MC_CHECK(n > 0, "size");
    FILE *f = fopen(path_a, "rb");
    unsigned char *all = malloc((size_t)n);
    MC_CHECK(f && all && fread(all, 1, (size_t)n, f) == (size_t)n, "read");
    if (f) fclose(f);
    /* Boundaries: header 24, then each record's size field. */
    long bounds[64];
    int nb = 0;
    long off = sizeof(struct mc_file_header);
    bounds[nb++] = off;
    while (off < n && nb < 64) {
        struct mc_rec_header h;
        memcpy(&h, all + off, sizeof h);
        off += h.size;
        bounds[nb++] = off;
    }
    MC_CHECK(off == n, "walk");
    char p[320];
    snprintf(p, sizeof p, "%s/trunc.mct", dir);
    int bad = 0;
    for (long cut = 0; cut <= n; cut++) {
        FILE *o = fopen(p, "wb");
        fwrite(all, 1, (size_t)cut, o);
        fclose(o);
        char err[256];
        struct mc_trace *t = mc_trace_open(p, err, sizeof err);
        if (cut < (long)sizeof(struct mc_file_header)) {
            if (cut < 16 && t) bad++;
            if (t) mc_trace_close(t);
            continue;
        }
        if (!t) { bad++; continue; }
        struct mc_trace_rec r;
        int st;
        long whole = 0;
        while ((st = mc_trace_next(t, &r)) == MC_TRACE_RECORD) {}
        whole = (long)mc_trace_records(t);
        int at_bound = 0;
        long expect_whole = 0;
        for (int i = 0; i < nb; i++) {
            if (bounds[i] == cut) at_bound = 1;
            if (bounds[i] <= cut) expect_whole = i;
        }
        if (at_bound ? st != MC_TRACE_END : st != MC_TRACE_TRUNCATED) {
            bad++;
            printf("# cut %ld: status %d (%s)\n", cut, st, mc_trace_error(t));
        }
        if (whole != expect_whole) { bad++; printf("# cut %ld: %ld whole records, expected %ld\n", cut, whole, expect_whole); }
        if (st == MC_TRACE_TRUNCATED && !strstr(mc_trace_error(t), "truncated")) bad++;
        mc_trace_close(t);
    }
    MC_CHECK(bad == 0, "%d bad cuts", bad);
    free(all);
}

static void test_bad_headers(void)
{
    char p[320], err[256];
    snprintf(p, sizeof p, "%s/bad.mct", dir);
    FILE *o = fopen(p, "wb");
    fputs("this is not a trace file at all, no", o);
    fclose(o);
    MC_CHECK(mc_trace_open(p, err, sizeof err) == NULL && strstr(err, "bad magic"), "%s", err);
    struct mc_file_header fh;
    memset(&fh, 0, sizeof fh);
    memcpy(fh.magic, MC_TRACE_MAGIC, 8);
    fh.version_major = 9; fh.header_size = sizeof fh;
    o = fopen(p, "wb"); fwrite(&fh, sizeof fh, 1, o); fclose(o);
    MC_CHECK(mc_trace_open(p, err, sizeof err) == NULL && strstr(err, "version"), "%s", err);
    snprintf(p, sizeof p, "%s/does-not-exist.mct", dir);
    MC_CHECK(mc_trace_open(p, err, sizeof err) == NULL && strstr(err, "cannot open"), "%s", err);
    /* Impossible record size -> CORRUPT, earlier records still returned. */
    snprintf(p, sizeof p, "%s/corrupt.mct", dir);
    struct mc_synth *w = mc_synth_open(p);
    mc_synth_string(w, "x");
    struct mc_rec_header h = {.type = MC_REC_GEMM, .size = 13};
    mc_synth_raw(w, &h, sizeof h);
    mc_synth_raw(w, "0123456789abcdef", 16);
    mc_synth_close(w);
    struct mc_trace *t = mc_trace_open(p, err, sizeof err);
    struct mc_trace_rec r;
    MC_CHECK(t && mc_trace_next(t, &r) == MC_TRACE_RECORD && r.type == MC_REC_STRING, "first record");
    MC_CHECK(t && mc_trace_next(t, &r) == MC_TRACE_CORRUPT && strstr(mc_trace_error(t), "corrupt"), "corrupt");
    MC_CHECK(t && mc_trace_next(t, &r) == MC_TRACE_CORRUPT, "sticky");
    mc_trace_close(t);
}

/* Random bytes after a valid header, and random mutations of the sample: must never crash
 * (ASan build catches overreads), every call returns a documented status. */
static void test_fuzz(void)
{
    long n = file_size(path_a);
    FILE *f = fopen(path_a, "rb");
    unsigned char *all = malloc((size_t)n);
    if (!f || !all || fread(all, 1, (size_t)n, f) != (size_t)n) { MC_CHECK(0, "read"); return; }
    fclose(f);
    char p[320];
    snprintf(p, sizeof p, "%s/fuzz.mct", dir);
    srand(1234);
    int bad = 0;
    for (int iter = 0; iter < 400; iter++) {
        unsigned char *m = malloc((size_t)n + 64);
        memcpy(m, all, (size_t)n);
        long len = n;
        int flips = 1 + rand() % 8;
        for (int i = 0; i < flips; i++) {
            long at = sizeof(struct mc_file_header) + rand() % (n - (long)sizeof(struct mc_file_header));
            m[at] = (unsigned char)rand();
        }
        if (iter % 3 == 0) len = sizeof(struct mc_file_header) + rand() % (n - (long)sizeof(struct mc_file_header));
        if (iter % 7 == 0) for (long i = sizeof(struct mc_file_header); i < len; i++) m[i] = (unsigned char)rand();
        FILE *o = fopen(p, "wb");
        fwrite(m, 1, (size_t)len, o);
        fclose(o);
        free(m);
        char err[256];
        struct mc_trace *t = mc_trace_open(p, err, sizeof err);
        if (!t) { bad++; continue; }
        struct mc_trace_rec r;
        int st, guard = 0;
        while ((st = mc_trace_next(t, &r)) == MC_TRACE_RECORD && guard++ < 100000) {
            if (r.type == MC_REC_PROCESS) mc_trace_str(t, r.u.process.host_str);
            if (r.type == MC_REC_TENSOR) mc_trace_str(t, r.u.tensor.name_str);
        }
        if (st != MC_TRACE_END && st != MC_TRACE_TRUNCATED && st != MC_TRACE_CORRUPT) bad++;
        mc_trace_close(t);
    }
    MC_CHECK(bad == 0, "%d bad", bad);
    free(all);
}

/* The record table of docs/trace-format.md against MC_RECORD_LIST: every record type has
 * its row "| number | NAME | `struct` ... | fixed size ..." with the size this reader
 * knows (sizeof the struct), and the table has no row the list lacks. */
static void test_doc_record_table(void)
{
    FILE *f = fopen("docs/trace-format.md", "r");
    MC_CHECK(f != NULL, "docs/trace-format.md not found (run from the repository root)");
    if (!f) return;
    char line[512];
    int rows = 0, listed = 0;
#define COUNT_(NAME, num, tag, name, var) listed++;
    MC_RECORD_LIST(COUNT_)
#undef COUNT_
    while (fgets(line, sizeof line, f)) {
        unsigned num;
        char name[32], tag[64];
        if (sscanf(line, "| %u | %31[A-Z_] | `%63[a-z_]`", &num, name, tag) == 3) {
            rows++;
            const char *cells = strchr(strchr(strchr(line + 1, '|') + 1, '|') + 1, '|');   /* 4th cell */
            unsigned size = 0;
            int has_size = cells && sscanf(cells, "| %u", &size) == 1;
            int found = 0;
#define CHECK_(NAME, n, t, nm, var) \
            if (num == (n)) { \
                found = 1; \
                MC_CHECK(!strcmp(name, #NAME), "record %u: doc says %s, list says %s", num, name, #NAME); \
                MC_CHECK(!strcmp(tag, #t), "record %u: doc says struct %s, list says %s", num, tag, #t); \
                MC_CHECK(!has_size || size == mc_rec_fixed_size(n), "record %u: doc size %u, sizeof %zu", \
                         num, size, mc_rec_fixed_size(n)); \
            }
            MC_RECORD_LIST(CHECK_)
#undef CHECK_
            MC_CHECK(found, "docs/trace-format.md has record %u (%s), MC_RECORD_LIST does not", num, name);
        } else if (sscanf(line, "| %u | %31[A-Z_] | header only", &num, name) == 2) {
            rows++;   /* PAD: no struct of its own */
            MC_CHECK(num == MC_REC_PAD && !strcmp(name, "PAD"), "record %u %s", num, name);
        }
    }
    fclose(f);
    MC_CHECK(rows == listed, "docs/trace-format.md lists %d record types, MC_RECORD_LIST %d", rows, listed);
}

/* ---- 1.2 record rings: a model of the shim's writer, driven step by step, whose file is
 * then cut the ways a SIGKILL (or a later truncation) can leave it. GEMM records carry
 * their sequence number in m, so the expected content is known exactly. */
#define SIM_RING 4096u
struct ring_sim {
    unsigned char ring[SIM_RING];
    uint64_t head, tail;
    unsigned char stream[1 << 16];
    size_t slen;
    int64_t next_m;
};

static void sim_put(struct ring_sim *s)
{
    uint32_t size = sizeof(struct mc_rec_gemm);
    uint32_t pos = (uint32_t)(s->head % SIM_RING);
    if (pos + size > SIM_RING) {   /* a record never wraps: PAD to the ring's end */
        struct mc_rec_header pad = {MC_REC_PAD, 0, SIM_RING - pos};
        memcpy(s->ring + pos, &pad, sizeof pad);
        s->head += SIM_RING - pos;
        pos = 0;
    }
    MC_CHECK(s->head + size - s->tail <= SIM_RING, "model overfilled its ring");
    struct mc_rec_gemm g;
    memset(&g, 0, sizeof g);
    g.h.type = MC_REC_GEMM;
    g.h.size = size;
    g.m = ++s->next_m;
    memcpy(s->ring + pos, &g, size);
    s->head += size;
}

/* Copies [tail, head) to the stream after a RING_COPY; advances the tail if asked (a kill
 * between the write and the tail store leaves it behind). */
static void sim_copy(struct ring_sim *s, int advance_tail)
{
    struct mc_rec_ring_copy c;
    memset(&c, 0, sizeof c);
    c.h.type = MC_REC_RING_COPY;
    c.h.size = sizeof c;
    c.ring_id = 7;
    c.pos = s->tail;
    c.len = s->head - s->tail;
    memcpy(s->stream + s->slen, &c, sizeof c);
    s->slen += sizeof c;
    for (uint64_t p = s->tail; p < s->head; p++) s->stream[s->slen++] = s->ring[p % SIM_RING];
    if (advance_tail) s->tail = s->head;
}

/* The file: header, the RING record (its final state), then the stream cut to `slen`
 * bytes. Reads it; returns the status, fills ms[] with the GEMMs' m in order. */
static int sim_read(const struct ring_sim *s, size_t slen, int64_t *ms, int *n, uint64_t *recovered)
{
    static unsigned char file[24 + sizeof(struct mc_rec_ring) + SIM_RING + sizeof s->stream];
    struct mc_file_header fh = mc_file_header_make(MC_FILE_RINGS);
    struct mc_rec_ring r;
    memset(&r, 0, sizeof r);
    r.h.type = MC_REC_RING;
    r.h.size = (uint32_t)sizeof r + SIM_RING;
    r.ring_id = 7;
    r.ring_bytes = SIM_RING;
    r.head = s->head;
    r.tail = s->tail;
    size_t len = 0;
    memcpy(file + len, &fh, sizeof fh); len += sizeof fh;
    memcpy(file + len, &r, sizeof r); len += sizeof r;
    memcpy(file + len, s->ring, SIM_RING); len += SIM_RING;
    memcpy(file + len, s->stream, slen); len += slen;
    char err[256];
    struct mc_trace *t = mc_trace_open_mem(file, len, "ring.mct", 0, err, sizeof err);
    if (!t) { MC_CHECK(0, "%s", err); return -99; }
    struct mc_trace_rec rec;
    int st;
    *n = 0;
    while ((st = mc_trace_next(t, &rec)) == MC_TRACE_RECORD)
        if (rec.type == MC_REC_GEMM && *n < 256) ms[(*n)++] = rec.u.gemm.m;
    *recovered = mc_trace_recovered(t);
    mc_trace_close(t);
    return st;
}

/* ms[0..n) == 1..expect */
static int is_sequence(const int64_t *ms, int n, int expect)
{
    if (n != expect) return 0;
    for (int i = 0; i < n; i++) if (ms[i] != i + 1) return 0;
    return 1;
}

static void test_ring_recovery(void)
{
    static struct ring_sim s;
    int64_t ms[256];
    int n;
    uint64_t rec;
    /* Clean exit: everything copied, nothing recovered. */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 10; i++) sim_put(&s);
    sim_copy(&s, 1);
    for (int i = 0; i < 10; i++) sim_put(&s);
    sim_copy(&s, 1);
    int st = sim_read(&s, s.slen, ms, &n, &rec);
    MC_CHECK(st == MC_TRACE_END && is_sequence(ms, n, 20) && rec == 0, "clean: st %d n %d rec %llu", st, n, (unsigned long long)rec);
    /* Killed with 15 records committed since the last copy (across the ring's end). */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 10; i++) sim_put(&s);
    sim_copy(&s, 1);
    for (int i = 0; i < 15; i++) sim_put(&s);
    st = sim_read(&s, s.slen, ms, &n, &rec);
    MC_CHECK(st == MC_TRACE_END && is_sequence(ms, n, 25) && rec == 15, "uncopied: st %d n %d rec %llu", st, n, (unsigned long long)rec);
    /* Killed inside the copy's write, at every byte of it: the stream ends inside the
     * batch, the tail never moved. Each record exactly once, a clean end. */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 10; i++) sim_put(&s);
    sim_copy(&s, 1);
    for (int i = 0; i < 12; i++) sim_put(&s);
    size_t before = s.slen;
    sim_copy(&s, 0);
    int bad = 0;
    for (size_t cut = before; cut <= s.slen; cut++) {
        st = sim_read(&s, cut, ms, &n, &rec);
        if (st != MC_TRACE_END || !is_sequence(ms, n, 22)) {
            if (!bad++) MC_CHECK(0, "cut at %zu of %zu: st %d n %d", cut, s.slen, st, n);
        }
    }
    MC_CHECK(bad == 0, "%d bad cuts", bad);
    /* The copy written whole, the kill before the tail store: no duplicates. */
    st = sim_read(&s, s.slen, ms, &n, &rec);
    MC_CHECK(st == MC_TRACE_END && is_sequence(ms, n, 22) && rec == 0, "tail behind: st %d n %d", st, n);
    /* A file cut afterwards: a copy the tail counts is missing from the stream. */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 10; i++) sim_put(&s);
    sim_copy(&s, 1);
    before = s.slen;
    for (int i = 0; i < 5; i++) sim_put(&s);
    sim_copy(&s, 1);
    st = sim_read(&s, before + 50, ms, &n, &rec);
    MC_CHECK(st == MC_TRACE_TRUNCATED && is_sequence(ms, n, 10), "cut afterwards: st %d n %d", st, n);
    /* A head more than a ring past what was copied cannot be: corrupt, not a crash. */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 10; i++) sim_put(&s);
    sim_copy(&s, 1);
    s.head = s.tail + 2 * SIM_RING;
    st = sim_read(&s, s.slen, ms, &n, &rec);
    MC_CHECK(st == MC_TRACE_CORRUPT && is_sequence(ms, n, 10), "bad head: st %d n %d", st, n);
}

/* ---- writer units (1.2): two threads' ring copies interleaved with a record outside any
 * ring, and one record only a ring still holds (recovered after the stream). A handle
 * filtered by mc_trace_set_units returns exactly one writer's records, in its order; the
 * report's per-thread cursors rest on this. GEMM m = the record's identity. */
#define UNIT_RING 4096u
struct unit_file {
    unsigned char ring[2][UNIT_RING];
    uint64_t head[2], tail[2];
    unsigned char stream[8192];
    size_t slen;
};

static void unit_gemm(unsigned char *dst, int64_t m)
{
    struct mc_rec_gemm g;
    memset(&g, 0, sizeof g);
    g.h.type = MC_REC_GEMM;
    g.h.size = sizeof g;
    g.m = m;
    memcpy(dst, &g, sizeof g);
}

static void unit_put(struct unit_file *u, int r, int64_t m)
{
    unit_gemm(u->ring[r] + u->head[r] % UNIT_RING, m);
    u->head[r] += sizeof(struct mc_rec_gemm);
}

static void unit_copy(struct unit_file *u, int r)
{
    struct mc_rec_ring_copy c;
    memset(&c, 0, sizeof c);
    c.h.type = MC_REC_RING_COPY;
    c.h.size = sizeof c;
    c.ring_id = 7 + 2 * (uint32_t)r;   /* file ids need not be 1, 2: units are ring indices */
    c.pos = u->tail[r];
    c.len = u->head[r] - u->tail[r];
    memcpy(u->stream + u->slen, &c, sizeof c);
    u->slen += sizeof c;
    for (uint64_t p = u->tail[r]; p < u->head[r]; p++) u->stream[u->slen++] = u->ring[r][p % UNIT_RING];
    u->tail[r] = u->head[r];
}

/* Reads the file with keep[0..nkeep) (nkeep < 0: no filter); ms/units of the GEMMs. */
static int unit_read(const struct unit_file *u, uint64_t flags, const unsigned char *keep, int nkeep,
                     int64_t *ms, uint64_t *units, int *n)
{
    static unsigned char file[24 + 2 * (sizeof(struct mc_rec_ring) + UNIT_RING) + sizeof u->stream];
    struct mc_file_header fh = mc_file_header_make(flags);
    size_t len = 0;
    memcpy(file + len, &fh, sizeof fh); len += sizeof fh;
    for (int r = 0; r < 2; r++) {
        struct mc_rec_ring rr;
        memset(&rr, 0, sizeof rr);
        rr.h.type = MC_REC_RING;
        rr.h.size = (uint32_t)sizeof rr + UNIT_RING;
        rr.ring_id = 7 + 2 * (uint32_t)r;
        rr.ring_bytes = UNIT_RING;
        rr.head = u->head[r];
        rr.tail = u->tail[r];
        memcpy(file + len, &rr, sizeof rr); len += sizeof rr;
        memcpy(file + len, u->ring[r], UNIT_RING); len += UNIT_RING;
    }
    memcpy(file + len, u->stream, u->slen); len += u->slen;
    char err[256];
    struct mc_trace *t = mc_trace_open_mem(file, len, "units.mct", 0, err, sizeof err);
    if (!t) { MC_CHECK(0, "%s", err); return -99; }
    int rc = 0;
    if (nkeep >= 0) rc = mc_trace_set_units(t, keep, (size_t)nkeep);
    struct mc_trace_rec rec;
    *n = 0;
    while (rc == 0 && mc_trace_next(t, &rec) == MC_TRACE_RECORD)
        if (rec.type == MC_REC_GEMM && *n < 16) { ms[*n] = rec.u.gemm.m; units[(*n)++] = mc_trace_unit(t); }
    mc_trace_close(t);
    return rc;
}

static int same_ms(const int64_t *ms, int n, const int64_t *want, int nw)
{
    if (n != nw) return 0;
    for (int i = 0; i < n; i++) if (ms[i] != want[i]) return 0;
    return 1;
}

static void test_ring_units(void)
{
    static struct unit_file u;
    memset(&u, 0, sizeof u);
    unit_put(&u, 0, 1); unit_put(&u, 0, 2); unit_copy(&u, 0);
    unit_gemm(u.stream + u.slen, 100); u.slen += sizeof(struct mc_rec_gemm);   /* outside any ring */
    unit_put(&u, 1, 11); unit_put(&u, 1, 12); unit_copy(&u, 1);
    unit_put(&u, 0, 3); unit_copy(&u, 0);
    unit_put(&u, 1, 13);   /* never copied: recovered from ring 9 */
    int64_t ms[16];
    uint64_t units[16];
    int n;
    MC_CHECK(unit_read(&u, MC_FILE_RINGS, NULL, -1, ms, units, &n) == 0, "open");
    const int64_t all[] = {1, 2, 100, 11, 12, 3, 13};
    const uint64_t all_units[] = {1, 1, 0, 2, 2, 1, 2};
    MC_CHECK(same_ms(ms, n, all, 7), "unfiltered: %d records", n);
    for (int i = 0; i < n && i < 7; i++)
        MC_CHECK(units[i] == all_units[i], "record m=%lld: unit %llu, want %llu", (long long)ms[i],
                 (unsigned long long)units[i], (unsigned long long)all_units[i]);
    const unsigned char first[] = {MC_SEG_SKIP, MC_SEG_READ, MC_SEG_SKIP};
    const int64_t want_first[] = {1, 2, 3};
    unit_read(&u, MC_FILE_RINGS, first, 3, ms, units, &n);
    MC_CHECK(same_ms(ms, n, want_first, 3), "ring 7's handle: %d records", n);
    const unsigned char second[] = {MC_SEG_SKIP, MC_SEG_STATE, MC_SEG_READ};
    const int64_t want_second[] = {11, 12, 13};
    unit_read(&u, MC_FILE_RINGS, second, 3, ms, units, &n);
    MC_CHECK(same_ms(ms, n, want_second, 3), "ring 9's handle (recovered record included): %d records", n);
    const unsigned char outside[] = {MC_SEG_READ};
    const int64_t want_outside[] = {100};
    unit_read(&u, MC_FILE_RINGS, outside, 1, ms, units, &n);
    MC_CHECK(same_ms(ms, n, want_outside, 1), "unit 0 (outside rings): %d records", n);
    /* a plain file has no units */
    MC_CHECK(unit_read(&u, 0, first, 3, ms, units, &n) == -1, "plain file: set_units should fail");
}

int main(int argc, char **argv)
{
    /* Helper mode for tests/trace/test_dump.sh: write the sample trace and exit. */
    if (argc == 3 && !strcmp(argv[1], "--write-sample")) return write_sample(argv[2]) == 0 ? 0 : 1;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mc-trace-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(path_a, sizeof path_a, "%s/a.mct", dir);
    MC_RUN(test_roundtrip);
    MC_RUN(test_gemm_cpu_expanded);
    MC_RUN(test_truncation_every_byte);
    MC_RUN(test_bad_headers);
    MC_RUN(test_fuzz);
    MC_RUN(test_doc_record_table);
    MC_RUN(test_ring_recovery);
    MC_RUN(test_ring_units);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return MC_TEST_EXIT();
}
