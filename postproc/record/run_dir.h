/* The run directory of `moecap record`: making a fresh one, and summarising the traces the
 * recorded processes left in it (files, records, dropped events). */
#ifndef MOECAP_RECORD_RUN_DIR_H
#define MOECAP_RECORD_RUN_DIR_H

#include <stddef.h>
#include <stdint.h>

/* Makes the run directory: `want` (created with parents; refused when it already holds
 * .mct traces unless `force`), or moecap-YYYYmmdd-HHMMSS[-N] in the current directory when
 * want is NULL. Writes the absolute path to out. 0 ok; -1 with a message in err. */
int record_make_run_dir(const char *want, int force, char *out, size_t outlen, char *err, size_t errlen);

struct record_summary {
    int files, truncated, unreadable;
    uint64_t records, dropped;   /* whole records read; events the shim reported lost */
};
/* Reads every .mct in dir once (streaming). */
void record_summarise(const char *dir, struct record_summary *s);

#endif
