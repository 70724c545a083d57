/* RAPL energy through the Linux powercap interface (/sys/class/powercap/intel-rapl:*):
 * zone discovery, and reading energy_uj into a running total that survives counter wraps
 * (the counter restarts from 0 after max_energy_range_uj). No shim dependency, so unit
 * tests can drive it on a fake powercap tree. */
#ifndef MOECAP_CPUPROF_RAPL_H
#define MOECAP_CPUPROF_RAPL_H
#include <stdint.h>

#define MC_RAPL_MAX_ZONES 32

struct mc_rapl_zone {
    char name[64];           /* "package-0", "package-0.dram", "psys" */
    char path[512];          /* .../energy_uj */
    uint64_t max_range_uj;   /* max_energy_range_uj; 0 = unknown (wraps not handled) */
    uint64_t last_uj;        /* last raw reading */
    uint64_t total_uj;       /* energy since the first reading, wraps unwrapped */
    int primed;              /* a first reading exists */
};

/* Energy between two raw readings of a counter that wraps to 0 after max_range_uj: at
 * most one wrap is assumed (sample faster than the wrap period, minutes at full power). */
uint64_t mc_rapl_delta(uint64_t prev_uj, uint64_t cur_uj, uint64_t max_range_uj);

/* Finds zones under root (normally "/sys/class/powercap"): directories "intel-rapl:N"
 * and "intel-rapl:N:M" with a readable energy_uj. Returns the number found (<= max), 0
 * when none; *why gets a static reason when 0 ("no powercap directory", "permission
 * denied", ...). */
int mc_rapl_scan(const char *root, struct mc_rapl_zone *zones, int max, const char **why);

/* Reads one zone and advances its total. 0 on success, -1 when the file cannot be read. */
int mc_rapl_read(struct mc_rapl_zone *z);

#endif
