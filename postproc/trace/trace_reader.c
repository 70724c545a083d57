/* Trace reader library (see trace_reader.h): header validation, streaming record
 * iteration with zero-padded copies, string table with lazy look-ahead, names. */
#include "trace_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace/utf8.h"

/* Records larger than this are treated as corrupt (the biggest legitimate ones are router
 * taps: tokens x experts x 4 bytes, far below this). A record is also never larger than
 * what is left of the file: no allocation is sized by a header the file cannot back. */
#define MC_TRACE_MAX_RECORD (256u << 20)

struct mc_trace {
    FILE *f;
    int fd;                  /* -1 for a trace in memory */
    uint64_t size;           /* file size at open (refreshed when a record reaches past it) */
    char *path;
    unsigned opts;
    unsigned vmaj, vmin;
    uint64_t off;            /* offset of the next record */
    uint64_t nrec, nunknown;
    int status;              /* sticky negative status, or 1 while readable */
    char err[320];
    unsigned char *buf;      /* current record */
    size_t bufcap;
    /* string table: open addressing on id (the ids are the writer's; a hostile file may use
     * any 32-bit value, so the table grows with the number of strings, never with an id) */
    struct str_ent { uint32_t id; char *text; } *strs;
    uint32_t nstrs, capstrs;
    uint64_t scanned_to;     /* strings of [0, scanned_to) are all in the table */
    uint64_t seg;            /* segment bytes of a segmented file (1.1), 0 = plain */
    /* Record rings kept in the file (1.2): what each RING_COPY covered, and, once the
     * stream has ended, the recovery of what the rings hold beyond that. */
    int rings_file;          /* header flag MC_FILE_RINGS */
    struct ring_ent {
        uint32_t id, bytes;
        uint64_t data_off;   /* file offset of the ring's byte 0 */
        uint64_t head, tail; /* as the file holds them */
        uint64_t covered;    /* positions [.., covered) are in the stream */
        uint64_t pos;        /* recovery: next position to return */
        int started;         /* recovery: pos set */
    } *rings;
    uint32_t nrings, caprings;
    struct ring_ent *copying; /* the RING_COPY batch being read, */
    uint64_t copy_left;       /* and its bytes still to come */
    int recovering;           /* the stream has ended; returning ring records */
    uint32_t rec_ring;        /* recovery: index into rings */
    int end_status;           /* the stream's own end status */
    char end_why[200];
    uint64_t nrecovered;
    unsigned char *keep;     /* mc_trace_set_units (NULL: every unit) */
    size_t nkeep;
    uint64_t unit;           /* writer unit of the last record (mc_trace_unit) */
    int have_clock;          /* MC_REC_CLOCK seen: tick-stamped records convertible */
    uint64_t tsc0, ns0, tsc1, ns1;
};

