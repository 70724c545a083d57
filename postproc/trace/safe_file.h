/* Files that others may control (a run directory, a model directory, --out paths): inputs are
 * opened only when they are regular files (a FIFO named config.json or *.mct must not hang
 * a command) and read up to a size cap; outputs are written to a new file created with
 * O_EXCL | O_NOFOLLOW next to the target and renamed over it, so a symlink planted at
 * RUN/report.md is replaced, never followed, and a failed write leaves the old file. */
#ifndef MOECAP_TRACE_SAFE_FILE_H
#define MOECAP_TRACE_SAFE_FILE_H

#include <stddef.h>
#include <stdio.h>

/* open(path, O_RDONLY) when path is a regular file; -1 with errno set otherwise (EINVAL for
 * a FIFO, device or directory). Never blocks on a FIFO. */
int mc_open_regular(const char *path);
/* The whole regular file, NUL-terminated, when at most max bytes; NULL with errno set
 * (EFBIG when larger). *len (if non-NULL) gets its length. */
char *mc_read_file(const char *path, size_t max, size_t *len);

/* An output file being written: stream f on a temporary name in the target's directory. */
struct mc_out { FILE *f; char tmp[4200], path[4200]; };
/* Starts writing path; 0, or -1 with errno set. */
int mc_out_open(struct mc_out *o, const char *path);
/* Finishes: flush, close, rename over path (the temporary is removed on any failure).
 * ok = 0 abandons the file. Returns 0 or -1 with errno set. */
int mc_out_close(struct mc_out *o, int ok);

#endif
