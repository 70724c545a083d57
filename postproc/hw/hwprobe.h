/* Measurements behind `moecap hwprobe`: streaming memory bandwidth (STREAM-triad-like,
 * multithreaded), SGEMM FLOPS through CBLAS, and /proc readers for the CPU model and
 * memory size. Kept apart from the command so tests can call the parsers on fixtures. */
#ifndef MOECAP_POSTPROC_HWPROBE_H
#define MOECAP_POSTPROC_HWPROBE_H
#include <stddef.h>
#include <stdint.h>

struct mc_hw_triad_result {
    double best_Bps;        /* 3 * 8 bytes per element / best time */
    double best_s;
    size_t elems;           /* per array */
    int threads, reps;
    int nt;                 /* 1 = non-temporal stores were used */
};
/* Triad a = b + s*c on three double arrays of `elems` each, `threads` threads, repeated
 * until `budget_s` seconds pass (at least 3 repetitions). nt = 1 asks for non-temporal
 * (streaming) stores, which skip the write-allocate read of plain stores (SSE2 only; plain
 * elsewhere, r->nt says which ran). 0 on success. */
int mc_hw_triad(size_t elems, int threads, int nt, double budget_s, struct mc_hw_triad_result *r);

struct mc_hw_sgemm_result {
    double best_flops;      /* 2 n^3 / best time */
    double best_s;
    int n, threads, reps;
};
/* cblas_sgemm n x n x n, repeated until `budget_s` (at least 3). 0 on success. */
int mc_hw_sgemm(int n, int threads, double budget_s, struct mc_hw_sgemm_result *r);

/* "model name" of the first processor in a /proc/cpuinfo-format file (or "Hardware"/
 * "cpu model" on other architectures). Writes into buf; 0 on success, -1 when absent. */
int mc_hw_cpu_model(const char *cpuinfo_path, char *buf, size_t len);
/* Number of "processor" entries in a cpuinfo file; 0 when none. */
int mc_hw_cpu_count(const char *cpuinfo_path);
/* MemTotal of a /proc/meminfo-format file in bytes; 0 when absent. */
uint64_t mc_hw_mem_total(const char *meminfo_path);
/* Last-level cache size in bytes from sysfs (largest cache index of cpu0); 0 unknown. */
uint64_t mc_hw_llc_bytes(void);

#endif
