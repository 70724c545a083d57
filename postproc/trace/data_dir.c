/* Bundled-data directory search (data_dir.h). */
#include "trace/data_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mc_data_dirs(const char *sub, const char *env_override, char dirs[MC_DATA_DIRS_MAX][PATH_MAX])
{
    int n = 0;
    const char *e = env_override ? getenv(env_override) : NULL;
    if (e && *e) snprintf(dirs[n++], PATH_MAX, "%s", e);
    e = getenv("MOECAP_ROOT");
    if (e && *e) snprintf(dirs[n++], PATH_MAX, "%.*s/data/%s", PATH_MAX - 64, e, sub);
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = l > 0 ? (exe[l] = 0, strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = 0;
        snprintf(dirs[n++], PATH_MAX, "%.*s/../../data/%s", PATH_MAX - 64, exe, sub);
        snprintf(dirs[n++], PATH_MAX, "%.*s/../share/moecap/%s", PATH_MAX - 64, exe, sub);
    }
    snprintf(dirs[n++], PATH_MAX, "data/%s", sub);
    return n;
}

int mc_data_dir(const char *sub, const char *env_override, char *out, size_t n)
{
    char dirs[MC_DATA_DIRS_MAX][PATH_MAX];
    int nd = mc_data_dirs(sub, env_override, dirs);
    for (int i = 0; i < nd; i++) {
        struct stat st;
        if (stat(dirs[i], &st) == 0 && S_ISDIR(st.st_mode)) { snprintf(out, n, "%s", dirs[i]); return 0; }
    }
    if (n) out[0] = 0;
    return -1;
}
