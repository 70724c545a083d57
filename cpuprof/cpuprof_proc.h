/* /proc/self/stat sampling: CPU time, resident set size, threads and page faults of the
 * process. The parser takes the file's text so unit tests can feed fixtures. */
#ifndef MOECAP_CPUPROF_PROC_H
#define MOECAP_CPUPROF_PROC_H
#include <stdint.h>

struct mc_proc_stat {
    uint64_t minflt, majflt;     /* page faults (cumulative) */
    uint64_t utime_ticks, stime_ticks; /* CPU time in clock ticks (sysconf(_SC_CLK_TCK)) */
    int64_t num_threads;
    int64_t rss_pages;           /* resident set size in pages */
};

/* Parses one /proc/<pid>/stat line (proc(5)); the command name in parentheses may hold
 * spaces and parentheses. 0 on success, -1 when the text is not a stat line. */
int mc_proc_parse_stat(const char *text, struct mc_proc_stat *st);

/* Reads and parses a stat file (e.g. "/proc/self/stat"). 0 on success. */
int mc_proc_read_stat(const char *path, struct mc_proc_stat *st);

#endif