static void set_err(struct mc_trace *t, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(struct mc_trace *t, int status, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(t->err, sizeof t->err, "%s: ", t->path);
    if (n < 0 || (size_t)n >= sizeof t->err) n = 0;
    va_start(ap, fmt);
    vsnprintf(t->err + n, sizeof t->err - (size_t)n, fmt, ap);
    va_end(ap);
    t->status = status;
}

size_t mc_rec_fixed_size(unsigned type)
{
    switch (type) {
#define FIXED_SIZE_(NAME, num, tag, name, var) case MC_REC_##NAME: return sizeof(struct tag);
    MC_RECORD_LIST(FIXED_SIZE_)
#undef FIXED_SIZE_
    default: return 0;
    }
}

static int has_var_part(unsigned type)
{
    switch (type) {
#define VAR_PART_(NAME, num, tag, name, var) case MC_REC_##NAME: return var == MC_VAR_PART;
    MC_RECORD_LIST(VAR_PART_)
#undef VAR_PART_
    default: return 0;
    }
}

struct mc_trace *mc_trace_open(const char *path, char *err, size_t errlen)
{
    return mc_trace_open2(path, 0, err, errlen);
}

/* Validates the file header and makes the reader; takes f (closes it on failure). */
static struct mc_trace *open_stream(FILE *f, int fd, uint64_t size, const char *path, unsigned opts,
                                    char *err, size_t errlen)
{
    struct mc_file_header fh;
    memset(&fh, 0, sizeof fh);
    size_t got = fread(&fh, 1, sizeof fh, f);
    const char *why = NULL;
    if (got < 16) why = "too short to be a moecap trace (no file header)";
    else if (memcmp(fh.magic, MC_TRACE_MAGIC, 8) != 0) why = "not a moecap trace (bad magic)";
    else if (fh.version_major != MC_TRACE_VERSION_MAJOR) why = "unsupported trace major version";
    else if (fh.header_size < 16 || fh.header_size % 8 || fh.header_size > 4096)
        why = "corrupt file header (header_size)";
    else if (fh.header_size > size) why = "truncated file header";
    if (why) {
        if (errlen) {
            if (got >= 16 && fh.version_major != MC_TRACE_VERSION_MAJOR && !memcmp(fh.magic, MC_TRACE_MAGIC, 8))
                snprintf(err, errlen, "%s: %s %u (this reader knows %d); use a matching moecap",
                         path, why, fh.version_major, MC_TRACE_VERSION_MAJOR);
            else
                snprintf(err, errlen, "%s: %s", path, why);
        }
        fclose(f);
        return NULL;
    }
    if (fseeko(f, (off_t)fh.header_size, SEEK_SET) != 0) {
        if (errlen) snprintf(err, errlen, "%s: truncated file header", path);
        fclose(f);
        return NULL;
    }
    struct mc_trace *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        fclose(f);
        if (errlen) snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    t->f = f;
    t->fd = fd;
    t->size = size;
    t->opts = opts;
    t->vmaj = fh.version_major;
    t->vmin = fh.version_minor;
    t->off = fh.header_size;
    t->scanned_to = fh.header_size;
    t->seg = mc_file_segment_bytes(fh.flags);
    t->rings_file = (fh.flags & MC_FILE_RINGS) != 0;
    t->status = 1;
    return t;
}

struct mc_trace *mc_trace_open2(const char *path, unsigned opts, char *err, size_t errlen)
{
    if (errlen) err[0] = 0;
    /* Only regular files: O_NONBLOCK so that a FIFO (or device) named *.mct cannot block the
     * open, then fstat decides before anything is read. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (errlen) snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        if (errlen) snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    return open_stream(f, fd, (uint64_t)st.st_size, path, opts, err, errlen);
}

struct mc_trace *mc_trace_open_mem(const void *data, size_t size, const char *name, unsigned opts,
                                   char *err, size_t errlen)
{
    if (errlen) err[0] = 0;
    static const char empty[1];
    /* fmemopen refuses a zero-sized buffer: an empty trace reads as a 1-byte one, which the
     * header check rejects as too short just the same */
    FILE *f = fmemopen((void *)(size ? data : empty), size ? size : 1, "rb");
    if (!f) {
        if (errlen) snprintf(err, errlen, "%s: cannot open: %s", name, strerror(errno));
        return NULL;
    }
    return open_stream(f, -1, size, name, opts, err, errlen);
}

void mc_trace_close(struct mc_trace *t)
{
    if (!t) return;
    if (t->f) fclose(t->f);
    for (uint32_t i = 0; i < t->capstrs; i++) free(t->strs[i].text);
    free(t->strs);
    free(t->rings);
    free(t->buf);
    free(t->keep);
    free(t->path);
    free(t);
}

static uint32_t str_slot(uint32_t id, uint32_t cap)
{
    return (uint32_t)((id * 0x9e3779b9u) & (cap - 1));
}

/* Slot of id: its entry, or the empty slot where it would go. cap is a power of two. */
static struct str_ent *str_find(struct str_ent *tab, uint32_t cap, uint32_t id)
{
    for (uint32_t i = str_slot(id, cap);; i = (i + 1) & (cap - 1))
        if (tab[i].id == id || tab[i].id == 0) return &tab[i];
}

/* Enters a STRING record (whole, `size` bytes at rec) into the table, as valid UTF-8 (see
 * utf8.h). Bad ones are ignored: a lookup of their id then fails, which callers already handle.
 * Memory: one entry and one copy per STRING record, so at most about 4x the file's size. */
static void add_string(struct mc_trace *t, const unsigned char *rec, uint32_t size)
{
    struct mc_rec_string s;
    if (size < sizeof s) return;
    memcpy(&s, rec, sizeof s);
    if (s.id == 0) return;
    if ((uint64_t)s.len + 1 > size - sizeof s) return;
    const char *text = (const char *)rec + sizeof s;
    if ((t->nstrs + 1) * 2 > t->capstrs) {   /* keep the load at most 1/2 */
        uint32_t cap = t->capstrs ? t->capstrs * 2 : 256;
        struct str_ent *nt = calloc(cap, sizeof *nt);
        if (!nt) return;
        for (uint32_t i = 0; i < t->capstrs; i++)
            if (t->strs[i].id) *str_find(nt, cap, t->strs[i].id) = t->strs[i];
        free(t->strs);
        t->strs = nt;
        t->capstrs = cap;
    }
    struct str_ent *e = str_find(t->strs, t->capstrs, s.id);
    if (e->id) return; /* first definition wins */
    char *c = mc_utf8_sanitize(text, s.len);
    if (!c) return;
    e->id = s.id;
    e->text = c;
    t->nstrs++;
}

static int ensure_buf(struct mc_trace *t, size_t n)
{
    if (n <= t->bufcap) return 0;
    size_t c = t->bufcap ? t->bufcap : 4096;
    while (c < n) c *= 2;
    unsigned char *nb = realloc(t->buf, c);
    if (!nb) return -1;
    t->buf = nb;
    t->bufcap = c;
    return 0;
}

/* Recovery of files left by killed processes. In a segmented file each segment has one
 * writer, and a record's size is stored after the rest of it: a header of size 0 is space
 * its writer had not filled when the process ended (the rest of its segment, or a record
 * reserved and never committed), so reading goes on at the next segment boundary. Every
 * record before it in the segment is whole. Moves *off and f there; 0, or -1 at the end
 * of the file. */
static int skip_unwritten(const struct mc_trace *t, FILE *f, uint64_t *off)
{
    uint64_t next = (*off / t->seg + 1) * t->seg;
    if (fseeko(f, (off_t)next, SEEK_SET) != 0) return -1;
    *off = next;
    return 0;
}

/* Reads one record at the current FILE position (*off) into t->buf, skipping unwritten
 * space of a segmented file (*off then moves past it). Returns status; on MC_TRACE_RECORD
 * *size is set. Does not touch t->status. */
static int read_one(struct mc_trace *t, FILE *f, uint64_t *offp, uint32_t *size, char *why, size_t whylen)
{
    struct mc_rec_header h;
    size_t got = fread(&h, 1, sizeof h, f);
    while (got == sizeof h && h.size == 0 && t->seg) {
        if (skip_unwritten(t, f, offp) < 0) return MC_TRACE_END;
        got = fread(&h, 1, sizeof h, f);
    }
    uint64_t off = *offp;
    if (got == 0) {
        if (ferror(f)) { snprintf(why, whylen, "read error at offset %llu: %s", (unsigned long long)off, strerror(errno)); return MC_TRACE_IO_ERROR; }
        return MC_TRACE_END;
    }
    if (got < sizeof h) {
        snprintf(why, whylen, "truncated: last record header at offset %llu is incomplete (%zu of 8 bytes)",
                 (unsigned long long)off, got);
        return MC_TRACE_TRUNCATED;
    }
    if (h.size < sizeof h || h.size % MC_REC_ALIGN || h.size > MC_TRACE_MAX_RECORD) {
        snprintf(why, whylen, "corrupt record at offset %llu: size %u (type %u) is impossible",
                 (unsigned long long)off, h.size, h.type);
        return MC_TRACE_CORRUPT;
    }
    if (h.size > t->size - off && t->fd >= 0) {   /* the file may have grown since it was opened */
        struct stat st;
        if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size > t->size) t->size = (uint64_t)st.st_size;
    }
    if (off > t->size || h.size > t->size - off) {
        snprintf(why, whylen, "truncated: last record (type %u, %u bytes) at offset %llu has only %llu bytes",
                 h.type, h.size, (unsigned long long)off, (unsigned long long)(off < t->size ? t->size - off : 0));
        return MC_TRACE_TRUNCATED;
    }
    if (ensure_buf(t, h.size) < 0) {
        snprintf(why, whylen, "out of memory for a %u-byte record at offset %llu", h.size, (unsigned long long)off);
        return MC_TRACE_IO_ERROR;
    }
    memcpy(t->buf, &h, sizeof h);
    size_t want = h.size - sizeof h;
    got = want ? fread(t->buf + sizeof h, 1, want, f) : 0;
    if (got < want) {
        if (ferror(f)) { snprintf(why, whylen, "read error at offset %llu: %s", (unsigned long long)off, strerror(errno)); return MC_TRACE_IO_ERROR; }
        snprintf(why, whylen, "truncated: last record (type %u, %u bytes) at offset %llu has only %zu bytes",
                 h.type, h.size, (unsigned long long)off, got + sizeof h);
        return MC_TRACE_TRUNCATED;
    }
    *size = h.size;
    return MC_TRACE_RECORD;
}

