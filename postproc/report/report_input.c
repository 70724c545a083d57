/* Reading a run's traces for `moecap report` (see report_input.h). */
#include "report/report_input.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rec_time(const struct mc_trace_rec *r, uint64_t prev)
{
    switch (r->type) {
    case MC_REC_GEMM: return r->u.gemm.t_begin_ns;
    case MC_REC_FILE_MAP: return r->u.file_map.t_ns;
    case MC_REC_STEP_MARK: return r->u.step_mark.t_ns;
    case MC_REC_MEMCPY: return r->u.memcpy.start_ns;
    case MC_REC_API: return r->u.api.t_begin_ns;
    case MC_REC_ALLOC: return r->u.alloc.t_ns;
    default: return prev;     /* untimed records keep the file's order */
    }
}

void report_cursor_advance(struct report_cursor *c)
{
    c->status = mc_trace_next(c->t, &c->rec);
    c->have = c->status == MC_TRACE_RECORD;
    if (c->have) c->key = rec_time(&c->rec, c->key);
}

/* Records the writer of a GEMM record's unit (and the writer itself, first time). Units are
 * bounded by the file (segments of its size, or the RING records it holds). */
static void note_writer(struct report_file_writers *w, uint64_t unit, int32_t tid)
{
    if (!w->units || tid == 0) return;
    size_t i = (size_t)unit;
    if (i >= w->nseg) {
        size_t n = w->nseg ? w->nseg : 64;
        while (n <= i) n *= 2;
        int32_t *o = realloc(w->owner, n * sizeof *o);
        if (!o) return;
        memset(o + w->nseg, 0, (n - w->nseg) * sizeof *o);
        w->owner = o;
        w->nseg = n;
    }
    if (w->owner[i] == tid) return;
    w->owner[i] = tid;
    for (int k = 0; k < w->ntids; k++) if (w->tids[k] == tid) return;
    if (w->ntids < REPORT_MAX_WRITERS) w->tids[w->ntids++] = tid;
}

void report_file_writers_free(struct report_file_writers *w, size_t n)
{
    for (size_t i = 0; w && i < n; i++) free(w[i].owner);
    free(w);
}

static int open_cursor(struct report_cursor *c, const char *path, const char *name, int32_t pid,
                       const unsigned char *keep, size_t nkeep)
{
    char err[256];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->pid = pid;
    c->t = mc_trace_open(path, err, sizeof err);
    if (!c->t || mc_trace_set_units(c->t, keep, nkeep) != 0) return -1;
    report_cursor_advance(c);
    return 0;
}

int report_writer_cursors(const char *path, size_t i, const struct report_file_writers *w,
                          struct report_cursor **cur, size_t *ncur)
{
    if (!w->units || w->ntids < 2) return 0;
    size_t nkeep = (size_t)w->nunits;
    unsigned char *keep = malloc(nkeep);
    struct report_cursor *nc = realloc(*cur, (*ncur + (size_t)w->ntids - 1) * sizeof *nc);
    if (!keep || !nc) { free(keep); if (nc) *cur = nc; return -1; }
    *cur = nc;
    char name[256];
    snprintf(name, sizeof name, "%s", nc[i].name);
    int32_t pid = nc[i].pid;
    mc_trace_close(nc[i].t);
    /* the first writer's cursor: everything but the other writers' segments */
    for (size_t k = 0; k < nkeep; k++) {
        int32_t o = k < w->nseg ? w->owner[k] : 0;
        int other = 0;
        for (int j = 1; j < w->ntids && !other; j++) other = o == w->tids[j];
        keep[k] = other ? MC_SEG_SKIP : MC_SEG_READ;
    }
    int rc = open_cursor(&nc[i], path, name, pid, keep, nkeep);
    for (int j = 1; j < w->ntids && rc == 0; j++) {
        for (size_t k = 0; k < nkeep; k++) {
            int32_t o = k < w->nseg ? w->owner[k] : 0;
            keep[k] = o == w->tids[j] ? MC_SEG_READ : w->seg && k * w->seg < w->state_end ? MC_SEG_STATE : MC_SEG_SKIP;
        }
        rc = open_cursor(&nc[(*ncur)++], path, name, w->pid, keep, nkeep);
    }
    free(keep);
    return rc;
}

/* Naming facts first: every TENSOR and FILE_MAP record of every file, before any GEMM is
 * classified. Records of different threads reach a file in flush order, not time order (a
 * server's main thread maps the weights, its scheduler thread runs the steps, and the main
 * thread's ring may be written after all of the scheduler's GEMMs), so a single pass would
 * classify GEMMs by shape alone before their weights could be named. Costs one more read of
 * the files; the main pass then skips these records. */
