/* Output files of `moecap bench` created without following planted links: written to a
 * fresh temporary file in the destination folder (O_EXCL), renamed over the name at the
 * end, so a symlink or other file already at that name is replaced, never written through. */
#ifndef MOECAP_BENCH_OUTFILE_H
#define MOECAP_BENCH_OUTFILE_H
#include <stdio.h>

struct mc_outfile {
    FILE *f;
    char tmp[4200], path[4200];
};

/* Opens DIR/NAME.XXXXXX for writing (mode 0644). Returns 0, or -1 with errno set. */
int mc_outfile_open(struct mc_outfile *o, const char *dir, const char *name);
/* Flushes, closes and renames the file to DIR/NAME. Returns 0, or -1 (the temporary file is
 * removed). */
int mc_outfile_commit(struct mc_outfile *o);
/* Writes text + "\n" to DIR/NAME the same way. */
int mc_outfile_write(const char *dir, const char *name, const char *text);
#endif