/* The file's TSC calibration (the pair its writer published last). */
static void take_clock(struct mc_trace *t, const unsigned char *rec, uint32_t size)
{
    struct mc_rec_clock c;
    if (size < sizeof c) return;
    memcpy(&c, rec, sizeof c);
    unsigned i = c.latest & 1;
    if (c.pair[i].tsc <= c.tsc0 || c.pair[i].ns < c.ns0) return; /* no second point yet */
    t->tsc0 = c.tsc0; t->ns0 = c.ns0;
    t->tsc1 = c.pair[i].tsc; t->ns1 = c.pair[i].ns;
    t->have_clock = 1;
}

/* TSC ticks -> CLOCK_MONOTONIC ns: the line through the file's two calibration points
 * (exact at both within the ~20 ns a pair takes, for an invariant TSC). */
static uint64_t ticks_to_ns(const struct mc_trace *t, uint64_t ticks)
{
    double slope = (double)(t->ns1 - t->ns0) / (double)(t->tsc1 - t->tsc0);
    double ns = (double)t->ns0 + ((double)ticks - (double)t->tsc0) * slope;
    return ns <= 0 ? 0 : ns >= 1.8e19 ? UINT64_MAX : (uint64_t)ns;
}

/* ---------------------------------------------------------------- rings (1.2) */

