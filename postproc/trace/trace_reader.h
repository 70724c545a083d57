/* Trace reader library: the one way every tool (moecap dump, report, tests) reads a .mct
 * trace (format: include/moecap/trace_format.h, docs/trace-format.md).
 *
 * Streaming: records are read one at a time into a reusable buffer, so memory stays
 * constant apart from the string table and the largest record. Each record is also copied
 * into a zero-padded union, so a record written by an older (shorter) writer reads with
 * its missing trailing fields as 0, and a newer (longer) one reads with the extra bytes
 * ignored. Unknown record types are skipped and counted. A truncated last record (a plain
 * file whose writer was killed mid-write) ends iteration with MC_TRACE_TRUNCATED. Files
 * left by killed processes read to their last committed record: in a 1.2 file the
 * records its threads' rings hold beyond what the stream has are returned after the
 * stream (and a stream cut inside a ring copy is a clean end); in a segmented 1.1 file
 * space its writer had not filled is skipped to the next segment boundary.
 * CPU GEMM times stamped in TSC ticks are converted with the file's MC_REC_CLOCK. Nothing
 * crashes on bad input.
 *
 * Usage:
 *     char err[256];
 *     struct mc_trace *t = mc_trace_open("run/host-42.mct", err, sizeof err);
 *     if (!t) { fprintf(stderr, "%s\n", err); return 2; }
 *     struct mc_trace_rec r;
 *     int st;
 *     while ((st = mc_trace_next(t, &r)) == MC_TRACE_RECORD) {
 *         if (r.type == MC_REC_GEMM)
 *             printf("%lld %s\n", (long long)r.u.gemm.m, mc_api_name(r.u.gemm.api));
 *     }
 *     if (st != MC_TRACE_END) fprintf(stderr, "%s\n", mc_trace_error(t));
 *     mc_trace_close(t);
 *
 * STRING records are entered into the string table and also returned like any record.
 * Strings: mc_trace_str(t, id) resolves an interned string id. The writer defines every
 * string before the first record that uses it, except the process record's host/exe
 * strings, which follow it; a miss makes the reader scan ahead for string records once
 * (without disturbing iteration), so lookups of any id defined anywhere in the file work.
 */
#ifndef MOECAP_TRACE_READER_H
#define MOECAP_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>
#include "moecap/trace_format.h"

struct mc_trace; /* opaque */

/* One record. `u` holds the fixed part of the record, zero padded; `raw` points at the
 * whole record as it is in the file (header included, `size` bytes) and `var`/`var_len`
 * at its variable part (argv of PROCESS, text of STRING, pcs of CALLSITE, logits of
 * ROUTER_TAP, counts of TOPK_TAP; NULL/0 for other types). Pointers stay valid until the next call. */
struct mc_trace_rec {
    uint16_t type;          /* enum mc_rec_type (may be >= MC_REC_TYPE_MAX only if
                               MC_TRACE_OPT_UNKNOWN was set). A compact MC_REC_GEMM_CPU
                               record is returned as MC_REC_GEMM with u.gemm filled in
                               (raw still holds the compact bytes). */
    uint32_t size;          /* bytes in the file, header included */
    uint64_t offset;        /* file offset of the record's header */
    const void *raw;
    const void *var;
    size_t var_len;
    union {
        struct mc_rec_header h;
        /* one member per MC_RECORD_LIST entry (gemm_cpu is never returned as such: it is
         * expanded to gemm) */
#define REC_MEMBER_(NAME, num, tag, name, var) struct tag name;
        MC_RECORD_LIST(REC_MEMBER_)
#undef REC_MEMBER_
    } u;
};

/* mc_trace_next results */
enum mc_trace_status {
    MC_TRACE_RECORD = 1,     /* *rec filled */
    MC_TRACE_END = 0,        /* clean end of file */
    MC_TRACE_TRUNCATED = -1, /* file ends inside a record: every earlier record was whole */
    MC_TRACE_CORRUPT = -2,   /* impossible record header (size not a multiple of 8, ...) */
    MC_TRACE_IO_ERROR = -3,
};

