/* Where moecap's bundled data lives (data/hardware, data/datasets, ...): one search order for
 * every kind, so a build tree, an installed copy and a checkout all find the same files. */
#ifndef MOECAP_TRACE_DATA_DIR_H
#define MOECAP_TRACE_DATA_DIR_H

#include <limits.h>
#include <stddef.h>

#define MC_DATA_DIRS_MAX 5

/* The directories searched for bundled data of kind `sub` ("hardware", "datasets"), in order:
 * $<env_override> (when set and not empty), $MOECAP_ROOT/data/<sub>, <dir of the executable>/
 * ../../data/<sub> (build/bin in a checkout), <dir of the executable>/../share/moecap/<sub> (an
 * installed copy), data/<sub> (the current directory). Written to dirs; returns how many. */
int mc_data_dirs(const char *sub, const char *env_override, char dirs[MC_DATA_DIRS_MAX][PATH_MAX]);
/* The first of those that is a directory, into out; 0, or -1 (out empty) when none is. */
int mc_data_dir(const char *sub, const char *env_override, char *out, size_t n);

#endif
