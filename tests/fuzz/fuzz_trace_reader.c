/* Fuzz target: the trace reader library on any bytes (a .mct held in memory). Every record is
 * iterated and every string id it names resolved (which triggers the look-ahead scan).
 * Oracles: a record's variable part lies inside the record, strings come back as valid UTF-8,
 * the reader stops with a status, and nothing it allocates outlives mc_trace_close. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_reader.h"
#include "trace/utf8.h"

static void check_str(struct mc_trace *t, uint32_t id)
{
    const char *s = mc_trace_str(t, id);
    if (s && !mc_utf8_valid(s, strlen(s))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct mc_trace *t = mc_trace_open_mem(data, size, "fuzz.mct", MC_TRACE_OPT_UNKNOWN | MC_TRACE_OPT_PAD,
                                           err, sizeof err);
    if (!t) return 0;
    struct mc_trace_rec r;
    int st;
    while ((st = mc_trace_next(t, &r)) == MC_TRACE_RECORD) {
        if (r.size < sizeof(struct mc_rec_header) || r.size % 8) abort();
        if (r.var) {
            const char *rb = r.raw, *vb = r.var;
            if (vb < rb || vb + r.var_len > rb + r.size) abort();
        }
        switch (r.type) {
        case MC_REC_PROCESS: check_str(t, r.u.process.host_str); check_str(t, r.u.process.exe_str); break;
        case MC_REC_THREAD: check_str(t, r.u.thread.name_str); break;
        case MC_REC_KERNEL: check_str(t, r.u.kernel.name_str); break;
        case MC_REC_FILE_MAP: check_str(t, r.u.file_map.path_str); break;
        case MC_REC_TENSOR: check_str(t, r.u.tensor.path_str); check_str(t, r.u.tensor.name_str); break;
        case MC_REC_COUNTER: check_str(t, r.u.counter.name_str); check_str(t, r.u.counter.unit_str); break;
        case MC_REC_MAPPING: check_str(t, r.u.mapping.path_str); break;
        case MC_REC_API: check_str(t, r.u.api.name_str); break;
        case MC_REC_NOTE: check_str(t, r.u.note.text_str); break;
        case MC_REC_TOPK_TAP: check_str(t, r.u.topk_tap.kernel_str); check_str(t, r.u.topk_tap.tap_str); break;
        default: break;
        }
    }
    if (st > 0 || mc_trace_offset(t) > size) abort();
    if (st < 0 && !mc_trace_error(t)[0]) abort();   /* every failure says why */
    mc_trace_close(t);
    return 0;
}