/* Options for mc_trace_open2 (bit flags). */
enum {
    MC_TRACE_OPT_UNKNOWN = 1, /* also return records of unknown types (u zeroed) */
    MC_TRACE_OPT_PAD = 2,     /* also return MC_REC_PAD records */
};

/* Open and validate the file header. NULL on error with a message in err. Only regular
 * files are opened (a FIFO or device named *.mct is refused without blocking). Traces are
 * untrusted: no size, count or id read from the file makes the reader allocate more than the
 * file's own size (record buffer <= largest record; string table ~ the STRING records), and
 * strings come back as valid UTF-8 (invalid bytes replaced by U+FFFD). */
struct mc_trace *mc_trace_open(const char *path, char *err, size_t errlen);
struct mc_trace *mc_trace_open2(const char *path, unsigned opts, char *err, size_t errlen);
/* The same on a trace held in memory (data must stay valid until close); name is used in
 * messages. For fuzzing and tests. */
struct mc_trace *mc_trace_open_mem(const void *data, size_t size, const char *name, unsigned opts,
                                   char *err, size_t errlen);
void mc_trace_close(struct mc_trace *t);

/* Next record; see enum mc_trace_status. After a negative result, mc_trace_error() says
 * what and where; further calls return the same status. */
int mc_trace_next(struct mc_trace *t, struct mc_trace_rec *rec);

/* Writer units, for reading one writer's records on their own. Records of different
 * threads reach a file in units one thread wrote, not in time order: a 1.1 file's segments
 * (unit = offset / segment bytes), a 1.2 file's ring copies and recovered rings (unit = 1 +
 * the index of the ring in the file's RING records; 0 = a record outside any ring). A reader
 * that needs time order across threads follows each writer with its own handle.
 * mc_trace_unit: the unit of the last record returned (0 in a plain file).
 * mc_trace_set_units: which units mc_trace_next returns. keep[u]: MC_SEG_READ = returned,
 * MC_SEG_SKIP = not returned (a 1.1 segment is not even read), MC_SEG_STATE = read for the
 * handle's state only (strings, clock), not returned; units at or past n are skipped. A
 * 1.2 handle reads every record for its state whatever keep says. The array is copied. Call
 * before the first mc_trace_next; -1 for a file without units or no memory. */
enum { MC_SEG_SKIP = 0, MC_SEG_READ = 1, MC_SEG_STATE = 2 };
int mc_trace_has_units(const struct mc_trace *t);
uint64_t mc_trace_unit(const struct mc_trace *t);
int mc_trace_set_units(struct mc_trace *t, const unsigned char *keep, size_t n);
/* Segment bytes of a segmented (1.1) file, 0 otherwise. */
uint64_t mc_trace_segment_bytes(const struct mc_trace *t);

/* Interned string by id; NULL when id is 0 or never defined in this file. */
const char *mc_trace_str(struct mc_trace *t, uint32_t id);

/* Header facts and counters. */
unsigned mc_trace_version_major(const struct mc_trace *t);
unsigned mc_trace_version_minor(const struct mc_trace *t);
uint64_t mc_trace_records(const struct mc_trace *t);       /* whole records read so far (PAD filler not counted) */
uint64_t mc_trace_recovered(const struct mc_trace *t);     /* of which from rings (a killed writer's) */
uint64_t mc_trace_unknown_skipped(const struct mc_trace *t); /* unknown-type records skipped */
uint64_t mc_trace_offset(const struct mc_trace *t);        /* bytes consumed so far */
const char *mc_trace_error(const struct mc_trace *t);      /* "" when none */
const char *mc_trace_path(const struct mc_trace *t);

/* Names for dump and reports ("gemm", "cblas_sgemm", "f32", ...); "?" when unknown. */
const char *mc_rec_type_name(unsigned type);
const char *mc_api_name(unsigned api);
const char *mc_dtype_name(unsigned dtype);

/* Fixed-part size of a record type as this reader knows it (0 = unknown type). */
size_t mc_rec_fixed_size(unsigned type);

#endif
