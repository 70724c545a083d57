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

/* RUN_DIR's *.mct names, sorted (caller frees each and the array). -1 (errno) when the
 * directory cannot be read. */
int report_list_traces(const char *run_dir, char ***names, size_t *n);
/* Reads the cursor's next record and its merge key (untimed records keep their file's order). */
void report_cursor_advance(struct report_cursor *c);
/* The first pass over every file (see above); ends with mc_attrib_names_done. Also counts
 * the devices the GEMMs ran on into dev (report_devices.h). */
void report_collect_names(struct mc_attrib *at, const char *run_dir, char **names, size_t nn, int no_names,
                          struct report_devices *dev);

#endif