/* A RING record: remember where its bytes are and how far its writer got. Bad ones (wrong
 * sizes, a repeated id) are ignored: their records then stay unrecovered. */
static void add_ring(struct mc_trace *t, const unsigned char *rec, uint32_t size, uint64_t off)
{
    struct mc_rec_ring r;
    if (size < sizeof r) return;
    memcpy(&r, rec, sizeof r);
    if (r.ring_bytes < 4096 || (r.ring_bytes & (r.ring_bytes - 1)) || size - sizeof r != r.ring_bytes) return;
    for (uint32_t i = 0; i < t->nrings; i++) if (t->rings[i].id == r.ring_id) return;
    if (t->nrings == t->caprings) {   /* at most one per 4 KiB of file */
        uint32_t cap = t->caprings ? t->caprings * 2 : 8;
        struct ring_ent *n = realloc(t->rings, cap * sizeof *n);
        if (!n) return;
        t->rings = n;
        t->caprings = cap;
        t->copying = NULL; /* it pointed into the old array */
        t->copy_left = 0;
    }
    struct ring_ent *e = &t->rings[t->nrings++];
    memset(e, 0, sizeof *e);
    e->id = r.ring_id;
    e->bytes = r.ring_bytes;
    e->data_off = off + sizeof r;
    e->head = r.head;
    e->tail = r.tail;
}

