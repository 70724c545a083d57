/* The devices a run's GEMMs used, counted from its traces: the default of the utilisation
 * denominators (`--devices` overrides it). A GPU is a distinct (host, device id) among GEMM
 * records; a CPU is a host whose processes issued CPU GEMMs — one device however many
 * processes share it, since a CPU hardware profile's peaks cover the whole CPU (all cores
 * and sockets it describes), which those processes divide among themselves. */
#ifndef MOECAP_REPORT_DEVICES_H
#define MOECAP_REPORT_DEVICES_H

#include <stdint.h>

#include <cjson/cJSON.h>

#define REPORT_DEVICES_MAX 64

struct report_devices {
    int n_gpu, n_cpu_hosts, n_cpu_pids;
    struct { char host[64]; int32_t device; } gpu[REPORT_DEVICES_MAX];
    char cpu_host[REPORT_DEVICES_MAX][64];
    int32_t cpu_pid[REPORT_DEVICES_MAX];
    int more;                   /* more distinct devices or processes than kept */
    /* decided by report_devices_choose */
    int devices;
    const char *from;           /* "trace" or "--devices" */
};

/* One GEMM of process pid on host (NULL: unknown) on device (< 0: the CPU). */
void report_devices_gemm(struct report_devices *d, const char *host, int32_t pid, int32_t device);
/* The denominators' device count: user (> 0, from --devices) wins; else the GPUs when GEMMs
 * ran on any (the accelerators do the run's work), otherwise the CPU hosts; at least 1. */
int report_devices_choose(struct report_devices *d, int user);
/* hardware.devices_from and hardware.devices_seen (what the trace showed) into h. */
void report_devices_json(const struct report_devices *d, cJSON *h);

#endif
