/* Energy of a run from the counters the shim recorded (docs/cost.md): RAPL package / DRAM
 * zones (`rapl.*`, µJ, machine-wide), NVML board energy (`nvml.energy`, mJ, per GPU) or
 * power (`nvml.power`, mW, integrated when no energy counter exists), and process CPU time
 * (`proc.cpu_user` + `proc.cpu_system`, s) for the utilisation the estimate needs.
 *
 * Counters are collected per (host, counter, device); a machine-wide counter seen by several
 * processes of one host is counted once (the series covering the longest time), CPU time is
 * summed over processes. The amount in a time window is read from each cumulative series by
 * linear interpolation between samples, extrapolated at the series' mean rate outside the
 * sampled range (the covered fraction is reported). Where no energy counter exists the energy
 * is estimated as idle + (TDP - idle) x utilisation and labelled "estimated". */
#ifndef MOECAP_COST_ENERGY_H
#define MOECAP_COST_ENERGY_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "hw/hw_cost.h"

struct mc_energy;

struct mc_energy *mc_energy_new(void);
void mc_energy_free(struct mc_energy *e);
/* The host a process runs on (from its process record); unknown hosts count as one. */
void mc_energy_set_host(struct mc_energy *e, int32_t pid, const char *host);
/* One MC_REC_COUNTER sample; counters that do not matter for energy are ignored. Returns -1
 * only when out of memory. */
int mc_energy_add(struct mc_energy *e, int32_t pid, const char *name, const char *unit, int32_t device,
                  int cumulative, uint64_t t_ns, double value);

/* Amount of a cumulative counter (samples t[i], v[i], t ascending) in [t0, t1]: linear
 * interpolation between samples, the series' mean rate outside them. *covered = fraction of
 * the window inside the sampled range. 0, or -1 with fewer than two samples spanning time. */
int mc_cumulative_window(const uint64_t *t, const double *v, size_t n, uint64_t t0, uint64_t t1, double *amount,
                         double *covered);

/* What the counters say about [t0, t1] (each "have" 0 when no such counter was recorded). */
struct mc_energy_measured {
    int have_rapl_package, have_rapl_dram, have_gpu;
    double rapl_package_J, rapl_dram_J, gpu_J;
    int gpu_from_power;          /* some GPU energy integrated from nvml.power samples */
    int have_cpu;
    double cpu_s;                /* process CPU seconds (user + system), summed over processes */
    double coverage;             /* smallest covered fraction among the series used (1 = all inside samples) */
    int hosts;                   /* distinct hosts seen */
};
void mc_energy_measure(const struct mc_energy *e, uint64_t t0, uint64_t t1, struct mc_energy_measured *m);

/* Peak resident memory summed over processes (proc.rss) and peak device memory used summed
 * over GPUs (nvml.mem_used); NaN when not recorded. Sampled, so short peaks can be missed. */
void mc_energy_memory(const struct mc_energy *e, double *peak_rss, double *peak_device);

/* Inputs of the decision between measured and estimated energy. */
struct mc_energy_inputs {
    int gpu;                     /* the devices are GPUs (else CPU sockets) */
    double window_s;             /* run time the energy covers */
    double busy_fraction;        /* device busy fraction from the trace (GPU kernel busy time, else
                                    step time / span); NaN = unknown */
    const char *busy_source;
    double cpu_threads;          /* hardware threads of a CPU device (for CPU-time utilisation); 0 = unknown */
};

struct mc_energy_part {
    double joules;               /* NaN = could not be determined */
    int estimated;
    char method[200];            /* what was read or assumed */
};
struct mc_energy_result {
    struct mc_energy_part device, host;
    double utilisation;          /* used by an estimate; NaN when nothing was estimated */
    char utilisation_source[160];
    double total_J;              /* NaN when a part is unknown */
    int estimated;               /* some part estimated */
};
/* Measured where the counters exist, else idle + (TDP - idle) x utilisation per device and
 * the host share's constant power; uses params tdp_w, idle_w, host_power_w, devices. */
void mc_energy_decide(const struct mc_energy_measured *m, const struct mc_energy_inputs *in,
                      const struct mc_cost_params *p, struct mc_energy_result *r);

/* report.json "energy" section (docs/report-schema.md). */
cJSON *mc_energy_json(const struct mc_energy_result *r, const struct mc_energy_measured *m, double window_s);

#endif