/* A RING_COPY record: the next `len` bytes of the stream are ring bytes from `pos` on. */
static void start_copy(struct mc_trace *t, const unsigned char *rec, uint32_t size)
{
    struct mc_rec_ring_copy c;
    t->copying = NULL;
    t->copy_left = 0;
    if (size < sizeof c) return;
    memcpy(&c, rec, sizeof c);
    for (uint32_t i = 0; i < t->nrings; i++) {
        struct ring_ent *e = &t->rings[i];
        if (e->id != c.ring_id) continue;
        if (c.pos > e->covered) e->covered = c.pos;
        t->copying = e;
        t->copy_left = c.len;
        return;
    }
}

/* A stream record inside a RING_COPY batch: its ring's records up to here are in the
 * stream. A batch cut short by the end of the file (its writer was killed inside the
 * write) covers only its whole records. */
static void count_copied(struct mc_trace *t, uint32_t size)
{
    if (!t->copying) return;
    if (size > t->copy_left) { t->copying = NULL; t->copy_left = 0; return; }
    t->copying->covered += size;
    t->copy_left -= size;
    if (!t->copy_left) t->copying = NULL;
}

/* The stream ended with status st (END or TRUNCATED). A rings file's killed writer may
 * have left records in its rings that the stream lacks: return those next. The end is
 * clean when no ring misses part of what its tail says was copied (a stream cut inside
 * a copy is how a killed writer leaves it; the ring still holds those bytes). */
static void start_recovery(struct mc_trace *t, int st, const char *why)
{
    t->recovering = 1;
    t->rec_ring = 0;
    t->end_status = st;
    snprintf(t->end_why, sizeof t->end_why, "%s", why);
    if (st != MC_TRACE_TRUNCATED || !t->rings_file) return;
    for (uint32_t i = 0; i < t->nrings; i++)
        if (t->rings[i].covered < t->rings[i].tail) return; /* bytes lost from the stream */
    t->end_status = MC_TRACE_END;
}

/* Next record of the rings beyond what the stream covered, into t->buf. */
static int recover_one(struct mc_trace *t, uint64_t *offp, uint32_t *size, char *why, size_t whylen)
{
    while (t->rec_ring < t->nrings) {
        struct ring_ent *r = &t->rings[t->rec_ring];
        if (!r->started) {
            r->started = 1;
            r->pos = r->covered > r->tail ? r->covered : r->tail;
            if (r->head > r->pos && r->head - r->pos > r->bytes) {
                snprintf(why, whylen, "corrupt ring %u: head %llu is more than a ring (%u bytes) past position %llu",
                         r->id, (unsigned long long)r->head, r->bytes, (unsigned long long)r->pos);
                return MC_TRACE_CORRUPT;
            }
        }
        uint64_t pos = r->pos;
        if (pos >= r->head) { t->rec_ring++; continue; }
        uint64_t in_ring = pos & (r->bytes - 1);
        uint64_t off = r->data_off + in_ring;
        struct mc_rec_header h;
        if (fseeko(t->f, (off_t)off, SEEK_SET) != 0 || fread(&h, 1, sizeof h, t->f) != sizeof h ||
            h.size < sizeof h || h.size % MC_REC_ALIGN || in_ring + h.size > r->bytes || h.size > r->head - pos) {
            snprintf(why, whylen, "corrupt ring %u: no whole record at position %llu (offset %llu)", r->id,
                     (unsigned long long)pos, (unsigned long long)off);
            return MC_TRACE_CORRUPT;
        }
        if (ensure_buf(t, h.size) < 0) {
            snprintf(why, whylen, "out of memory for a %u-byte record at offset %llu", h.size, (unsigned long long)off);
            return MC_TRACE_IO_ERROR;
        }
        memcpy(t->buf, &h, sizeof h);
        if (fread(t->buf + sizeof h, 1, h.size - sizeof h, t->f) != h.size - sizeof h) {
            snprintf(why, whylen, "read error in ring %u at offset %llu", r->id, (unsigned long long)off);
            return MC_TRACE_IO_ERROR;
        }
        r->pos = pos + h.size;
        *offp = off;
        *size = h.size;
        return MC_TRACE_RECORD;
    }
    snprintf(why, whylen, "%s", t->end_why);
    return t->end_status;
}

