/* /proc/<pid>/stat parsing for the cpuprof sampler. */
#include "cpuprof_proc.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mc_proc_parse_stat(const char *text, struct mc_proc_stat *st)
{
    memset(st, 0, sizeof *st);
    if (!text) return -1;
    /* Fields after the command: it ends at the LAST ')' since the name itself may hold
     * ")" and spaces. Field 3 (state) is index 0 below. */
    const char *p = strrchr(text, ')');
    if (!p || !strchr(text, '(')) return -1;
    p++;
    /* Fields 3..24 only: later ones (e.g. rsslim) may not fit a signed 64-bit value. */
    long long f[22];
    int n = 0;
    while (n < 22) {
        while (*p == ' ') p++;
        if (!*p || *p == '\n') break;
        if (n == 0) { /* state: one letter */
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) return -1;
            f[n++] = *p++;
            continue;
        }
        char *end;
        f[n] = strtoll(p, &end, 10);
        if (end == p || (*end != ' ' && *end != '\n' && *end)) return -1;
        p = end;
        n++;
    }
    if (n < 22) return -1; /* need up to field 24 (rss) */
    st->minflt = (uint64_t)f[7];        /* field 10 */
    st->majflt = (uint64_t)f[9];        /* field 12 */
    st->utime_ticks = (uint64_t)f[11];  /* field 14 */
    st->stime_ticks = (uint64_t)f[12];  /* field 15 */
    st->num_threads = f[17];            /* field 20 */
    st->rss_pages = f[21];              /* field 24 */
    return 0;
}

int mc_proc_read_stat(const char *path, struct mc_proc_stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[2048];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return mc_proc_parse_stat(buf, st);
}