void report_collect_names(struct mc_attrib *at, const char *run_dir, char **names, size_t nn, int no_names,
                          struct report_devices *dev, struct report_file_writers *writers)
{
    for (size_t i = 0; i < nn; i++) {
        char p[4096], err[256];
        snprintf(p, sizeof p, "%s/%s", run_dir, names[i]);
        struct mc_trace *t = mc_trace_open(p, err, sizeof err);
        if (!t) continue;   /* the main pass reports it */
        struct mc_trace_rec rec;
        int32_t pid = (int32_t)i;   /* as the main pass: until the process record says */
        uint32_t host_str = 0;   /* resolved at use: the string may follow the process record */
        int32_t last_dev = INT32_MIN, last_pid = 0;   /* the census needs each (process, device) once */
        struct report_file_writers *w = writers ? &writers[i] : NULL;
        if (w) { w->units = mc_trace_has_units(t); w->seg = mc_trace_segment_bytes(t); w->pid = pid; }
        while (mc_trace_next(t, &rec) == MC_TRACE_RECORD) {
            if (w) {
                uint64_t unit = mc_trace_unit(t);
                if (unit >= w->nunits) w->nunits = unit + 1;
                if (rec.type == MC_REC_GEMM) note_writer(w, unit, rec.u.gemm.tid);
                else if (rec.type == MC_REC_CLOCK && w->seg && !w->state_end)
                    w->state_end = (rec.offset + rec.size + w->seg - 1) / w->seg * w->seg;
            }
            if (rec.type == MC_REC_GEMM) {
                if (dev && (rec.u.gemm.device != last_dev || pid != last_pid)) {
                    last_dev = rec.u.gemm.device; last_pid = pid;
                    report_devices_gemm(dev, host_str ? mc_trace_str(t, host_str) : NULL, pid, last_dev < 0 ? -1 : last_dev);
                }
            } else if (rec.type == MC_REC_PROCESS) {
                pid = rec.u.process.pid;
                host_str = rec.u.process.host_str;
                if (w) w->pid = pid;
                mc_attrib_process(at, pid, rec.u.process.ppid);
            } else if (rec.type == MC_REC_TENSOR && !no_names) {
                const struct mc_rec_tensor *x = &rec.u.tensor;
                mc_attrib_tensor(at, mc_trace_str(t, x->path_str), mc_trace_str(t, x->name_str),
                                 x->file_begin, x->file_end, x->shape, (int)(x->ndim > 8 ? 8 : x->ndim), x->dtype);
            } else if (rec.type == MC_REC_FILE_MAP) {
                const struct mc_rec_file_map *f = &rec.u.file_map;
                if (f->device < 0 && (f->how == 1 || f->how == 2))   /* read buffers can be refilled */
                    mc_attrib_file_read_t(at, pid, mc_trace_str(t, f->path_str), f->addr, f->file_offset, f->length, f->t_ns);
                else mc_attrib_file_map_t(at, pid, mc_trace_str(t, f->path_str), f->addr, f->file_offset, f->length,
                                     f->device, f->t_ns);
            } else if (rec.type == MC_REC_ALLOC) {
                const struct mc_rec_alloc *x = &rec.u.alloc;
                mc_attrib_alloc(at, pid, x->device, x->ptr, x->bytes, x->is_free, x->t_ns);
            } else if (rec.type == MC_REC_MEMCPY) {
                /* host->device copies with addresses (interposition): weight uploads name device
                 * ranges; CUPTI's copy records carry no addresses */
                const struct mc_rec_memcpy *x = &rec.u.memcpy;
                if (x->source == 1 && (x->kind == MC_COPY_H2D || x->kind == MC_COPY_UNKNOWN))
                    mc_attrib_h2d(at, pid, x->device, x->src, x->dst, x->bytes, x->start_ns);
            } else if (rec.type == MC_REC_TOPK_TAP) {
                mc_attrib_topk_expect(at, pid, rec.u.topk_tap.correlation_id);
            }
        }
        mc_trace_close(t);
    }
    /* kernel-parameter taps name their launch by CUPTI correlation id: the API activity
     * record of that id (written late, anywhere in the file) gives its thread and host time */
    for (size_t i = 0; i < nn && mc_attrib_topk_expected(at); i++) {
        char p[4096], err[256];
        snprintf(p, sizeof p, "%s/%s", run_dir, names[i]);
        struct mc_trace *t = mc_trace_open(p, err, sizeof err);
        if (!t) continue;
        struct mc_trace_rec rec;
        int32_t pid = (int32_t)i;
        while (mc_trace_next(t, &rec) == MC_TRACE_RECORD) {
            if (rec.type == MC_REC_PROCESS) pid = rec.u.process.pid;
            else if (rec.type == MC_REC_API && rec.u.api.correlation_id &&
                     (rec.u.api.api == MC_API_CUPTI_DRIVER || rec.u.api.api == MC_API_CUPTI_RUNTIME))
                mc_attrib_launch(at, pid, rec.u.api.correlation_id, rec.u.api.tid, rec.u.api.t_begin_ns);
        }
        mc_trace_close(t);
    }
    mc_attrib_names_done(at);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int report_list_traces(const char *run_dir, char ***names_out, size_t *n_out)
{
    *names_out = NULL;
    *n_out = 0;
    DIR *d = opendir(run_dir);
    if (!d) return -1;
    char **names = NULL;
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".mct")) {
            char **p = realloc(names, (nn + 1) * sizeof *names);
            if (!p) break;
            names = p;
            names[nn++] = strdup(de->d_name);
        }
    }
    closedir(d);
    if (nn) qsort(names, nn, sizeof *names, name_cmp);
    *names_out = names;
    *n_out = nn;
    return 0;
}