/* ---------------------------------------------------------------- writer units */

int mc_trace_set_units(struct mc_trace *t, const unsigned char *keep, size_t n)
{
    if (!mc_trace_has_units(t)) return -1;
    unsigned char *k = malloc(n ? n : 1);
    if (!k) return -1;
    if (n) memcpy(k, keep, n);
    free(t->keep);
    t->keep = k;
    t->nkeep = n;
    return 0;
}

uint64_t mc_trace_segment_bytes(const struct mc_trace *t) { return t->seg; }
int mc_trace_has_units(const struct mc_trace *t) { return t->seg || t->rings_file; }
uint64_t mc_trace_unit(const struct mc_trace *t) { return t->unit; }

/* With a segment filter: moves to the first kept segment at or after t->off. 0, or -1 when
 * none is left (the end). */
static int next_kept(struct mc_trace *t)
{
    uint64_t i = t->off / t->seg;
    while (i < t->nkeep && t->keep[i] == MC_SEG_SKIP) i++;
    if (i >= t->nkeep) return -1;
    if (i != t->off / t->seg) {
        if (fseeko(t->f, (off_t)(i * t->seg), SEEK_SET) != 0) return -1;
        t->off = i * t->seg;
    }
    return 0;
}

int mc_trace_next(struct mc_trace *t, struct mc_trace_rec *rec)
{
    for (;;) {
        if (t->status <= 0) return t->status;
        uint32_t size = 0;
        char why[200];
        if (t->keep && t->seg && next_kept(t) < 0) { t->status = MC_TRACE_END; return t->status; }
        uint64_t off = t->off;
        int st = t->recovering ? recover_one(t, &off, &size, why, sizeof why)
                               : read_one(t, t->f, &off, &size, why, sizeof why);
        if (st != MC_TRACE_RECORD && !t->recovering && t->nrings &&
            (st == MC_TRACE_END || st == MC_TRACE_TRUNCATED)) {
            start_recovery(t, st, why);
            continue;
        }
        if (st != MC_TRACE_RECORD) {
            if (st == MC_TRACE_END) t->status = MC_TRACE_END;
            else set_err(t, st, "%s (%llu whole records before it)", why, (unsigned long long)t->nrec);
            return t->status;
        }
        unsigned char use = MC_SEG_READ;
        if (t->keep && t->seg) {
            uint64_t i = off / t->seg;
            use = i < t->nkeep ? t->keep[i] : MC_SEG_SKIP;
            if (use == MC_SEG_SKIP) {   /* unwritten space led into a skipped segment */
                t->off = (i + 1) * t->seg;
                if (fseeko(t->f, (off_t)t->off, SEEK_SET) != 0) { t->status = MC_TRACE_END; return t->status; }
                continue;
            }
        }
        const struct mc_rec_header *h = (const struct mc_rec_header *)t->buf;
        unsigned type = h->type;
        if (!t->recovering) {
            t->off = off + size;
            if (t->off > t->scanned_to) t->scanned_to = t->off;
            if (type == MC_REC_RING_COPY) start_copy(t, t->buf, size);
            /* the unit: a segment, or 1 + the index of the ring whose copy holds the record
             * (an index, not the file's ring id, so it is bounded by the RING records read) */
            t->unit = t->seg ? off / t->seg : t->copying ? (uint64_t)(t->copying - t->rings) + 1 : 0;
            if (type != MC_REC_RING_COPY) count_copied(t, size);
            if (type == MC_REC_RING) add_ring(t, t->buf, size, off);
        } else {
            t->unit = (uint64_t)t->rec_ring + 1;
        }
        if (t->keep && !t->seg) use = t->unit < t->nkeep ? t->keep[t->unit] : MC_SEG_SKIP;
        if (type == MC_REC_STRING) add_string(t, t->buf, size);
        if (type == MC_REC_CLOCK) take_clock(t, t->buf, size);
        if (use != MC_SEG_READ) continue;   /* another writer's: read for this handle's state only */
        size_t fixed = mc_rec_fixed_size(type);
        if (type == MC_REC_PAD && !(t->opts & MC_TRACE_OPT_PAD)) continue;
        t->nrec++;
        if (t->recovering) t->nrecovered++;
        if (fixed == 0 && type != MC_REC_PAD) {
            t->nunknown++;
            if (!(t->opts & MC_TRACE_OPT_UNKNOWN)) continue;
        }
        memset(rec, 0, sizeof *rec);
        rec->type = (uint16_t)type;
        rec->size = size;
        rec->offset = off;
        rec->raw = t->buf;
        size_t n = size < fixed ? size : fixed;
        if (n > sizeof rec->u) n = sizeof rec->u;
        memcpy(&rec->u, t->buf, n);
        if (type == MC_REC_GEMM_CPU) {
            /* Expand the compact CPU form: every user sees one GEMM record type. */
            struct mc_rec_gemm_cpu c;
            memcpy(&c, &rec->u, sizeof c);
            struct mc_rec_gemm *g = &rec->u.gemm;
            memset(g, 0, sizeof *g);
            if ((c.h.flags & MC_RECF_TICKS) && t->have_clock) {
                c.t_begin_ns = ticks_to_ns(t, c.t_begin_ns);
                c.t_end_ns = ticks_to_ns(t, c.t_end_ns);
                c.h.flags &= (uint16_t)~MC_RECF_TICKS;
            }
            g->h = c.h;
            g->h.type = MC_REC_GEMM;
            g->t_begin_ns = c.t_begin_ns; g->t_end_ns = c.t_end_ns;
            g->m = c.m; g->n = c.n; g->k = c.k;
            g->lda = c.lda; g->ldb = c.ldb; g->ldc = c.ldc;
            g->batch = 1;
            g->a = c.a; g->b = c.b; g->c = c.c;
            g->alpha = c.alpha; g->beta = c.beta;
            g->tid = c.tid;
            g->device = -1;
            g->callsite = c.callsite;
            g->api = c.api;
            g->dtype_a = c.dtype_a; g->dtype_b = c.dtype_b; g->dtype_c = c.dtype_c; g->dtype_compute = c.dtype_compute;
            g->layout = c.layout; g->trans_a = c.trans_a; g->trans_b = c.trans_b;
            rec->type = MC_REC_GEMM;
        }
        if (has_var_part(type) && size > fixed) {
            rec->var = t->buf + fixed;
            rec->var_len = size - fixed;
            /* Narrow to the declared length where the record says it. */
            size_t decl = rec->var_len;
            if (type == MC_REC_PROCESS) decl = rec->u.process.argv_bytes;
            else if (type == MC_REC_STRING) decl = (size_t)rec->u.string.len + 1;
            else if (type == MC_REC_CALLSITE) decl = (size_t)rec->u.callsite.depth * 8;
            else if (type == MC_REC_TOPK_TAP && rec->u.topk_tap.experts >= 0 &&
                     (uint64_t)rec->u.topk_tap.experts < (1ull << 40))
                decl = (size_t)rec->u.topk_tap.experts * 4;
            else if (type == MC_REC_LLAMA_BATCH)
                decl = (size_t)rec->u.llama_batch.n_seq * sizeof(struct mc_llama_seq);
            else if (type == MC_REC_GGML_ROUTE && rec->u.ggml_route.experts >= 0)
                decl = (size_t)rec->u.ggml_route.experts * 4;
            if (decl < rec->var_len) rec->var_len = decl;
        }
        return MC_TRACE_RECORD;
    }
}

