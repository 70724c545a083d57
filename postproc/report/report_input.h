/* Reading a run's traces for `moecap report`: the sorted list of the run directory's .mct files, one cursor per
 * file for the k-way merge by record time, and the first pass that hands every naming fact
 * (tensor tables, file maps, device allocations and copies, top-k tap launches) to the
 * attributor before any GEMM is classified (docs/attribution.md sections 1, 3b, 4c). */
#ifndef MOECAP_REPORT_INPUT_H
#define MOECAP_REPORT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "report/attrib.h"
#include "report/report_devices.h"
#include "trace/trace_reader.h"

struct report_cursor {
    struct mc_trace *t;
    struct mc_trace_rec rec;
    int have;
    uint64_t key;
    int32_t pid;
    int status;
    char name[256];
};

/* Which thread wrote the GEMM records of each segment of one trace file (the naming pass
 * finds it). Threads of a process share its file but write it by segment, so a thread's
 * GEMMs can sit far from the time-neighbouring GEMMs of another: a file with several GEMM
 * writers is merged by time through one cursor per writer (report_writer_cursors). */
#define REPORT_MAX_WRITERS 64
struct report_file_writers {
    int32_t pid;                 /* from the PROCESS record */
    int units;                   /* the file has writer units (mc_trace_has_units); 0 = one cursor */
    uint64_t seg;                /* segment bytes of a 1.1 file, else 0 */
    uint64_t state_end;          /* 1.1: end of the first region (header, PROCESS, CLOCK) */
    uint64_t nunits;             /* 1 + the highest unit seen */
    int32_t *owner;              /* per unit: the tid of its GEMM records; 0 none */
    size_t nseg;
    int32_t tids[REPORT_MAX_WRITERS];   /* GEMM writers in order of first appearance */
    int ntids;
};
void report_file_writers_free(struct report_file_writers *w, size_t n);

/* Adds cursors for file `i` when it has several GEMM writers: cur[i] (already open) is
 * reopened to read every unit (trace_reader.h) but those of the 2nd.. writers, and one cursor per
 * further writer is appended to *cur (*ncur grows) that returns only that writer's units (and
 * reads the first region for the file's clock and strings, silently). 0, or -1 out of memory. */
int report_writer_cursors(const char *path, size_t i, const struct report_file_writers *w,
                          struct report_cursor **cur, size_t *ncur);

/* RUN_DIR's *.mct names, sorted (caller frees each and the array). -1 (errno) when the
 * directory cannot be read. */
int report_list_traces(const char *run_dir, char ***names, size_t *n);
/* Reads the cursor's next record and its merge key (untimed records keep their file's order). */
void report_cursor_advance(struct report_cursor *c);
/* The first pass over every file (see above); ends with mc_attrib_names_done. Also counts
 * the devices the GEMMs ran on into dev (report_devices.h) and notes each file's GEMM
 * writers into writers[i] (may be NULL). */
void report_collect_names(struct mc_attrib *at, const char *run_dir, char **names, size_t nn, int no_names,
                          struct report_devices *dev, struct report_file_writers *writers);

#endif
