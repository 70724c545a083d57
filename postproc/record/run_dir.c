/* Run directory of `moecap record` (see run_dir.h). */
#include "record/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "trace/trace_reader.h"

static int is_trace(const char *name)
{
    size_t l = strlen(name);
    return l > 4 && !strcmp(name + l - 4, ".mct");
}

static int count_traces(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += is_trace(e->d_name);
    closedir(d);
    return n;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int record_make_run_dir(const char *want, int force, char *out, size_t outlen, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (want) {
        snprintf(path, sizeof path, "%s", want);
        struct stat st;
        int bad = make_dirs(path) != 0 || stat(path, &st) != 0;
        if (!bad && !S_ISDIR(st.st_mode)) { bad = 1; errno = ENOTDIR; }
        if (bad) { snprintf(err, errlen, "cannot create the directory %s: %s", path, strerror(errno)); return -1; }
        int n = count_traces(path);
        if (n && !force) {
            snprintf(err, errlen, "%s already holds %d trace file%s: give a new directory, or --force to add to them",
                     path, n, n == 1 ? "" : "s");
            return -1;
        }
    } else {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        int made = 0;
        for (int k = 1; k < 100 && !made; k++) {   /* two records in the same second */
            if (k == 1) snprintf(path, sizeof path, "moecap-%s", stamp);
            else snprintf(path, sizeof path, "moecap-%s-%d", stamp, k);
            if (mkdir(path, 0755) == 0) made = 1;
            else if (errno != EEXIST) { snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno)); return -1; }
        }
        if (!made) { snprintf(err, errlen, "cannot find a free moecap-%s-N directory name", stamp); return -1; }
    }
    if (!realpath(path, out) || strlen(out) >= outlen) {
        snprintf(err, errlen, "cannot resolve %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void record_summarise(const char *dir, struct record_summary *s)
{
    memset(s, 0, sizeof *s);
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_trace(e->d_name)) continue;
        char p[PATH_MAX + 256], err[256];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        s->files++;
        struct mc_trace *t = mc_trace_open(p, err, sizeof err);
        if (!t) { s->unreadable++; continue; }
        struct mc_trace_rec r;
        int st;
        while ((st = mc_trace_next(t, &r)) == MC_TRACE_RECORD)
            if (r.type == MC_REC_DROPPED) s->dropped += r.u.dropped.count;
        if (st == MC_TRACE_TRUNCATED) s->truncated++;
        else if (st != MC_TRACE_END) s->unreadable++;
        s->records += mc_trace_records(t);
        mc_trace_close(t);
    }
    closedir(d);
}