/* Looks ahead from scanned_to to the end of the file for STRING records (once), then puts
 * the stream back where iteration left it. */
static void scan_strings(struct mc_trace *t)
{
    uint64_t off = t->scanned_to;
    /* The main buffer holds the current record, which callers may still be reading:
     * scan with a private one. */
    unsigned char *keep = t->buf;
    size_t keepcap = t->bufcap;
    t->buf = NULL;
    t->bufcap = 0;
    if (t->status > 0 && fseeko(t->f, (off_t)off, SEEK_SET) == 0) {
        for (;;) {
            uint32_t size;
            char why[200];
            if (read_one(t, t->f, &off, &size, why, sizeof why) != MC_TRACE_RECORD) break;
            if (((struct mc_rec_header *)t->buf)->type == MC_REC_STRING) add_string(t, t->buf, size);
            off += size;
        }
        clearerr(t->f);
        if (fseeko(t->f, (off_t)t->off, SEEK_SET) != 0)
            set_err(t, MC_TRACE_IO_ERROR, "cannot seek back to offset %llu after the string look-ahead",
                    (unsigned long long)t->off);
    }
    free(t->buf);
    t->buf = keep;
    t->bufcap = keepcap;
    t->scanned_to = UINT64_MAX; /* whole file scanned: never again */
}

