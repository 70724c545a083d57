/* Trace synthesiser (see trace_synth.h): a tiny buffered .mct writer for tests/benches. */
#include "trace_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mc_synth {
    FILE *f;
    uint32_t next_id;
    int failed;
};

struct mc_synth *mc_synth_open(const char *path)
{
    struct mc_synth *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->f = fopen(path, "wb");
    if (!w->f) { free(w); return NULL; }
    w->next_id = 1;
    struct mc_file_header fh = mc_file_header_make(0);
    mc_synth_raw(w, &fh, sizeof fh);
    return w;
}

int mc_synth_raw(struct mc_synth *w, const void *bytes, size_t n)
{
    if (n && fwrite(bytes, 1, n, w->f) != n) w->failed = 1;
    return w->failed ? -1 : 0;
}

int mc_synth_record_var(struct mc_synth *w, uint16_t type, const void *rec, size_t size,
                        const void *var, size_t var_len)
{
    static const unsigned char zeros[8];
    if (size < sizeof(struct mc_rec_header)) return -1;
    size_t total = (size + var_len + 7u) & ~(size_t)7u;
    if (total > UINT32_MAX) return -1;
    struct mc_rec_header h = {.type = type, .flags = 0, .size = (uint32_t)total};
    mc_synth_raw(w, &h, sizeof h);
    mc_synth_raw(w, (const char *)rec + sizeof h, size - sizeof h);
    if (var_len) mc_synth_raw(w, var, var_len);
    mc_synth_raw(w, zeros, total - size - var_len);
    return w->failed ? -1 : 0;
}

int mc_synth_record(struct mc_synth *w, uint16_t type, const void *rec, size_t size)
{
    return mc_synth_record_var(w, type, rec, size, NULL, 0);
}

uint32_t mc_synth_string(struct mc_synth *w, const char *text)
{
    struct mc_rec_string s;
    memset(&s, 0, sizeof s);
    size_t len = strlen(text);
    if (len > UINT32_MAX - 64) return 0;
    s.id = w->next_id;
    s.len = (uint32_t)len;
    if (mc_synth_record_var(w, MC_REC_STRING, &s, sizeof s, text, len + 1) < 0) return 0;
    return w->next_id++;
}

int mc_synth_close(struct mc_synth *w)
{
    if (!w) return -1;
    int failed = w->failed;
    if (fclose(w->f) != 0) failed = 1;
    free(w);
    return failed ? -1 : 0;
}