static const char *str_get(struct mc_trace *t, uint32_t id)
{
    if (!t->capstrs) return NULL;
    struct str_ent *e = str_find(t->strs, t->capstrs, id);
    return e->id ? e->text : NULL;
}

const char *mc_trace_str(struct mc_trace *t, uint32_t id)
{
    if (id == 0) return NULL;
    const char *s = str_get(t, id);
    if (!s && t->scanned_to != UINT64_MAX) {
        scan_strings(t);
        s = str_get(t, id);
    }
    return s;
}

unsigned mc_trace_version_major(const struct mc_trace *t) { return t->vmaj; }
unsigned mc_trace_version_minor(const struct mc_trace *t) { return t->vmin; }
uint64_t mc_trace_records(const struct mc_trace *t) { return t->nrec; }
uint64_t mc_trace_recovered(const struct mc_trace *t) { return t->nrecovered; }
uint64_t mc_trace_unknown_skipped(const struct mc_trace *t) { return t->nunknown; }
uint64_t mc_trace_offset(const struct mc_trace *t) { return t->off; }
const char *mc_trace_error(const struct mc_trace *t) { return t->status < 0 ? t->err : ""; }
const char *mc_trace_path(const struct mc_trace *t) { return t->path; }

const char *mc_rec_type_name(unsigned type)
{
    switch (type) {
#define TYPE_NAME_(NAME, num, tag, name, var) case MC_REC_##NAME: return #name;
    MC_RECORD_LIST(TYPE_NAME_)
#undef TYPE_NAME_
    default: return "?";
    }
}

const char *mc_api_name(unsigned api)
{
    switch (api) {
#define API_NAME_(NAME, num, spelling, cls) case MC_API_##NAME: return spelling;
    MC_API_LIST(API_NAME_)
#undef API_NAME_
    default: return "?";
    }
}

const char *mc_dtype_name(unsigned dtype)
{
    switch (dtype) {
#define DTYPE_NAME_(NAME, num, bytes, name, st, ggml, peak) case MC_DT_##NAME: return name;
    MC_DTYPE_LIST(DTYPE_NAME_)
#undef DTYPE_NAME_
    default: return "?";
    }
}
